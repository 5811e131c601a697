"""What a project owns in Redis, byte for byte: taken before and after a call to prove that a refused (or a
foreign) call changed nothing of it."""

from __future__ import annotations

from typing import Any

from broker.store.keys import PROJECTS, RATE_LIMITS

from .redisdb import project_keys


async def project_snapshot(client: Any, project: str) -> dict[str, Any]:
    """Every key of ``project`` with its full content (DUMP) and whether it expires, plus the project's
    membership of the shared sets a request could write (projects with queues, projects with rate limits)."""
    keys = await project_keys(client, project)
    async with client.pipeline(transaction=False) as pipe:  # one round trip for all of it
        for key in keys:
            pipe.dump(key)
            pipe.pttl(key)
        pipe.sismember(PROJECTS, project)
        pipe.sismember(RATE_LIMITS, project)
        *pairs, listed, limited = await pipe.execute()
    content: dict[str, Any] = {key: (pairs[2 * i], pairs[2 * i + 1] > 0) for i, key in enumerate(keys)}
    content["<project listed>"] = bool(listed)
    content["<project limited>"] = bool(limited)
    return content


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The entries of two snapshots that differ (added, removed or changed), sorted."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
