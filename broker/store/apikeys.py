"""API keys: each key belongs to one project. Keys are stored only as SHA-256 digests.

Lookups are cached per process for ``Settings.auth_cache_seconds`` (0.5 s by default), so a revoked key
is refused by every process within a second while the hot path normally costs no Redis round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from redis import exceptions as redis_errors

from broker import errors
from broker.settings import PROJECT_RE
from broker.store.keys import AUTH_INITIAL, AUTH_KEYS, AUTH_REVOKED

KEY_PREFIX = "bk_"
#: A key lookup that has not answered after this many seconds is answered 503 (the client pool can queue
#: connects behind one another while a failover is under way; a request must not wait for all of them).
LOOKUP_TIMEOUT_SECONDS = 5.0
SHOWN_PREFIX_LENGTH = 11


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class StoredKey(msgspec.Struct):
    project: str
    prefix: str
    created_at: int


@dataclass
class KeyInfo:
    prefix: str
    project: str
    created_at: int | None
    source: str  # "store" or "env"


class KeyRing:
    """Resolves bearer keys to projects: keys from BROKER_API_KEYS plus keys created in the store."""

    def __init__(self, redis: Any, env_keys: tuple[tuple[str, str], ...] = (), cache_seconds: float = 0.5):
        self.redis = redis
        self.env = {digest(key): project for project, key in env_keys}
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lookups: dict[str, asyncio.Future[str | None]] = {}

    def cached_project(self, authorization: str | None) -> str | None:
        """The project of a header whose answer is cached and valid (no await on the hot path), else None:
        then ``project_for`` decides."""
        cached = self._fresh(authorization) if authorization else None
        return None if cached is None else cached[0]

    def _fresh(self, authorization: str) -> tuple[str | None, float] | None:
        """The cache entry of a header (keyed by the header itself: no hash on the hot path) if not expired."""
        cached = self._cache.get(authorization)
        return cached if cached is not None and cached[1] > time.monotonic() else None

    async def project_for(self, authorization: str | None) -> str:
        """The project of an ``Authorization: Bearer <key>`` header, or raise Unauthorized."""
        if not authorization:
            raise errors.Unauthorized("missing Authorization header (expected: Bearer <key>)")
        cached = self._fresh(authorization)
        if cached is not None:
            project = cached[0]
        else:
            project = await self._shared_lookup(authorization)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[authorization] = (project, time.monotonic() + self.cache_seconds)
        if project is None:
            raise errors.Unauthorized("unknown or revoked API key")
        return project

    def _shared_lookup(self, authorization: str) -> asyncio.Future[str | None]:
        """One store lookup per header at a time: the concurrent requests that find the cache entry
        expired all wait for the same one."""
        pending = self._lookups.get(authorization)
        if pending is None:
            pending = asyncio.ensure_future(self._project_for_header(authorization))
            self._lookups[authorization] = pending

            def done(task: asyncio.Future[str | None]) -> None:
                self._lookups.pop(authorization, None)
                if not task.cancelled():
                    task.exception()  # retrieved here too, in case every waiter went away

            pending.add_done_callback(done)
        return asyncio.shield(pending)

    async def _project_for_header(self, authorization: str) -> str | None:
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key or len(key) > 512:
            raise errors.Unauthorized("malformed Authorization header (expected: Bearer <key>)")
        return await self._lookup(digest(key))

    async def _lookup(self, hashed: str) -> str | None:
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS), self.redis.pipeline(transaction=False) as pipe:
                pipe.hget(AUTH_KEYS, hashed)
                pipe.sismember(AUTH_REVOKED, hashed)
                stored, revoked = await pipe.execute()
        except (TimeoutError, redis_errors.ConnectionError, redis_errors.TimeoutError,
                redis_errors.BusyLoadingError) as exc:
            raise errors.Unavailable(headers={"Retry-After": "1"}) from exc
        if stored is not None:
            record = msgspec.json.decode(stored, type=StoredKey)
            return record.project
        for env_hash, project in self.env.items():
            if hmac.compare_digest(env_hash, hashed):
                return None if revoked else project
        return None


# --- administration (the `broker keys` commands) ---------------------------------------------------
async def create_key(redis: Any, project: str) -> str:
    """Create a key for ``project``; the key itself is returned once and never stored."""
    if not PROJECT_RE.match(project):
        raise ValueError(f"project name {project!r} must match {PROJECT_RE.pattern}")
    key = KEY_PREFIX + secrets.token_urlsafe(30)
    record = StoredKey(project=project, prefix=key[:SHOWN_PREFIX_LENGTH], created_at=int(time.time()))
    await redis.hset(AUTH_KEYS, digest(key), msgspec.json.encode(record))
    return key


async def list_keys(redis: Any, env_keys: tuple[tuple[str, str], ...] = ()) -> list[KeyInfo]:
    found = []
    for raw in (await redis.hgetall(AUTH_KEYS)).values():
        record = msgspec.json.decode(raw, type=StoredKey)
        found.append(KeyInfo(record.prefix, record.project, record.created_at, "store"))
    revoked = {r.decode() if isinstance(r, bytes) else r for r in await redis.smembers(AUTH_REVOKED)}
    for project, key in env_keys:
        if digest(key) not in revoked:
            found.append(KeyInfo(key[:SHOWN_PREFIX_LENGTH], project, None, "env"))
    return sorted(found, key=lambda k: (k.project, k.prefix))


async def revoke_key(redis: Any, key_or_prefix: str, env_keys: tuple[tuple[str, str], ...] = ()) -> int:
    """Revoke a key given whole or by its shown prefix; returns how many keys were revoked."""
    revoked = 0
    if await redis.hdel(AUTH_KEYS, digest(key_or_prefix)):
        revoked += 1
    for hashed, raw in (await redis.hgetall(AUTH_KEYS)).items():
        record = msgspec.json.decode(raw, type=StoredKey)
        if len(key_or_prefix) >= 6 and record.prefix.startswith(key_or_prefix[:SHOWN_PREFIX_LENGTH]) and (
            key_or_prefix.startswith(record.prefix) or record.prefix.startswith(key_or_prefix)
        ):
            revoked += await redis.hdel(AUTH_KEYS, hashed)
    for _, key in env_keys:
        if key == key_or_prefix or (len(key_or_prefix) >= 6 and key.startswith(key_or_prefix)):
            revoked += await redis.sadd(AUTH_REVOKED, digest(key))
    return revoked


async def any_key_exists(redis: Any, env_keys: tuple[tuple[str, str], ...] = ()) -> bool:
    return bool(env_keys) or bool(await redis.hlen(AUTH_KEYS))


async def create_initial_key(redis: Any, env_keys: tuple[tuple[str, str], ...] = ()) -> str | None:
    """On a store with no key at all, create one for project ``default`` and return it; otherwise None.

    A SET NX marker makes this happen once even when several processes start at the same moment.
    """
    if await any_key_exists(redis, env_keys):
        return None
    if not await redis.set(AUTH_INITIAL, int(time.time()), nx=True):
        return None
    return await create_key(redis, "default")
