"""The background job functions, shared by the arq workers (``broker worker``) and the in-process
runner of ``broker serve``. Each takes the arq-style ``ctx`` dict and calls one store-level method."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("broker.workers")


async def maintenance(ctx: dict[str, Any]) -> int:
    """Apply retention, ended leases and due delays to every queue (``ctx["maintenance"]``); nothing while the
    process's store guard (``ctx["guard"]``, if any) knows the store as lost."""
    guard = ctx.get("guard")
    if guard is not None and guard.lost:
        return 0
    moved = int(await ctx["maintenance"].sweep())
    if moved:
        log.debug("maintenance moved %d messages", moved)
    return moved
