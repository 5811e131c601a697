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
from broker.schemas import rfc3339
from broker.settings import PROJECT_RE
from broker.store.accounts import open_account
from broker.store.keys import AUTH_INITIAL, AUTH_KEYS, AUTH_REVOKED, ProjectKeys

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
    expires_at: int | None = None  # epoch s: a rotated key, accepted until then


def key_id(hashed: str) -> str:
    """The id of a stored key (admin API): the first 16 hex digits of its digest, safe to show."""
    return hashed[:16]


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
        project: str | None = None
        if stored is not None:
            record = msgspec.json.decode(stored, type=StoredKey)
            if record.expires_at is not None and record.expires_at <= time.time():
                return None  # rotated, and its overlap window is over
            project = record.project
        else:
            for env_hash, env_project in self.env.items():
                if hmac.compare_digest(env_hash, hashed) and not revoked:
                    project = env_project
        if project is not None and await self._disabled(project):
            return None  # the project is disabled (the charged scripts refuse it at once, too)
        return project

    async def _disabled(self, project: str) -> bool:
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
                flag = await self.redis.hget(ProjectKeys(project).account, "disabled")
        except (TimeoutError, redis_errors.ConnectionError, redis_errors.TimeoutError,
                redis_errors.BusyLoadingError) as exc:
            raise errors.Unavailable(headers={"Retry-After": "1"}) from exc
        return flag in (b"1", "1")


# --- administration (the `broker keys` commands) ---------------------------------------------------
async def create_key(redis: Any, project: str) -> str:
    """Create a key for ``project``; the key itself is returned once and never stored."""
    if not PROJECT_RE.match(project):
        raise ValueError(f"project name {project!r} must match {PROJECT_RE.pattern}")
    key = KEY_PREFIX + secrets.token_urlsafe(30)
    record = StoredKey(project=project, prefix=key[:SHOWN_PREFIX_LENGTH], created_at=int(time.time()))
    await open_account(redis, project, int(time.time() * 1000))
    await redis.hset(AUTH_KEYS, digest(key), msgspec.json.encode(record))
    return key


async def open_key_accounts(redis: Any, env_keys: tuple[tuple[str, str], ...] = (), stored: bool = False) -> None:
    """Give an account to every project of ``BROKER_API_KEYS`` (each API process at start-up) and, with
    ``stored``, of every stored key (``broker serve`` at start-up: keys stored by a version that did not create
    accounts); a no-op for the projects that have one."""
    projects = {project for project, _ in env_keys}
    if stored:
        for raw in (await redis.hgetall(AUTH_KEYS)).values():
            projects.add(msgspec.json.decode(raw, type=StoredKey).project)
    now_ms = int(time.time() * 1000)
    for project in sorted(projects):
        await open_account(redis, project, now_ms)


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


# --- per-project keys (the admin API and `broker admin keys`) ---------------------------------------
class ProjectKey(msgspec.Struct, kw_only=True):
    """What the admin API shows of a key (never the key itself, except ``key`` once at creation)."""

    key_id: str
    project: str
    prefix: str
    created_at: str  # RFC 3339
    expires_at: str | None = None  # a rotated key: accepted until then
    key: str | None = None


async def create_project_key(redis: Any, project: str) -> ProjectKey:
    """A new key of ``project``; the answer holds the key itself, once."""
    key = await create_key(redis, project)
    return ProjectKey(key_id=key_id(digest(key)), project=project, prefix=key[:SHOWN_PREFIX_LENGTH],
                      created_at=rfc3339(int(time.time()) * 1000), key=key)


async def project_keys(redis: Any, project: str) -> list[tuple[str, StoredKey]]:
    """(digest, record) of every stored key of ``project``, oldest first (a scan of the key table: admin only)."""
    found = []
    for hashed, raw in (await redis.hgetall(AUTH_KEYS)).items():
        record = msgspec.json.decode(raw, type=StoredKey)
        if record.project == project:
            found.append((hashed.decode() if isinstance(hashed, bytes) else str(hashed), record))
    return sorted(found, key=lambda item: (item[1].created_at, item[0]))


def shown(hashed: str, record: StoredKey) -> ProjectKey:
    expires = None if record.expires_at is None else rfc3339(record.expires_at * 1000)
    return ProjectKey(key_id=key_id(hashed), project=record.project, prefix=record.prefix,
                      created_at=rfc3339(record.created_at * 1000), expires_at=expires)


async def find_project_key(redis: Any, project: str, wanted_id: str) -> tuple[str, StoredKey]:
    for hashed, record in await project_keys(redis, project):
        if key_id(hashed) == wanted_id:
            return hashed, record
    raise errors.NotFound(f"project {project!r} has no key {wanted_id!r}")


async def delete_project_key(redis: Any, project: str, wanted_id: str) -> None:
    """Revoke a key at once (404 when the project has no key of that id)."""
    hashed, _ = await find_project_key(redis, project, wanted_id)
    await redis.hdel(AUTH_KEYS, hashed)


async def rotate_project_key(redis: Any, project: str, wanted_id: str, overlap_seconds: int) -> ProjectKey:
    """A new key of ``project`` replacing key ``wanted_id``, which stays valid ``overlap_seconds`` more (0: it
    is refused at once). Returns the new key, shown once."""
    hashed, record = await find_project_key(redis, project, wanted_id)
    created = await create_project_key(redis, project)
    expires = int(time.time()) + overlap_seconds
    if record.expires_at is None or record.expires_at > expires:
        record.expires_at = expires
    await redis.hset(AUTH_KEYS, hashed, msgspec.json.encode(record))
    return created
