"""The Redis the tests run against (``BROKER_TEST_REDIS_URL``, default redis://127.0.0.1:6379/0) and the keys of
one project on it. Tests on that shared Redis each work in a project of their own and delete only its keys."""

from __future__ import annotations

import os
from typing import Any

from broker.store.keys import ACCOUNTS, AUTH_KEYS, PROJECTS, RATE_LIMITS, project_tag

REDIS_URL = os.environ.get("BROKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def project_pattern(project: str, suffix: str = "*") -> str:
    """The SCAN pattern of the project's keys (``suffix`` narrows it: ``"q:jobs:*"``), its hash tag escaped."""
    return project_tag(project).replace("{", "\\{").replace("}", "\\}") + ":" + suffix


async def project_keys(client: Any, project: str, suffix: str = "*") -> list[str]:
    """The names of the project's keys (matching ``suffix``), sorted."""
    names = [k async for k in client.scan_iter(match=project_pattern(project, suffix), count=1000)]
    return sorted(k.decode() if isinstance(k, bytes) else k for k in names)


async def delete_project(client: Any, project: str) -> None:
    """Delete every key of the project and its membership of the shared sets (projects, rate limits)."""
    async for key in client.scan_iter(match=project_pattern(project), count=1000):
        await client.unlink(key)
    await client.srem(PROJECTS, project)
    await client.srem(RATE_LIMITS, project)
    await client.srem(ACCOUNTS, project)
    for hashed, raw in (await client.hgetall(AUTH_KEYS)).items():  # keys the admin API created for it
        if f'"project":"{project}"'.encode() in raw:
            await client.hdel(AUTH_KEYS, hashed)
