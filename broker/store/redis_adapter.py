"""The private parts of redis-py that the pipelined connection (broker/store/pipeline.py) relies on, in one
place: the error-reply parser (so an error reply becomes the same exception class the client would raise)
and a connection's stream reader and writer (the pipe writes and reads the socket itself).

redis-py has no public API for either. :func:`check` verifies that the installed version still has them;
the test suite calls it, so an upgrade that breaks them fails loudly there instead of at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection


def parse_error_reply(text: str) -> Exception:
    """An error reply as the client would raise it (NOSCRIPT, OOM, READONLY, LOADING... by class)."""
    error: Exception = BaseParser.parse_error(text)  # type: ignore[no-untyped-call]
    return error


def streams(connection: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The stream reader and writer of a connected ``redis.asyncio`` connection."""
    reader, writer = connection._reader, connection._writer
    if reader is None or writer is None:
        raise RuntimeError("the connection is not connected")
    return reader, writer


def abandon(connection: Any) -> None:
    """Close a connection's socket at once, without awaiting (the stream closes with the loop's next turns),
    and detach its streams so the client does not use them again."""
    with contextlib.suppress(Exception):
        connection._writer.close()
    connection._reader = connection._writer = None


def check() -> None:
    """Raise RuntimeError when the installed redis-py lacks what this module uses."""
    if not callable(getattr(BaseParser, "parse_error", None)):
        raise RuntimeError("redis-py: BaseParser.parse_error is gone")
    error = parse_error_reply("NOSCRIPT No matching script")
    if type(error).__name__ != "NoScriptError":
        raise RuntimeError(f"redis-py: parse_error maps NOSCRIPT to {type(error).__name__}")
    connection = Connection()
    for name in ("_reader", "_writer"):
        if not hasattr(connection, name):
            raise RuntimeError(f"redis-py: Connection.{name} is gone")
