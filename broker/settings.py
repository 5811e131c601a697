"""Configuration: one frozen object read from ``BROKER_*`` environment variables, flags overriding.

Invalid values raise :class:`ConfigError` with one line that names the variable; the CLI prints that
line and exits with status 2 instead of a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from broker.sentinel_url import parse_sentinel_url

#: A request body that has not arrived whole after this many seconds is refused (400): sooner than the
#: 30 s most HTTP clients give up at, so a stalled client is told why.
DEFAULT_BODY_TIMEOUT_SECONDS = 20
#: The request line and headers of a request together, in bytes (431 beyond; proxies commonly allow 8-16 KiB).
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
#: A connection whose request head is not complete this many seconds after it opened, or after the previous
#: response, is closed (slow or idle clients cannot hold connections).
DEFAULT_HEADER_TIMEOUT_SECONDS = 5
#: Open connections per API process (further ones: an idle connection is closed to make room, else 503).
DEFAULT_MAX_CONNECTIONS = 2048
PROJECT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")


class ConfigError(Exception):
    """A configuration value is invalid; the message is one line naming it."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range ({low}..{high})")
    return value


def parse_api_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """Parse ``project:key[,project:key...]`` into ``((project, key), ...)``."""
    pairs: list[tuple[str, str]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        project, sep, key = item.partition(":")
        if not sep or not key:
            raise ConfigError(f"BROKER_API_KEYS entry {item[:12]!r}... is not of the form project:key")
        if not PROJECT_RE.match(project):
            raise ConfigError(f"BROKER_API_KEYS project {project!r} must match {PROJECT_RE.pattern}")
        if len(key) < 8 or len(key) > 256 or any(c.isspace() for c in key):
            raise ConfigError(f"BROKER_API_KEYS key for project {project!r} must be 8..256 non-space characters")
        pairs.append((project, key))
    return tuple(pairs)


def _redis_url(raw: str) -> str:
    url = raw.strip()
    if not re.match(r"^(redis|rediss|unix|redis\+cluster|rediss\+cluster|redis\+sentinel|rediss\+sentinel)://", url):
        raise ConfigError(
            f"BROKER_REDIS_URL={raw!r} must start with redis://, rediss://, unix://, redis+cluster://, "
            "rediss+cluster://, redis+sentinel:// or rediss+sentinel://"
        )
    if re.match(r"^rediss?\+sentinel://", url):
        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            raise ConfigError(f"BROKER_REDIS_URL (Sentinel): {exc}") from None
    return url


@dataclass(frozen=True)
class Settings:
    """Everything a process of the service needs to know at start-up."""

    redis_url: str | None = None
    api_keys: tuple[tuple[str, str], ...] = ()
    data_dir: Path = Path("data")
    push_allow_private: bool = False
    accept_weak_durability: bool = False
    redis_server: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    run_workers: bool = True
    log_level: str = "info"
    max_body_bytes: int = 5 * 1024 * 1024
    auth_cache_seconds: float = 0.5
    max_long_polls: int = 1000
    max_long_polls_per_project: int | None = None  # None: nine tenths of max_long_polls (long_polls_per_project)
    body_timeout_seconds: int = DEFAULT_BODY_TIMEOUT_SECONDS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_seconds: int = DEFAULT_HEADER_TIMEOUT_SECONDS
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    metrics_token: str | None = None
    admin_key: str | None = None  # BROKER_ADMIN_KEY: the bearer key of /v1/admin (unset: the admin API is closed)
    log_format: str = "console"
    access_log: bool = True
    replica_acks: int = 0
    replica_ack_timeout_ms: int = 1000
    sqs_pepper: str | None = None  # seals the SQS secrets in the store (docs/sqs.md); None: data_dir/sqs-pepper
    sqs_region: str = "us-east-1"  # the region in the SQS edge's ARNs
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the ``BROKER_*`` variables; keyword overrides (CLI flags) win when not None."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("BROKER_REDIS_URL", "").strip():
            values["redis_url"] = _redis_url(env["BROKER_REDIS_URL"])
        if "BROKER_API_KEYS" in env:
            values["api_keys"] = parse_api_keys(env["BROKER_API_KEYS"])
        if env.get("BROKER_DATA_DIR", "").strip():
            values["data_dir"] = Path(env["BROKER_DATA_DIR"].strip())
        if "BROKER_PUSH_ALLOW_PRIVATE" in env:
            values["push_allow_private"] = _bool("BROKER_PUSH_ALLOW_PRIVATE", env["BROKER_PUSH_ALLOW_PRIVATE"])
        if "BROKER_ACCEPT_WEAK_DURABILITY" in env:
            values["accept_weak_durability"] = _bool(
                "BROKER_ACCEPT_WEAK_DURABILITY", env["BROKER_ACCEPT_WEAK_DURABILITY"]
            )
        if env.get("BROKER_RUN_WORKERS", "").strip():
            values["run_workers"] = _bool("BROKER_RUN_WORKERS", env["BROKER_RUN_WORKERS"])
        if env.get("BROKER_REDIS_SERVER", "").strip():
            values["redis_server"] = env["BROKER_REDIS_SERVER"].strip()
        if env.get("BROKER_LOG_LEVEL", "").strip():
            level = env["BROKER_LOG_LEVEL"].strip().lower()
            if level not in ("critical", "error", "warning", "info", "debug"):
                raise ConfigError(f"BROKER_LOG_LEVEL={level!r} must be one of critical, error, warning, info, debug")
            values["log_level"] = level
        if env.get("BROKER_MAX_LONG_POLLS", "").strip():
            values["max_long_polls"] = _int("BROKER_MAX_LONG_POLLS", env["BROKER_MAX_LONG_POLLS"], 1, 100_000)
        if env.get("BROKER_MAX_LONG_POLLS_PER_PROJECT", "").strip():
            values["max_long_polls_per_project"] = _int(
                "BROKER_MAX_LONG_POLLS_PER_PROJECT", env["BROKER_MAX_LONG_POLLS_PER_PROJECT"], 1, 100_000
            )
        if env.get("BROKER_BODY_TIMEOUT_SECONDS", "").strip():
            values["body_timeout_seconds"] = _int(
                "BROKER_BODY_TIMEOUT_SECONDS", env["BROKER_BODY_TIMEOUT_SECONDS"], 1, 3600
            )
        if env.get("BROKER_MAX_HEADER_BYTES", "").strip():
            values["max_header_bytes"] = _int("BROKER_MAX_HEADER_BYTES", env["BROKER_MAX_HEADER_BYTES"], 1024, 1 << 20)
        if env.get("BROKER_HEADER_TIMEOUT_SECONDS", "").strip():
            values["header_timeout_seconds"] = _int(
                "BROKER_HEADER_TIMEOUT_SECONDS", env["BROKER_HEADER_TIMEOUT_SECONDS"], 1, 300
            )
        if env.get("BROKER_MAX_CONNECTIONS", "").strip():
            values["max_connections"] = _int("BROKER_MAX_CONNECTIONS", env["BROKER_MAX_CONNECTIONS"], 16, 1_000_000)
        if env.get("BROKER_METRICS_TOKEN", "").strip():
            token = env["BROKER_METRICS_TOKEN"].strip()
            if not 8 <= len(token) <= 512 or any(c.isspace() for c in token):
                raise ConfigError("BROKER_METRICS_TOKEN must be 8..512 characters without spaces")
            values["metrics_token"] = token
        if env.get("BROKER_ADMIN_KEY", "").strip():
            admin_key = env["BROKER_ADMIN_KEY"].strip()
            if not 16 <= len(admin_key) <= 512 or any(c.isspace() for c in admin_key):
                raise ConfigError("BROKER_ADMIN_KEY must be 16..512 characters without spaces")
            values["admin_key"] = admin_key
        if env.get("BROKER_LOG_FORMAT", "").strip():
            log_format = env["BROKER_LOG_FORMAT"].strip().lower()
            if log_format not in ("console", "json"):
                raise ConfigError(f"BROKER_LOG_FORMAT={log_format!r} must be console or json")
            values["log_format"] = log_format
        if env.get("BROKER_ACCESS_LOG", "").strip():
            values["access_log"] = _bool("BROKER_ACCESS_LOG", env["BROKER_ACCESS_LOG"])
        if env.get("BROKER_REPLICA_ACKS", "").strip():
            values["replica_acks"] = _int("BROKER_REPLICA_ACKS", env["BROKER_REPLICA_ACKS"], 0, 16)
        if env.get("BROKER_REPLICA_ACK_TIMEOUT_MS", "").strip():
            values["replica_ack_timeout_ms"] = _int(
                "BROKER_REPLICA_ACK_TIMEOUT_MS", env["BROKER_REPLICA_ACK_TIMEOUT_MS"], 10, 60_000
            )
        if env.get("BROKER_SQS_PEPPER", "").strip():
            pepper = env["BROKER_SQS_PEPPER"].strip()
            if len(pepper) < 16:
                raise ConfigError("BROKER_SQS_PEPPER must be at least 16 characters")
            values["sqs_pepper"] = pepper
        if env.get("BROKER_SQS_REGION", "").strip():
            region = env["BROKER_SQS_REGION"].strip()
            if not re.match(r"^[a-z0-9-]{1,32}\Z", region):
                raise ConfigError(f"BROKER_SQS_REGION={region!r} must be lowercase letters, digits and '-'")
            values["sqs_region"] = region
        settings = cls(**values)
        if settings.max_long_polls_per_project is not None and (
            settings.max_long_polls_per_project > settings.max_long_polls
        ):
            raise ConfigError(
                f"BROKER_MAX_LONG_POLLS_PER_PROJECT={settings.max_long_polls_per_project} is larger than "
                f"BROKER_MAX_LONG_POLLS={settings.max_long_polls}"
            )
        return settings.with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Apply CLI flags (None means "not given") and validate the result."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if "redis_url" in given:
            given["redis_url"] = _redis_url(given["redis_url"])
        if "data_dir" in given:
            given["data_dir"] = Path(given["data_dir"])
        settings = replace(self, **given)
        if not 1 <= settings.port <= 65535:
            raise ConfigError(f"--port {settings.port} is out of range (1..65535)")
        if not 1 <= settings.workers <= 64:
            raise ConfigError(f"--workers {settings.workers} is out of range (1..64)")
        return settings

    @property
    def long_polls_per_project(self) -> int:
        """The long polls one project may hold in one process: ``max_long_polls_per_project``, by default nine
        tenths of ``max_long_polls`` (rounded up), so that one project cannot take the whole process's bound."""
        if self.max_long_polls_per_project is not None:
            return min(self.max_long_polls_per_project, self.max_long_polls)
        return self.max_long_polls - self.max_long_polls // 10
