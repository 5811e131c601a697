"""Logs: one line per request, errors and background jobs, readable by people (the default) or as JSON lines
(``BROKER_LOG_FORMAT=json``), on standard error.

A request line (logger ``broker.access``, level INFO) carries ``request_id``, ``method``, ``route`` (the route
template, never the raw path), ``status``, ``duration_ms`` and ``project`` (never a key). Errors carry the
``request_id`` of their request; background jobs carry ``project``, ``queue`` and ``message_id`` where they
concern a message. ``BROKER_ACCESS_LOG=0`` turns the request lines off (errors are still logged).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

#: The structured fields a line may carry (``extra=`` of the logging call).
FIELDS = ("request_id", "method", "route", "status", "duration_ms", "project", "queue", "message_id")
FORMATS = ("console", "json")

access_log = logging.getLogger("broker.access")
_encode = msgspec.json.Encoder().encode


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: value for name in FIELDS if (value := record.__dict__.get(name)) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, the fields, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class ConsoleFormatter(logging.Formatter):
    """``time level logger: message key=value ...``, the traceback below."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if not fields:
            return text
        head, sep, rest = text.partition("\n")
        extra = " ".join(f"{name}={value}" for name, value in fields.items() if name not in ("method", "route",
                                                                                           "status"))
        return f"{head} {extra}{sep}{rest}"


def configure(level: str = "info", fmt: str = "console", access: bool = True) -> None:
    """Send every log line of the process (uvicorn's too) to standard error in ``fmt``, from ``level`` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "arq"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our own request line replaces it
    access_log.disabled = not access


def log_request(request_id: str, method: str, route: str, status: int, seconds: float, project: str | None) -> None:
    """The request line."""
    if access_log.isEnabledFor(logging.INFO):
        ms = round(seconds * 1000, 2)
        access_log.info("%s %s %d %.2fms", method, route, status, ms, extra={
            "request_id": request_id, "method": method, "route": route, "status": status, "duration_ms": ms,
            "project": project,
        })
