"""Which server and key the client commands (``queue``, ``publish``, ``consume``, ``dlq``) talk to.

Each of the two is taken from the first of: the ``--url`` / ``--key`` flag; the profile named by
``--profile``; the ``BROKER_URL`` / ``BROKER_KEY`` variable; the profile named by ``BROKER_PROFILE``, else the
config file's ``default`` profile. The config file is TOML, at ``$BROKER_CONFIG``, else
``$XDG_CONFIG_HOME/broker/config.toml`` (``~/.config/broker/config.toml``)::

    default = "local"

    [profiles.local]
    url = "http://127.0.0.1:8080"
    key = "bk_..."

A file that holds a key and that other users can read draws a warning, as ssh does for its keys.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.cli.common import CliError, say

CONFIG_VARIABLE = "BROKER_CONFIG"
PROFILE_VARIABLE = "BROKER_PROFILE"
URL_VARIABLE = "BROKER_URL"
KEY_VARIABLE = "BROKER_KEY"


@dataclass(frozen=True)
class Connection:
    url: str
    key: str


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the config file is looked for."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_VARIABLE):
        return Path(env[CONFIG_VARIABLE]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "broker" / "config.toml"


def load_config(path: Path) -> dict[str, Any]:
    """The config file's content; empty when there is none. An unreadable file is a CliError (status 2)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", status=2) from None
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{path} is not valid TOML: {exc}", status=2) from None
    profiles = config.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise CliError(f"{path}: [profiles.NAME] tables expected", status=2)
    if any("key" in p for p in profiles.values()) and os.name == "posix":
        mode = path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            say(f"warning: {path} holds API keys and other users can read it (chmod 600 {path})")
    return config


def _profile(config: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    profiles: dict[str, Any] = config.get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise CliError(f"no profile {name!r} in {path} (profiles: {known})", status=2)
    found: dict[str, Any] = profiles[name]
    for field in ("url", "key"):
        if field in found and not isinstance(found[field], str):
            raise CliError(f"{path}: profiles.{name}.{field} must be a string", status=2)
    return found


def resolve(url: str | None, key: str | None, profile: str | None,
            environ: Mapping[str, str] | None = None) -> Connection:
    """The server URL and key from the flags, the environment and the config file (see the module's docstring)."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    needs_file = profile is not None or not (url or env.get(URL_VARIABLE)) or not (key or env.get(KEY_VARIABLE))
    config = load_config(path) if needs_file else {}
    named: dict[str, Any] = _profile(config, profile, path) if profile else {}
    fallback: dict[str, Any] = {}
    fallback_name = env.get(PROFILE_VARIABLE) or config.get("default")
    if fallback_name and needs_file and not profile:
        fallback = _profile(config, str(fallback_name), path)
    chosen_url = url or named.get("url") or env.get(URL_VARIABLE) or fallback.get("url")
    chosen_key = key or named.get("key") or env.get(KEY_VARIABLE) or fallback.get("key")
    missing = [what for what, value in (("server URL (--url, BROKER_URL)", chosen_url),
                                         ("API key (--key, BROKER_KEY)", chosen_key)) if not value]
    if missing:
        raise CliError(f"no {' and no '.join(missing)}, and no profile in {path} gives it", status=2)
    return Connection(str(chosen_url).rstrip("/"), str(chosen_key))
