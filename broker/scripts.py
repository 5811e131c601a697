"""The only place that loads and calls Lua.

Every ``lua/*.lua`` file is one atomic operation. At load time ``--@include name`` lines are replaced
by ``lua/include/name.lua`` (each included once, no cycles), the header's ``KEYS[i]`` lines are
counted, and the SHA is computed locally. Calls go out as EVALSHA; a NOSCRIPT reply (a restarted or
flushed server) loads the script and retries once. Error replies of the form
``CODE\\tfield\\tmessage`` become the matching :mod:`broker.errors` exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from broker import errors
from broker.keys import lua_keys_include

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
_INCLUDE_RE = re.compile(r"^--@include\s+\"?([a-z_]+)\"?\s*$", re.MULTILINE)
_KEYS_RE = re.compile(r"^--\s+KEYS\[(\d+)\]", re.MULTILINE)
_VARIADIC_RE = re.compile(r"^--\s+KEYS\[\d+\.\.\]", re.MULTILINE)
GENERATED_INCLUDES = {"keys": lua_keys_include}


class ScriptError(Exception):
    """A script file is malformed (bad include, missing header)."""


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str
    num_keys: int
    variadic: bool


def _read_include(name: str) -> str:
    if name in GENERATED_INCLUDES:
        return GENERATED_INCLUDES[name]()
    path = LUA_DIR / "include" / f"{name}.lua"
    if not path.exists():
        raise ScriptError(f"unknown include {name!r}")
    return path.read_text()


def expand(source: str, seen: set[str] | None = None) -> str:
    """Inline ``--@include`` lines recursively; each include appears once."""
    seen = set() if seen is None else seen

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            return f"-- (include {name} already inlined)"
        seen.add(name)
        return expand(_read_include(name), seen)

    return _INCLUDE_RE.sub(replace, source)


def load_script(path: Path) -> Script:
    raw = path.read_text()
    key_numbers = sorted({int(n) for n in _KEYS_RE.findall(raw)})
    if key_numbers != list(range(1, len(key_numbers) + 1)):
        raise ScriptError(f"{path.name}: header KEYS must be numbered 1..n, got {key_numbers}")
    source = expand(raw)
    return Script(
        name=path.stem,
        source=source,
        sha=hashlib.sha1(source.encode()).hexdigest(),
        num_keys=len(key_numbers),
        variadic=bool(_VARIADIC_RE.search(raw)),
    )


def load_all(directory: Path = LUA_DIR) -> dict[str, Script]:
    return {p.stem: load_script(p) for p in sorted(directory.glob("*.lua"))}


def error_from_reply(exc: redis_errors.ResponseError) -> Exception:
    """Map a script's ``CODE\\tfield\\tmessage`` error reply to a contract error; others pass through."""
    text = str(exc)
    code, sep, rest = text.partition("\t")
    cls = errors.ERRORS_BY_CODE.get(code)
    if not sep or cls is None:
        # Redis wraps errors raised inside scripts: "... user_script:12: CODE\tfield\tmsg ...".
        for candidate, klass in errors.ERRORS_BY_CODE.items():
            marker = candidate + "\t"
            if marker in text:
                code, rest = candidate, text.split(marker, 1)[1]
                cls = klass
                break
        else:
            return exc
    field, _, message = rest.partition("\t")
    message = message.split(" script:", 1)[0].strip()
    return cls(message or None, field=field or None)


class Coalescer:
    """Sends the EVALSHA calls issued during one turn of the event loop as one pipeline: one socket write
    and one read for all the concurrent requests of a process, instead of one each. Each caller gets its
    own reply or error; a connection failure fails every call of that pipeline (they are then retried
    by their clients like any 503)."""

    def __init__(self, redis: Any):
        self.redis = redis
        self._pending: list[tuple[str, Sequence[str], Sequence[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((sha, keys, args, future))
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[str, Sequence[str], Sequence[Any], asyncio.Future[Any]]]) -> None:
        results: list[Any]
        try:
            if len(batch) == 1:
                sha, keys, args, _ = batch[0]
                try:
                    results = [await self.redis.evalsha(sha, len(keys), *keys, *args)]
                except redis_errors.ResponseError as exc:
                    results = [exc]
            else:
                pipe = self.redis.pipeline(transaction=False)
                for sha, keys, args, _ in batch:
                    pipe.evalsha(sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class Scripts:
    """Calls scripts by SHA on one Redis client (coalescing concurrent calls into pipelines, except on a
    Redis Cluster, where each call goes to its own node)."""

    def __init__(self, redis: Any, scripts: dict[str, Script] | None = None, *, coalesce: bool = True):
        self.redis = redis
        self.scripts = scripts if scripts is not None else load_all()
        self.coalescer = Coalescer(redis) if coalesce and not isinstance(redis, RedisCluster) else None

    async def _evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self.coalescer is not None:
            return await self.coalescer.evalsha(script.sha, keys, args)
        return await self.redis.evalsha(script.sha, len(keys), *keys, *args)

    async def load(self) -> None:
        """Load every script (start-up; a later NOSCRIPT reloads on demand)."""
        for script in self.scripts.values():
            await self.redis.script_load(script.source)

    async def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self.scripts[name]
        if len(keys) != script.num_keys and not (script.variadic and len(keys) >= script.num_keys):
            raise errors.InternalError(f"script {name} takes {script.num_keys} keys, got {len(keys)}")
        try:
            try:
                return await self._evalsha(script, keys, args)
            except redis_errors.NoScriptError:
                await self.redis.script_load(script.source)
                return await self._evalsha(script, keys, args)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError) as exc:
            raise errors.Unavailable(headers={"Retry-After": "1"}) from exc
        except redis_errors.OutOfMemoryError as exc:
            raise errors.Unavailable(
                "the message store is out of memory; consume messages or add memory", headers={"Retry-After": "5"}
            ) from exc
        except (redis_errors.ReadOnlyError, redis_errors.TryAgainError, redis_errors.ClusterDownError) as exc:
            raise errors.Unavailable(headers={"Retry-After": "1"}) from exc
        except redis_errors.ResponseError as exc:
            mapped = error_from_reply(exc)
            if mapped is exc:
                raise
            raise mapped from None
