"""Maintenance of every queue, for the background jobs: retention, ended leases and due delays are
applied even when nobody consumes (``lua/maintain.lua``, bounded and idempotent, so any number of
worker and API processes may sweep at once)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from broker.store.keys import PROJECTS, ProjectKeys
from broker.store.queues import MAINTENANCE_LIMIT, Store

QUEUE_PAGE = 500


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        return sorted({_text(p) async for p in self.store.redis.sscan_iter(PROJECTS, count=1000)})

    async def queues(self, project: str) -> AsyncIterator[str]:
        """The project's queue names, in pages (the zset is scored 0, so lexicographic ranges page it)."""
        key = ProjectKeys(project).queues
        start = "-"
        while True:
            page = [_text(n) for n in await self.store.redis.zrangebylex(key, start, "+", 0, QUEUE_PAGE)]
            for name in page:
                yield name
            if len(page) < QUEUE_PAGE:
                return
            start = "(" + page[-1]

    async def maintain_queue(self, project: str, queue: str) -> int:
        """Apply maintenance to one queue, repeating while a call was saturated (at most max_rounds)."""
        pk = ProjectKeys(project)
        total = 0
        for _ in range(self.max_rounds):
            moved = int(
                await self.store.scripts.call(
                    "maintain", [pk.queue(queue).cfg], [pk.tag, queue, self.store.clock(), self.limit]
                )
            )
            total += moved
            if moved < self.limit:
                break
        return total

    async def sweep(self) -> int:
        """One pass over every queue; the number of messages moved or deleted."""
        total = 0
        for project in await self.projects():
            async for queue in self.queues(project):
                total += await self.maintain_queue(project, queue)
        return total
