"""Running the background jobs inside an API process (``broker serve`` without ``--no-workers``)."""

from __future__ import annotations

from typing import Any


class Background:
    async def stop(self) -> None:
        return None


async def start_background(ctx: Any) -> Background:
    return Background()
