"""One connection that pipelines the script calls of every concurrent request of a process.

``ScriptPipe.evalsha`` returns a future at once. The calls issued during one turn of the event loop go
out in one socket write at the end of the turn, and one reader task matches the replies to the futures
in order (Redis answers a connection's commands in the order they came). Per call this costs the packing
of the command and one future: no task, no per-reply timeout and no pool checkout, which is what the
generic client pays for every command.

The connection is made by the client's own pool settings and connect hook (authentication, database,
TLS and the store-identity check of :mod:`broker.store.instance` are the same as for every other connection).
A lost connection fails the calls in flight with ``redis.exceptions.ConnectionError`` (their requests
get a 503 and are retried by their clients); the next call connects again. When replies are awaited and
none comes for ``timeout`` seconds, the calls in flight fail with ``TimeoutError`` and the connection is
dropped, like the generic client's socket timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis import exceptions as redis_errors

from broker.store.redis_adapter import abandon, parse_error_reply, streams


def pack_evalsha(sha: str, keys: Sequence[str], args: Sequence[Any]) -> bytes:
    """The RESP encoding of ``EVALSHA sha len(keys) *keys *args`` (str, bytes, int; TypeError for others),
    by hiredis's packer in C."""
    return hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))  # type: ignore[no-any-return]


def reply_error(text: str) -> Exception:
    """An error reply as the generic client would raise it (NOSCRIPT, OOM, READONLY, LOADING... by class)."""
    return parse_error_reply(text)


class ScriptPipe:
    """Pipelined EVALSHA over one dedicated connection of ``pool`` (a ``redis.asyncio.ConnectionPool``)."""

    def __init__(self, pool: Any, timeout: float | None = None):
        self._pool = pool
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connection: Any = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._outgoing: list[bytes] = []
        self._outgoing_futures: list[asyncio.Future[Any]] = []
        self._in_flight: deque[asyncio.Future[Any]] = deque()
        self._last_progress = 0.0
        self._watchdog: asyncio.TimerHandle | None = None

    def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        command = pack_evalsha(sha, keys, args)
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(command)
        self._outgoing_futures.append(future)
        return future

    def _flush(self) -> None:
        if self._writer is None:
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            return  # _connect flushes once connected
        data, futures = self._outgoing, self._outgoing_futures
        self._outgoing, self._outgoing_futures = [], []
        if not self._in_flight:
            self._last_progress = self._loop.time() if self._loop else 0.0
        self._in_flight.extend(futures)
        self._writer.write(b"".join(data))
        if self._watchdog is None and self._timeout is not None and self._loop is not None:
            self._watchdog = self._loop.call_later(self._timeout, self._check_progress)

    async def _connect(self) -> None:
        try:
            connection = self._pool.make_connection()
            await connection.connect()
            self._connection = connection
            reader, self._writer = streams(connection)
            self._reader_task = asyncio.ensure_future(self._read(reader, connection))
        except BaseException as exc:
            self._fail_outgoing(_as_connection_error(exc))
            if not isinstance(exc, Exception):
                raise
        else:
            if self._outgoing:
                self._flush()
        finally:
            self._connecting = None

    async def _read(self, stream: asyncio.StreamReader, connection: Any) -> None:
        parser = hiredis.Reader(replyError=reply_error)
        in_flight = self._in_flight
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await stream.read(65536)
                if not data:
                    raise redis_errors.ConnectionError("the message store closed the connection")
                self._last_progress = loop.time()
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    future = in_flight.popleft()
                    if future.done():  # its caller went away
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        except asyncio.CancelledError:
            self._drop(connection, redis_errors.ConnectionError("the connection to the message store was closed"))
            raise
        except Exception as exc:
            self._drop(connection, _as_connection_error(exc))

    def _check_progress(self) -> None:
        self._watchdog = None
        if not self._in_flight or self._loop is None or self._timeout is None:
            return
        waited = self._loop.time() - self._last_progress
        if waited >= self._timeout:
            self._drop(self._connection, redis_errors.TimeoutError("timeout reading from the message store"))
            return
        self._watchdog = self._loop.call_later(self._timeout - waited, self._check_progress)

    def _drop(self, connection: Any, exc: Exception) -> None:
        """Forget the connection (if it is still the current one) and fail every call in flight on it."""
        if connection is not self._connection:
            return
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        self._reader_task = None
        self._connection = self._writer = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        in_flight, self._in_flight = self._in_flight, deque()
        for future in in_flight:
            if not future.done():
                future.set_exception(exc)
        if connection is not None:
            abandon(connection)

    def _fail_outgoing(self, exc: Exception) -> None:
        futures, self._outgoing, self._outgoing_futures = self._outgoing_futures, [], []
        for future in futures:
            if not future.done():
                future.set_exception(exc)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        connection, task = self._connection, self._reader_task
        self._drop(connection, redis_errors.ConnectionError("the service is shutting down"))
        if task is not None:
            with contextlib.suppress(BaseException):
                await task
        self._fail_outgoing(redis_errors.ConnectionError("the service is shutting down"))
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect()


def _as_connection_error(exc: BaseException) -> Exception:
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return exc
    error = redis_errors.ConnectionError(f"the message store is unreachable: {exc}")
    error.__cause__ = exc
    return error
