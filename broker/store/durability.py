"""Checks that a Redis keeps what the service acknowledges before ``broker serve`` relies on it.

A queue acknowledges a publish once the store has it. Redis keeps that promise only with the append-only
file on, without eviction, and with fsync not paused during AOF rewrites. ``check_durability`` reads the
three settings with ``CONFIG GET`` and reports every one that breaks the promise, each as one line that
names the setting and the fix. The caller refuses to start on problems unless the operator accepted
weak durability (``BROKER_ACCEPT_WEAK_DURABILITY=1``).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

#: The oldest Redis the scripts work on (Redis 6.2 reports errors caught inside scripts differently).
MIN_REDIS_VERSION = (7, 0)


def _fix(name: str, value: str) -> str:
    """How to set ``name`` to ``value``, for the messages."""
    return f"Fix: '{name} {value}' in redis.conf (see deploy/redis.conf), and at once: CONFIG SET {name} {value}"


@dataclass
class DurabilityReport:
    """What ``check_durability`` found: ``incompatible`` always refuses a start, ``problems`` refuse it
    unless weak durability was accepted, ``warnings`` are only printed."""

    incompatible: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verified: bool = True
    redis_version: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and not self.incompatible


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for printing (also a ``redis+sentinel://`` URL
    with several hosts, and its ``sentinel_password`` option)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    if not (at and has_password) and "sentinel_password=" not in parts.query:
        return url
    netloc = f"{user}:***@{hosts}" if at and has_password else parts.netloc
    query = re.sub(r"(sentinel_password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


async def wait_until_ready(redis: Any, timeout: float = 30.0) -> None:
    """Wait until ``redis`` answers PING and has finished loading its data set.

    Raises ``ConnectionError`` with the last error when it does not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            await redis.ping()
            return
        except redis_errors.BusyLoadingError as exc:  # LOADING: the AOF is being replayed
            last = exc
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise ConnectionError(str(last) or type(last).__name__)
        await asyncio.sleep(0.2)


async def _config_value(redis: Any, name: str) -> str | None:
    reply = await redis.config_get(name)
    for key, value in (reply or {}).items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key.lower() == name:
            return (value.decode() if isinstance(value, bytes) else str(value)).strip().lower()
    return None


def version_tuple(version: str) -> tuple[int, ...]:
    """``"7.0.15"`` -> ``(7, 0)``: major and minor, ignoring anything that is not a digit."""
    numbers = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers)


def too_old(version: str | None) -> bool:
    """Whether a Redis of ``version`` is older than the service needs (unknown versions pass)."""
    return bool(version) and version_tuple(version or "") < MIN_REDIS_VERSION


async def check_durability(redis: Any) -> DurabilityReport:
    """Read the durability settings of ``redis`` (of every primary, for a Redis Cluster) and report what
    is missing; see :func:`check_node`."""
    manager = getattr(getattr(redis, "connection_pool", None), "sentinel_manager", None)
    if manager is not None:
        return await _check_sentinel_nodes(redis, manager)
    if not isinstance(redis, RedisCluster):
        return await check_node(redis)
    await redis.initialize()  # learns the cluster's nodes
    merged = DurabilityReport()
    kwargs = redis.connection_kwargs
    for node in redis.get_primaries():
        plain = aioredis.Redis(
            host=node.host, port=node.port, username=kwargs.get("username"), password=kwargs.get("password")
        )
        try:
            part = await check_node(plain)
        finally:
            await plain.aclose()
        where = f"node {node.host}:{node.port}: "
        merged.incompatible += [where + line for line in part.incompatible]
        merged.problems += [where + line for line in part.problems]
        merged.warnings += [where + line for line in part.warnings]
        merged.verified = merged.verified and part.verified
        merged.redis_version = merged.redis_version or part.redis_version
    return merged


async def _check_sentinel_nodes(redis: Any, manager: Any) -> DurabilityReport:
    """The primary the sentinels name (through ``redis`` itself) and each replica they know: a replica
    becomes the primary at a failover, so it must keep what it acknowledges too."""
    merged = DurabilityReport()
    parts = [("primary: ", await check_node(redis))]
    kwargs = redis.connection_pool.connection_kwargs
    for host, port in await manager.discover_slaves(redis.connection_pool.service_name):
        plain = aioredis.Redis(
            host=host, port=port, username=kwargs.get("username"), password=kwargs.get("password"),
            socket_connect_timeout=1.0, socket_timeout=3.0,
        )
        try:
            parts.append((f"replica {host}:{port}: ", await check_node(plain)))
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            merged.warnings.append(f"replica {host}:{port} could not be checked: {exc}")
        finally:
            await plain.aclose()
    for where, part in parts:
        merged.incompatible += [where + line for line in part.incompatible]
        merged.problems += [where + line for line in part.problems]
        merged.warnings += [where + line for line in part.warnings]
        merged.verified = merged.verified and part.verified
        merged.redis_version = merged.redis_version or part.redis_version
    return merged


async def check_node(redis: Any) -> DurabilityReport:
    """Read the durability settings of one Redis server and report what is missing.

    Incompatible: a Redis older than 7.0. Problems: ``appendonly`` not ``yes``; ``maxmemory-policy`` not
    ``noeviction``; ``no-appendfsync-on-rewrite`` ``yes``. Warnings: ``appendfsync`` not ``always`` (a crash
    of the machine can lose the last second of acknowledged writes), and a Redis that does not allow
    ``CONFIG GET`` (managed services), in which case nothing could be verified.
    """
    report = DurabilityReport()
    try:
        info = await redis.info("server")
        report.redis_version = str(info.get("redis_version", "")) or None
    except redis_errors.ResponseError:
        report.redis_version = None
    if too_old(report.redis_version):
        wanted = ".".join(map(str, MIN_REDIS_VERSION))
        report.incompatible.append(
            f"Redis {report.redis_version} is too old: this service needs Redis {wanted} or newer"
        )

    try:
        appendonly = await _config_value(redis, "appendonly")
        appendfsync = await _config_value(redis, "appendfsync")
        policy = await _config_value(redis, "maxmemory-policy")
        no_fsync_on_rewrite = await _config_value(redis, "no-appendfsync-on-rewrite")
    except redis_errors.ResponseError as exc:  # NOPERM, unknown or renamed command
        report.verified = False
        report.warnings.append(
            f"could not read the Redis configuration (CONFIG GET refused: {str(exc).splitlines()[0]}); "
            "make sure it runs with appendonly yes, appendfsync always, maxmemory-policy noeviction "
            "and no-appendfsync-on-rewrite no"
        )
        return report

    if appendonly is None and policy is None and no_fsync_on_rewrite is None:
        report.verified = False
        report.warnings.append(
            "this Redis does not report its persistence settings (CONFIG GET returned nothing); make sure it runs "
            "with appendonly yes, appendfsync always, maxmemory-policy noeviction and no-appendfsync-on-rewrite no"
        )
        return report
    if appendonly != "yes":
        report.problems.append(
            f"appendonly is {appendonly or 'unset'!r}: Redis keeps no append-only file, so a restart loses every "
            f"acknowledged message since the last snapshot. {_fix('appendonly', 'yes')}"
        )
    if policy != "noeviction":
        report.problems.append(
            f"maxmemory-policy is {policy or 'unset'!r}: when memory is full Redis deletes keys, queued messages "
            f"included; with noeviction a full store refuses writes instead. {_fix('maxmemory-policy', 'noeviction')}"
        )
    if no_fsync_on_rewrite == "yes":
        report.problems.append(
            "no-appendfsync-on-rewrite is 'yes': Redis skips fsync while it rewrites the append-only file, so a "
            f"crash then loses acknowledged messages. {_fix('no-appendfsync-on-rewrite', 'no')}"
        )
    if appendonly == "yes" and appendfsync not in ("always", None):
        window = "second" if appendfsync == "everysec" else "30 seconds or so"
        report.warnings.append(
            f"appendfsync is {appendfsync!r}: a crash of the machine can lose the last {window} of acknowledged "
            "messages; appendfsync always loses none (at a cost in write throughput)"
        )
    return report
