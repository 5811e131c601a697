"""One connection that pipelines the script calls of every concurrent request of a process.

``ScriptPipe.evalsha`` returns a future at once. The calls issued during one turn of the event loop go
out in one socket write at the end of the turn, and one reader task matches the replies to the futures
in order (Redis answers a connection's commands in the order they came). Per call this costs the packing
of the command and one future: no task, no per-reply timeout and no pool checkout, which is what the
generic client pays for every command.

The connection is made by the client's own pool settings and connect hook (authentication, database,
TLS and the store-identity check of :mod:`broker.store.instance` are the same as for every other connection).
A lost connection fails the calls in flight (a replicated call whose script has answered is in flight until
its WAIT has) with ``redis.exceptions.ConnectionError`` (their requests
get a 503 and are retried by their clients); the next call connects again. When replies are awaited and
none comes for ``timeout`` seconds, the calls in flight fail with ``TimeoutError`` and the connection is
dropped, like the generic client's socket timeout.

Replicated acknowledgement (``BROKER_REPLICA_ACKS``): when the pipe is made with ``replicas=N``, the calls
marked ``replicated`` in one batch are followed, in the same write, by one ``WAIT N timeout_ms``; their
futures are settled only by its reply, so their callers hear of success only once N replicas have every
write of the batch (one WAIT per batch, not per call: a WAIT blocks the connection until it returns, and
Redis replicates in order, so the batch's last offset covers every call in it). While a WAIT is out, the
calls issued meanwhile are held and go out together, with one WAIT, when it answers: commands sent behind a
WAIT would wait for it on the server anyway, and batches piling up behind one WAIT each (a primary that has
lost its replicas answers every WAIT only at its timeout) would make the waits add up; held, a call waits
at most about two timeouts. Fewer than N within the
bound: those calls fail with :class:`broker.store.failures.ReplicaAckError` (503; the change may or may
not survive a failover, and the client retries it with its idempotency key).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis import exceptions as redis_errors

from broker.store.failures import ReplicaAckError
from broker.store.redis_adapter import abandon, parse_error_reply, streams

#: The longest a connect may take, beyond the reply timeout (the calls waiting for it then fail with 503).
CONNECT_BOUND_S = 5.0


def pack_evalsha(sha: str, keys: Sequence[str], args: Sequence[Any]) -> bytes:
    """The RESP encoding of ``EVALSHA sha len(keys) *keys *args`` (str, bytes, int; TypeError for others),
    by hiredis's packer in C."""
    return hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))  # type: ignore[no-any-return]


def pack_wait(replicas: int, timeout_ms: int) -> bytes:
    """The RESP encoding of ``WAIT replicas timeout_ms``."""
    return hiredis.pack_command(("WAIT", replicas, timeout_ms))  # type: ignore[no-any-return, arg-type]


def reply_error(text: str) -> Exception:
    """An error reply as the generic client would raise it (NOSCRIPT, OOM, READONLY, LOADING... by class)."""
    return parse_error_reply(text)


class _Held:
    """A replicated call whose script has answered: its reply waits for the batch's WAIT."""

    __slots__ = ("future", "reply")

    def __init__(self, future: asyncio.Future[Any]):
        self.future = future
        self.reply: Any = None


class _Barrier:
    """The WAIT that ends a batch: its reply settles the batch's replicated calls."""

    __slots__ = ("held",)

    def __init__(self, held: list[_Held]):
        self.held = held


def _future_of(entry: Any) -> asyncio.Future[Any] | None:
    if isinstance(entry, _Held):
        return entry.future
    if isinstance(entry, _Barrier):
        return None
    return entry  # type: ignore[no-any-return]


class ScriptPipe:
    """Pipelined EVALSHA over one dedicated connection of ``pool`` (a ``redis.asyncio.ConnectionPool``)."""

    def __init__(self, pool: Any, timeout: float | None = None, *, replicas: int = 0, replica_timeout_ms: int = 1000):
        self._pool = pool
        self._timeout = timeout
        self.replicas = replicas
        self._wait_command = pack_wait(replicas, replica_timeout_ms) if replicas else b""
        self._replica_timeout_ms = replica_timeout_ms
        self._outgoing_held: list[_Held] = []
        self._waiting = False  # a WAIT is out: hold further calls until it answers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connection: Any = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._outgoing: list[bytes] = []
        self._outgoing_futures: list[Any] = []  # futures, and _Held for replicated calls
        self._in_flight: deque[Any] = deque()  # futures, _Held and _Barrier entries in reply order
        self._last_progress = 0.0
        self._watchdog: asyncio.TimerHandle | None = None

    def evalsha(
        self, sha: str, keys: Sequence[str], args: Sequence[Any], replicated: bool = False
    ) -> asyncio.Future[Any]:
        """Send the call with the current batch; with ``replicated`` (and ``replicas`` set) its future is
        settled once the batch's WAIT has answered."""
        return self._send(pack_evalsha(sha, keys, args), replicated)

    def eval(
        self, source: str, keys: Sequence[str], args: Sequence[Any], replicated: bool = False
    ) -> asyncio.Future[Any]:
        """As :meth:`evalsha`, with the script's source (``EVAL``, which also caches the script on the node
        that runs it): the answer to a NOSCRIPT, on the same connection as the calls that will follow."""
        return self._send(hiredis.pack_command(("EVAL", source, len(keys), *keys, *args)), replicated)

    def _send(self, command: bytes, replicated: bool) -> asyncio.Future[Any]:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(command)
        if replicated and self.replicas:
            held = _Held(future)
            self._outgoing_futures.append(held)
            self._outgoing_held.append(held)
        else:
            self._outgoing_futures.append(future)
        return future

    def _flush(self) -> None:
        if not self._outgoing:
            return
        if self._writer is None:
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            return  # _connect flushes once connected
        if self._waiting:
            return  # the WAIT's reply flushes (_settle)
        data, futures = self._outgoing, self._outgoing_futures
        self._outgoing, self._outgoing_futures = [], []
        if self._outgoing_held:
            data.append(self._wait_command)
            futures.append(_Barrier(self._outgoing_held))
            self._outgoing_held = []
            self._waiting = True
        if not self._in_flight:
            self._last_progress = self._loop.time() if self._loop else 0.0
        self._in_flight.extend(futures)
        self._writer.write(b"".join(data))
        if self._watchdog is None and self._timeout is not None and self._loop is not None:
            self._watchdog = self._loop.call_later(self._timeout, self._check_progress)

    async def _connect(self) -> None:
        try:
            connection = self._pool.make_connection()
            # Bounded as a whole: with Sentinel, a connect first asks the sentinels for the primary.
            async with asyncio.timeout(CONNECT_BOUND_S if self._timeout is None else self._timeout + CONNECT_BOUND_S):
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
        demoted: Exception | None = None
        try:
            while True:
                data = await stream.read(65536)
                if not data:
                    raise redis_errors.ConnectionError("the message store closed the connection")
                self._last_progress = loop.time()
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    future = in_flight.popleft()
                    if type(future) is _Held:
                        future.reply = reply
                        if isinstance(reply, redis_errors.ReadOnlyError):
                            demoted = reply  # a replica: drop the connection once the batch is settled
                        continue
                    if type(future) is _Barrier:
                        self._settle(future, reply)
                        if demoted is not None or _on_a_replica(reply):
                            raise demoted or redis_errors.ReadOnlyError("WAIT refused: the node is a replica")
                        continue
                    if future.done():  # its caller went away
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                    if isinstance(reply, redis_errors.ReadOnlyError):
                        # The node was demoted (a failover): connect again, to the primary the sentinels name now.
                        raise reply
        except asyncio.CancelledError:
            self._drop(connection, redis_errors.ConnectionError("the connection to the message store was closed"))
            raise
        except Exception as exc:
            self._drop(connection, _as_connection_error(exc))

    def _settle(self, barrier: _Barrier, reply: Any) -> None:
        self._waiting = False
        if self._outgoing and self._loop is not None:
            self._loop.call_soon(self._flush)
        acked = reply if isinstance(reply, int) else -1
        for held in barrier.held:
            future = held.future
            if future.done():
                continue
            if isinstance(held.reply, Exception):  # the script refused: it changed nothing, nothing to wait for
                future.set_exception(held.reply)
            elif acked < self.replicas:
                future.set_exception(ReplicaAckError(max(acked, 0), self.replicas, self._replica_timeout_ms))
            else:
                future.set_result(held.reply)

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
        self._waiting = False
        if self._outgoing and self._loop is not None:
            self._loop.call_soon(self._flush)  # the held calls go out on a new connection
        in_flight, self._in_flight = self._in_flight, deque()
        for entry in in_flight:
            # A WAIT still out holds the calls of its batch whose scripts have answered already (they left
            # in_flight then): they fail with it, or they would never be answered.
            futures = [held.future for held in entry.held] if isinstance(entry, _Barrier) else [_future_of(entry)]
            for future in futures:
                if future is not None and not future.done():
                    future.set_exception(exc)
        if connection is not None:
            abandon(connection)

    def describe(self) -> str:
        """The pipe's state in one line, for the log when a call was not answered in time."""
        since = (self._loop.time() - self._last_progress) if self._loop is not None and self._in_flight else 0.0
        return (f"connected={self._writer is not None} connecting={self._connecting is not None} "
                f"waiting_for_wait={self._waiting} in_flight={len(self._in_flight)} outgoing={len(self._outgoing)} "
                f"held={len(self._outgoing_held)} watchdog={self._watchdog is not None} "
                f"reader_alive={self._reader_task is not None and not self._reader_task.done()} "
                f"silent_for={since:.1f}s")

    def _fail_outgoing(self, exc: Exception) -> None:
        futures, self._outgoing, self._outgoing_futures = self._outgoing_futures, [], []
        self._outgoing_held = []
        for entry in futures:
            future = _future_of(entry)
            if future is not None and not future.done():
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


def _on_a_replica(reply: Any) -> bool:
    """Whether a WAIT's reply says the node is a replica (``ERR WAIT cannot be used with replica instances``)."""
    return isinstance(reply, redis_errors.ResponseError) and "replica" in str(reply)


def _as_connection_error(exc: BaseException) -> Exception:
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return exc
    error = redis_errors.ConnectionError(f"the message store is unreachable: {exc}")
    error.__cause__ = exc
    return error
