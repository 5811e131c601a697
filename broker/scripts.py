"""The only place that loads and calls Lua.

Every ``lua/*.lua`` file is one atomic operation. At load time ``--@include name`` lines are replaced
by ``lua/include/name.lua`` (each included once, no cycles), the header's ``KEYS[i]`` lines are
counted, and the SHA is computed locally. Calls go out as EVALSHA; a NOSCRIPT reply (a restarted or
flushed server) loads the script and retries once. Error replies of the form
``CODE\\tfield\\tmessage`` become the matching :mod:`broker.errors` exception.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import exceptions as redis_errors

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


class Scripts:
    """Calls scripts by SHA on one Redis client."""

    def __init__(self, redis: Any, scripts: dict[str, Script] | None = None):
        self.redis = redis
        self.scripts = scripts if scripts is not None else load_all()

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
                return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
            except redis_errors.NoScriptError:
                await self.redis.script_load(script.source)
                return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
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
