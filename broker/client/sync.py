"""The blocking client, on ``httpx.Client`` (one connection pool, safe to share between threads)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from broker.client import calls
from broker.client.base import (
    DEFAULT_TIMEOUT,
    SyncOperation,
    answer,
    connection_failed,
    env_settings,
    http_options,
    request_options,
)
from broker.client.calls import Call
from broker.client.models import DeadLetter, QueueRecord
from broker.client.retry import RetryPolicy

T = TypeVar("T")


def _every(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    """The items of every page, asking for the next one with the cursor of the last."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if not page.next_cursor:
            return
        cursor = page.next_cursor


class Client:
    """A client of one server and one project (its API key).

    Every method is one capability of the contract and takes its fields as keyword arguments (the queue
    first, positional); it returns the answer as a Struct, or raises a
    :class:`~broker.client.errors.BrokerError` subclass. Calls the server refused for the moment (429, 503)
    or that could not connect are retried ``retries`` times with backoff; see :mod:`broker.client.retry`.
    ``timeout`` is per attempt (a long poll's wait is added to it). Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 5,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url
        self.timeout = timeout
        self.retry = retry or RetryPolicy(retries=retries)
        self._http = httpx.Client(**http_options(base_url, key, timeout), transport=transport)

    @classmethod
    def from_env(cls, **options: Any) -> Client:
        """A client of ``$BROKER_URL`` with the key ``$BROKER_KEY`` (``options`` as for the constructor)."""
        url, key = env_settings()
        return cls(url, key, **options)

    def send(self, call: Call[T]) -> T:
        """Send a call built by :mod:`broker.client.calls`, retrying as the policy says."""
        if self.retry.retries <= 0:
            return self._send_once(call)
        result: T = self.retry.retrying(call)(self._send_once, call)
        return result

    def _send_once(self, call: Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, **request_options(call, self.timeout))
        except httpx.TransportError as exc:
            raise connection_failed(exc, call, self._http.base_url) from exc
        return answer(call, response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- queues -----------------------------------------------------------------------------------
    create_queue = SyncOperation(calls.create_queue)
    get_queue = SyncOperation(calls.get_queue)
    list_queues = SyncOperation(calls.list_queues)
    update_queue = SyncOperation(calls.update_queue)
    delete_queue = SyncOperation(calls.delete_queue)
    purge_queue = SyncOperation(calls.purge_queue)
    stats = SyncOperation(calls.stats)

    def iter_queues(self, *, limit: int | None = None) -> Iterator[QueueRecord]:
        """Every queue of the project in name order, page by page (``limit`` per page)."""
        return _every(lambda cursor: self.list_queues(cursor=cursor, limit=limit))

    # --- messages ---------------------------------------------------------------------------------
    publish = SyncOperation(calls.publish)
    publish_batch = SyncOperation(calls.publish_batch)
    consume = SyncOperation(calls.consume)
    ack = SyncOperation(calls.ack)
    ack_batch = SyncOperation(calls.ack_batch)
    nack = SyncOperation(calls.nack)
    extend = SyncOperation(calls.extend)

    # --- dead letters -----------------------------------------------------------------------------
    dlq_list = SyncOperation(calls.dlq_list)
    dlq_redrive = SyncOperation(calls.dlq_redrive)

    def iter_dlq(self, queue: str, *, limit: int | None = None) -> Iterator[DeadLetter]:
        """Every dead letter of ``queue``, oldest first, page by page."""
        return _every(lambda cursor: self.dlq_list(queue, cursor=cursor, limit=limit))

    # --- push -------------------------------------------------------------------------------------
    push_subscribe = SyncOperation(calls.push_subscribe)
    push_subscription = SyncOperation(calls.push_subscription)
    push_unsubscribe = SyncOperation(calls.push_unsubscribe)
