"""The private parts of redis-py that the pipelined connection (broker/store/pipeline.py) relies on, in one
place: the error-reply parser (so an error reply becomes the same exception class the client would raise)
and a connection's stream reader and writer (the pipe writes and reads the socket itself).

redis-py has no public API for either. :func:`check` verifies that the installed version still has them;
the test suite calls it, so an upgrade that breaks them fails loudly there instead of at run time.

Also the pool of one Redis Cluster node (:func:`on_one_node_connection`): a script call and its ``WAIT`` must
go out on the same connection (WAIT counts that connection's writes), which the cluster client's pipeline
does not promise (it re-sends a redirected command elsewhere, without its WAIT).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError


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


async def on_one_node_connection(node: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` on one connection of a cluster node (``redis.asyncio.cluster.ClusterNode``) and read
    their replies, an error reply as its exception; a failed connection is disconnected and its error raised."""
    connection = node.acquire_connection()
    replies: list[Any] = []
    try:
        await connection.send_packed_command(connection.pack_commands(commands), False)
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as exc:
                replies.append(exc)
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.disconnect()
        raise
    finally:
        node._free.append(connection)
    return replies


def check() -> None:
    """Raise RuntimeError when the installed redis-py lacks what this module uses."""
    if not callable(getattr(BaseParser, "parse_error", None)):
        raise RuntimeError("redis-py: BaseParser.parse_error is gone")
    error = parse_error_reply("NOSCRIPT No matching script")
    if type(error).__name__ != "NoScriptError":
        raise RuntimeError(f"redis-py: parse_error maps NOSCRIPT to {type(error).__name__}")
    from redis.asyncio.cluster import ClusterNode

    node = ClusterNode("127.0.0.1", 1)
    if not callable(getattr(node, "acquire_connection", None)) or not hasattr(node, "_free"):
        raise RuntimeError("redis-py: ClusterNode.acquire_connection or ClusterNode._free is gone")
    connection = Connection()
    for name in ("_reader", "_writer"):
        if not hasattr(connection, name):
            raise RuntimeError(f"redis-py: Connection.{name} is gone")
