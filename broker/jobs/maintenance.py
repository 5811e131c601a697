"""Maintenance of every queue, for the background jobs: retention, ended leases and due delays are
applied even when nobody consumes (``lua/maintain.lua``, bounded and idempotent, so any number of
worker and API processes may sweep at once)."""

from __future__ import annotations

from collections.abc import Sequence

from broker.store.queues import MAINTENANCE_LIMIT, Store


class Maintenance:
    """Sweeps the queues of every project (or of ``projects`` only)."""

    def __init__(
        self,
        store: Store,
        projects: Sequence[str] | None = None,
        limit: int = MAINTENANCE_LIMIT,
        max_rounds: int = 10,
    ):
        self.store = store
        self.only = tuple(projects) if projects is not None else None
        self.limit = limit
        self.max_rounds = max_rounds

    async def projects(self) -> list[str]:
        if self.only is not None:
            return list(self.only)
        return await self.store.projects()

    async def maintain_queue(self, project: str, queue: str) -> int:
        """Apply maintenance to one queue, repeating while a call was saturated (at most max_rounds)."""
        total = 0
        for _ in range(self.max_rounds):
            moved = await self.store.maintain(project, queue, self.limit)
            total += moved
            if moved < self.limit:
                break
        return total

    async def sweep(self) -> int:
        """One pass over every queue; the number of messages moved or deleted."""
        total = 0
        for project in await self.projects():
            async for queue in self.store.queue_names(project):
                total += await self.maintain_queue(project, queue)
        return total
