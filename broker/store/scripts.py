"""The only place that loads and calls Lua.

Every ``lua/*.lua`` file is one atomic operation. At load time ``--@include name`` lines are replaced
by the definitions of ``lua/include/name.lua`` (each include once, no cycles) that the script uses,
directly or through other definitions (``expand``), the header's ``KEYS[i]`` lines are counted, and the
SHA is computed locally. Calls go out as EVALSHA; a NOSCRIPT reply (a restarted or
flushed server) loads the script and retries once. Error replies of the form
``CODE\\tfield\\tmessage`` become the matching :mod:`broker.errors` exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.resources
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection

from broker import errors
from broker.store.failures import ReplicaAckError, store_failure
from broker.store.keys import lua_keys_include
from broker.store.pipeline import ScriptPipe
from broker.store.redis_adapter import on_one_node_connection

log = logging.getLogger("broker.store.scripts")

#: The scripts, package data of ``broker.store`` (carried by the wheel).
LUA_DIR = Path(str(importlib.resources.files("broker.store").joinpath("lua")))
_INCLUDE_RE = re.compile(r"^--@include\s+\"?([a-z_]+)\"?\s*$", re.MULTILINE)
_KEYS_RE = re.compile(r"^--\s+KEYS\[(\d+)\]", re.MULTILINE)
_VARIADIC_RE = re.compile(r"^--\s+KEYS\[\d+\.\.\]", re.MULTILINE)
GENERATED_INCLUDES = {"keys": lua_keys_include}
#: Scripts whose effect need not wait for replicas under ``BROKER_REPLICA_ACKS``: reads, and writes that any
#: later call recomputes from the time (maintenance: ended leases, due delays, retention) or that cost
#: nothing when lost (rate-limit tokens). Every other script's effect is acknowledged to the client, so it
#: waits for the replicas.
NOT_REPLICA_ACKED = frozenset(
    {"get_queue", "list_queues", "list_subscriptions", "queue_metrics", "stats", "dlq_list", "maintain", "take_tokens"}
)


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
        raise ScriptError(f"unknown include {name!r}: {path} is missing")
    return path.read_text()


# Tree-shaking. An include is a list of top-level definitions, each a comment block directly above (optional)
# and either `local function name(...)` ... `end` (the `end` alone at column 0, the body indented) or
# `local a[, b] = ...` (continued by indented lines). A script gets only the definitions its body uses,
# directly or through other definitions, in their include order: Redis runs the whole chunk on every call,
# so every definition left in costs a closure or a table per call.
_DEFINITION_RE = re.compile(r"^local\s+(?:function\s+([A-Za-z_]\w*)\s*\(|([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=)")
_LUA_TOKEN_RE = re.compile(
    r"""--\[(=*)\[.*?\]\1\]          # long comment
      | --[^\n]*                     # comment
      | \[(=*)\[.*?\]\2\]            # long string
      | "(?:\\.|[^"\\\n])*"          # strings
      | '(?:\\.|[^'\\\n])*'
      | ([A-Za-z_]\w*)               # a name
    """,
    re.DOTALL | re.VERBOSE,
)


@dataclass(frozen=True)
class _Definition:
    names: tuple[str, ...]
    text: str  # with its comment block
    uses: frozenset[str]  # names in its code (not in comments or strings)


def lua_names(code: str) -> set[str]:
    """The names (identifiers and keywords) in Lua code, leaving out comments and string literals."""
    return {m.group(3) for m in _LUA_TOKEN_RE.finditer(code) if m.group(3)}


def _definitions(name: str, source: str, read: Callable[[str], str], seen: set[str]) -> list[_Definition]:
    """The top-level definitions of include ``name`` (those of its own includes first, where included)."""
    found: list[_Definition] = []
    lines = source.splitlines()
    comment: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        include = _INCLUDE_RE.match(line)
        if include:
            found += _include(include.group(1), read, seen)
            comment = []
            i += 1
            continue
        if not line.strip():
            comment = []  # a blank line detaches a comment from what follows
            i += 1
            continue
        if line.startswith("--"):
            comment.append(line)
            i += 1
            continue
        match = _DEFINITION_RE.match(line)
        if match is None:
            raise ScriptError(f"include {name}, line {i + 1}: expected a top-level `local` definition: {line!r}")
        end = i + 1
        if match.group(1):  # a function: up to `end` alone at column 0; its body indented
            while end < len(lines) and lines[end].rstrip() != "end":
                if lines[end][:1] not in ("", " ", "\t") and not lines[end].startswith("--"):
                    raise ScriptError(f"include {name}, line {end + 1}: function {match.group(1)} is not closed "
                                      "by `end` alone at column 0 before this line")
                end += 1
            if end == len(lines):
                raise ScriptError(f"include {name}: function {match.group(1)} has no `end` at column 0")
            end += 1
            names: tuple[str, ...] = (match.group(1),)
        else:  # a value, continued by indented lines or closing brackets
            while end < len(lines) and lines[end][:1] in (" ", "\t", "}", ")"):
                end += 1
            names = tuple(n.strip() for n in match.group(2).split(","))
        code = "\n".join(lines[i:end])
        found.append(_Definition(names, "\n".join([*comment, code]), frozenset(lua_names(code))))
        comment = []
        i = end
    return found


def _include(name: str, read: Callable[[str], str], seen: set[str]) -> list[_Definition]:
    if name in seen:
        return []
    seen.add(name)
    return _definitions(name, read(name), read, seen)


def expand(source: str, read: Callable[[str], str] = _read_include) -> str:
    """Replace the ``--@include`` lines of a script with the definitions of the includes (recursively, each
    include once) that the script uses, directly or through other definitions; the rest is left out."""
    seen: set[str] = set()
    pieces: list[str | list[_Definition]] = []
    for line in source.splitlines():
        include = _INCLUDE_RE.match(line)
        pieces.append(_include(include.group(1), read, seen) if include else line)
    defined: dict[str, _Definition] = {}
    for piece in pieces:
        for definition in piece if isinstance(piece, list) else ():
            for defined_name in definition.names:
                if defined_name in defined:
                    raise ScriptError(f"{defined_name!r} is defined twice by the includes")
                defined[defined_name] = definition
    body = "\n".join(p for p in pieces if isinstance(p, str))
    wanted = [defined[n] for n in lua_names(body) if n in defined]
    kept: set[tuple[str, ...]] = set()  # by the names it defines (unique, checked above)
    while wanted:
        definition = wanted.pop()
        if definition.names not in kept:
            kept.add(definition.names)
            wanted += [defined[n] for n in definition.uses if n in defined]
    out: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
        else:
            out += [d.text for d in piece if d.names in kept]
    return "\n".join(out) + "\n"


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


@dataclass(frozen=True)
class Library:
    """Every script of ``lua/``, one field each, named after its file: callers name a script as an attribute
    (``scripts.lua.publish``), never by a string, and a script without a field (or a field without its file)
    stops start-up with one line."""

    ack: Script
    claim: Script
    create_queue: Script
    delete_queue: Script
    dlq_list: Script
    extend: Script
    get_queue: Script
    history: Script
    list_queues: Script
    list_subscriptions: Script
    maintain: Script
    nack: Script
    overview: Script
    peek: Script
    peek_message: Script
    publish: Script
    purge: Script
    queue_metrics: Script
    push_ack: Script
    push_fail: Script
    redrive: Script
    set_rate_limit: Script
    stats: Script
    sqs_attributes: Script
    subscribe: Script
    take_tokens: Script
    unsubscribe: Script
    update_queue: Script

    @classmethod
    def load(cls, directory: Path = LUA_DIR) -> Library:
        names = [f.name for f in dataclasses.fields(cls)]
        present = {p.stem for p in directory.glob("*.lua")}
        missing = [f"{n}.lua" for n in names if n not in present]
        if missing:
            raise ScriptError(f"the installation is incomplete: {', '.join(missing)} missing from {directory}")
        unknown = sorted(present - set(names))
        if unknown:
            raise ScriptError(f"{', '.join(unknown)}: scripts with no field in broker.store.scripts.Library")
        return cls(**{n: load_script(directory / f"{n}.lua") for n in names})

    def all(self) -> list[Script]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


def load_all(directory: Path = LUA_DIR) -> dict[str, Script]:
    """Every script by name (checks and tools); raises ScriptError when one is missing or malformed."""
    return {script.name: script for script in Library.load(directory).all()}


@dataclass(frozen=True)
class ReplicaAcks:
    """``BROKER_REPLICA_ACKS``: every state change waits for ``replicas`` replicas, at most ``timeout_ms``."""

    replicas: int = 0
    timeout_ms: int = 1000


def _pipe_for(redis: Any, acks: ReplicaAcks) -> ScriptPipe | None:
    """A pipelined connection for a plain client; none for a Redis Cluster (each call goes to its own node)
    or a client whose connections are not sockets."""
    pool = getattr(redis, "connection_pool", None)
    if not isinstance(redis, aioredis.Redis) or pool is None:
        return None
    if not issubclass(pool.connection_class, AbstractConnection):
        return None
    return ScriptPipe(
        pool, pool.connection_kwargs.get("socket_timeout"), replicas=acks.replicas, replica_timeout_ms=acks.timeout_ms
    )


class Scripts:
    """Calls scripts by SHA on one Redis client: over one pipelined connection (:mod:`broker.store.pipeline`)
    that carries the calls of all concurrent requests, or, on a Redis Cluster, each call to its own node.
    Failures become contract errors through :func:`broker.store.failures.store_failure`."""

    def __init__(
        self, redis: Any, library: Library | None = None, *, coalesce: bool = True, acks: ReplicaAcks | None = None
    ):
        self.redis = redis
        self.lua = library if library is not None else Library.load()
        self.acks = acks or ReplicaAcks()
        self.pipe = _pipe_for(redis, self.acks) if coalesce else None

    def _replicated(self, script: Script) -> bool:
        """Whether a call of ``script`` waits for the replicas (BROKER_REPLICA_ACKS: the state changes)."""
        return bool(self.acks.replicas) and script.name not in NOT_REPLICA_ACKED

    def _evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Awaitable[Any]:
        """The pipe's future, or the cluster client's coroutine (no coroutine frame of its own)."""
        replicated = self._replicated(script)
        if self.pipe is not None:
            return self.pipe.evalsha(script.sha, keys, args, replicated)
        if replicated:
            return self._evalsha_and_wait(script, keys, args)
        return self.redis.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[no-any-return]

    async def _eval_source(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The call again after a NOSCRIPT (a restarted, flushed or newly promoted server). On the pipe it goes
        with the script's source (``EVAL``), so the script is loaded on the node the pipe reaches: loaded through
        another connection it could reach another node during a failover, and the retry fail again. The cluster
        client loads it on every primary first."""
        if self.pipe is not None:
            return await self.pipe.eval(script.source, keys, args, self._replicated(script))
        await self.redis.script_load(script.source)
        return await self._evalsha(script, keys, args)

    async def _evalsha_and_wait(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Without the pipe (a Redis Cluster, or a client of other connections): the script and a WAIT on the
        same connection of the node that holds the keys (WAIT counts that connection's writes)."""
        acks = self.acks
        if isinstance(self.redis, RedisCluster):
            await self.redis.initialize()  # a no-op once the client knows the cluster
            node = self.redis.get_node_from_key(keys[0])
            try:
                reply, acked = await on_one_node_connection(
                    node, [("EVALSHA", script.sha, len(keys), *keys, *args), ("WAIT", acks.replicas, acks.timeout_ms)]
                )
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
                await self._forget_cluster_layout(node)
                raise
            if isinstance(reply, redis_errors.MovedError | redis_errors.AskError | redis_errors.TryAgainError):
                # The slot moved (a failover): learn the new layout, and let the client retry (503).
                await self._forget_cluster_layout(node)
                raise redis_errors.ConnectionError(f"the slot moved ({reply}); retry")
        else:
            pipe = self.redis.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", acks.replicas, acks.timeout_ms)
            reply, acked = await pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < acks.replicas:
            raise ReplicaAckError(int(acked), acks.replicas, acks.timeout_ms)
        return reply

    async def _forget_cluster_layout(self, node: Any) -> None:
        """After a node failed or a slot moved: what the cluster client does itself in that case (drop the
        node from its start-up nodes, close, and read the layout again on the next call)."""
        self.redis.nodes_manager.startup_nodes.pop(node.name, None)
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    async def close(self) -> None:
        """Close the pipelined connection (the client's own connections are the client's)."""
        if self.pipe is not None:
            await self.pipe.close()

    async def load(self) -> None:
        """Load every script (start-up; a later NOSCRIPT reloads on demand)."""
        for script in self.lua.all():
            await self.redis.script_load(script.source)

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One call of ``script``: its reply, or the contract error of its failure."""
        if len(keys) != script.num_keys and not (script.variadic and len(keys) >= script.num_keys):
            raise errors.InternalError(f"script {script.name} takes {script.num_keys} keys, got {len(keys)}")
        try:
            try:
                return await self._evalsha(script, keys, args)
            except redis_errors.NoScriptError:
                return await self._eval_source(script, keys, args)
        except RuntimeError as exc:
            # redis-py's cluster client re-reads the cluster's layout while another call drops a failed node
            # from it ("dictionary changed size during iteration"): the call was not sent; retry it.
            if isinstance(self.redis, RedisCluster) and "changed size during iteration" in str(exc):
                raise store_failure(redis_errors.ConnectionError(str(exc))) from None
            raise
        except (redis_errors.RedisError, OSError) as exc:
            mapped = store_failure(exc)
            if isinstance(mapped, errors.InternalError):
                log.error("script %s failed: %s", script.name, exc)
            raise mapped from None
