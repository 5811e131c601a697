"""The Lua scripts and their Python callers agree: every error code a script can raise maps to a contract
error, and every call passes the number of KEYS the script's header declares."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker import errors
from broker.store.scripts import LUA_DIR, load_all

ROOT = Path(__file__).resolve().parent.parent
CALLER_DIRS = [ROOT / "broker"]
_FAIL_RE = re.compile(r"""\bfail\(\s*["']([A-Za-z_]+)["']""")


def raised_codes() -> dict[str, set[str]]:
    """Error code -> the Lua files that can raise it."""
    found: dict[str, set[str]] = {}
    for path in sorted(LUA_DIR.rglob("*.lua")):
        for code in _FAIL_RE.findall(path.read_text()):
            found.setdefault(code, set()).add(str(path.relative_to(LUA_DIR)))
    return found


def test_the_lua_sources_raise_errors() -> None:
    codes = raised_codes()
    # The scan itself works: codes every lifecycle script relies on are seen.
    assert {"QUEUE_NOT_FOUND", "MESSAGE_NOT_FOUND", "LEASE_EXPIRED", "IDEMPOTENCY_KEY_REUSED"} <= set(codes)


@pytest.mark.parametrize("code", sorted(raised_codes()))
def test_every_raised_code_is_in_the_error_table(code: str) -> None:
    cls = errors.ERRORS_BY_CODE.get(code)
    assert cls is not None, f"{code} (raised in {sorted(raised_codes()[code])}) is not in broker.errors.ERRORS_BY_CODE"
    assert cls.code == code


@dataclass(frozen=True)
class CallSite:
    where: str
    script: str
    keys: int
    variadic: bool  # keys built as a list literal and then appended to


def _list_length(node: ast.expr) -> int | None:
    if isinstance(node, ast.List) and not any(isinstance(e, ast.Starred) for e in node.elts):
        return len(node.elts)
    return None


def call_sites() -> list[CallSite]:
    """Every ``<x>.run(<y>.lua.name, keys, args)`` / ``<x>._run(...)``: a script named as an attribute."""
    sites: list[CallSite] = []
    for directory in CALLER_DIRS:
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for func in ast.walk(tree):
                if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                assigned: dict[str, int] = {}
                appended: set[str] = set()
                for node in ast.walk(func):
                    if isinstance(node, ast.Assign) and len(node.targets) == 1:
                        target = node.targets[0]
                        length = _list_length(node.value)
                        if isinstance(target, ast.Name) and length is not None:
                            assigned[target.id] = length
                    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                            and node.func.attr in ("append", "extend")
                            and isinstance(node.func.value, ast.Name)):
                        appended.add(node.func.value.id)
                for node in ast.walk(func):
                    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                            and node.func.attr in ("run", "_run") and len(node.args) >= 2
                            and isinstance(node.args[0], ast.Attribute)
                            and isinstance(node.args[0].value, ast.Attribute) and node.args[0].value.attr == "lua"):
                        continue
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    name = node.args[0].attr
                    keys_node = node.args[1]
                    length = _list_length(keys_node)
                    if length is not None:
                        sites.append(CallSite(where, name, length, False))
                    elif isinstance(keys_node, ast.Name) and keys_node.id in assigned:
                        sites.append(CallSite(where, name, assigned[keys_node.id], keys_node.id in appended))
                    else:
                        pytest.fail(f"{where}: cannot count the KEYS passed to {name!r}")
    return sites


def test_store_calls_are_found() -> None:
    scripts = {site.script for site in call_sites() if site.where.startswith("broker/store/queues.py")}
    assert {"publish", "claim", "ack", "nack", "extend", "stats", "purge", "redrive", "dlq_list", "create_queue",
            "update_queue", "delete_queue", "list_queues"} <= scripts


def test_every_script_is_called() -> None:
    assert set(load_all()) == {site.script for site in call_sites()}


MODULES_WITH_RUN = {"uvicorn", "asyncio", "subprocess"}  # their run() takes a string that is not a script


def test_no_script_is_called_by_a_string_name() -> None:
    for directory in CALLER_DIRS:
        for path in sorted(directory.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("call", "_call", "run", "_run", "evalsha") and node.args
                        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                        and not (isinstance(node.func.value, ast.Name) and node.func.value.id in MODULES_WITH_RUN)):
                    pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} names a script by a string")


@pytest.mark.parametrize("site", call_sites(), ids=lambda s: f"{s.script}@{s.where}")
def test_call_passes_the_keys_the_header_declares(site: CallSite) -> None:
    scripts = load_all()
    assert site.script in scripts, f"{site.where} calls {site.script!r}, which is not a script in lua/"
    script = scripts[site.script]
    if site.variadic:
        assert script.variadic, f"{site.where} passes a variable number of KEYS; the header of {site.script} does not"
        assert site.keys == script.num_keys, f"{site.where}: fixed KEYS {site.keys}, header {script.num_keys}"
    else:
        assert site.keys == script.num_keys, (
            f"{site.where} passes {site.keys} KEYS to {site.script}; its header declares {script.num_keys}"
        )
