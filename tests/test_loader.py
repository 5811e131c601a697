"""The script loader: ``--@include`` inlines only the top-level definitions of the includes that a script
uses, directly or through other definitions (Redis runs the whole chunk, every definition, on each call)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from broker.store.keys import lua_keys_include
from broker.store.scripts import LUA_DIR, ScriptError, expand, load_all, lua_names

INCLUDES = {
    "base": (
        "-- Raises.\n"
        "local function fail(message)\n"
        "  error(message)\n"
        "end\n"
        "\n"
        "local UNUSED_TABLE = {\n"
        "  1, 2,\n"
        "}\n"
        "local LIMIT, SPARE = 10, 11 -- one definition of two names\n"
        "\n"
        "-- Not used by anything.\n"
        "local function unused_helper(x)\n"
        "  return x\n"
        "end\n"
    ),
    "checks": (
        "--@include base\n"
        "-- Header of the include, apart from the definitions: left out.\n"
        "\n"
        "-- Checks n against LIMIT.\n"
        "local function check(n)\n"
        "  if n > LIMIT then fail(\"too big\") end\n"
        "  return n\n"
        "end\n"
        "\n"
        "local function mentions_in_text_only()\n"
        "  return \"unused_helper\" -- unused_helper in a string and a comment is no use\n"
        "end\n"
    ),
}


def reader(includes: dict[str, str]) -> Callable[[str], str]:
    def read(name: str) -> str:
        if name not in includes:
            raise ScriptError(f"unknown include {name!r}")
        return includes[name]

    return read


def test_only_the_definitions_a_script_uses_are_inlined() -> None:
    source = "-- KEYS[1]  string  a key\n--@include checks\nreturn check(tonumber(ARGV[1]))\n"
    out = expand(source, reader(INCLUDES))
    # Used directly, and through check: fail and LIMIT (with the name defined alongside), with their comments.
    assert "-- Checks n against LIMIT.\nlocal function check(n)" in out
    assert "-- Raises.\nlocal function fail(message)" in out
    assert "local LIMIT, SPARE = 10, 11" in out
    # Not used, or named only in a string or a comment.
    for dropped in ("UNUSED_TABLE", "unused_helper", "mentions_in_text_only", "Header of the include"):
        assert dropped not in out
    # Definitions keep their include order, where the include line was; the script is kept as it is.
    assert out.index("local function fail") < out.index("local LIMIT") < out.index("local function check")
    assert out.startswith("-- KEYS[1]  string  a key\n")
    assert out.endswith("return check(tonumber(ARGV[1]))\n")


def test_an_include_is_inlined_once() -> None:
    source = "--@include checks\n--@include base\nreturn check(1) + fail\n"
    out = expand(source, reader(INCLUDES))
    assert out.count("local function fail") == 1


@pytest.mark.parametrize(
    ("include", "problem"),
    [
        ("local function f()\n  return 1\n", "has no `end`"),
        ("local function f()\n  return 1\nlocal X = 2\nend\n", "not closed"),
        ("print(1)\n", "expected a top-level `local` definition"),
        ("local X = 1\nlocal X = 2\n", "defined twice"),
    ],
)
def test_a_malformed_include_is_refused(include: str, problem: str) -> None:
    with pytest.raises(ScriptError, match=problem):
        expand("--@include bad\nreturn X\n", reader({"bad": include}))


def test_lua_names_leave_out_comments_and_strings() -> None:
    code = 'local a = b .. "c d" .. [[e]] -- f\n--[[ g ]] local h = \'i\' .. "\\"j"'
    assert lua_names(code) == {"local", "a", "b", "h"}


def _include_definitions() -> set[str]:
    """Every top-level name the includes define (read here with a regex, not by the loader)."""
    sources = [p.read_text() for p in (LUA_DIR / "include").glob("*.lua")] + [lua_keys_include()]
    names: set[str] = set()
    for text in sources:
        for function, values in re.findall(r"^local\s+(?:function\s+(\w+)|([\w\s,]+?)\s*=)", text, re.MULTILINE):
            names.update([function] if function else [n.strip() for n in values.split(",")])
    return names


@pytest.mark.parametrize("name", sorted(load_all()))
def test_every_helper_a_script_uses_is_defined_in_it(name: str) -> None:
    source = load_all()[name].source
    defined = set(re.findall(r"^local\s+function\s+(\w+)", source, re.MULTILINE))
    for values in re.findall(r"^local\s+([\w\s,]+?)\s*=", source, re.MULTILINE):
        defined.update(n.strip() for n in values.split(","))
    missing = (lua_names(source) & _include_definitions()) - defined
    assert not missing, f"{name} uses {sorted(missing)} without their definitions"


def test_scripts_leave_out_what_they_do_not_use() -> None:
    scripts = load_all()
    assert "local function maintain(" not in scripts["publish"].source
    assert "local function maintain(" in scripts["claim"].source
    assert "local function cfg_reply(" not in scripts["ack"].source


async def test_every_script_compiles_in_redis(redis_client: Any) -> None:
    for script in load_all().values():
        assert (await redis_client.script_load(script.source)) == script.sha
