"""The asyncio client, on ``httpx.AsyncClient``: the methods of :class:`~broker.client.Client`, awaitable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx

from broker.client import calls
from broker.client.base import (
    DEFAULT_TIMEOUT,
    AsyncOperation,
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


async def _every(fetch: Callable[[str | None], Awaitable[Any]]) -> AsyncIterator[Any]:
    """The items of every page, asking for the next one with the cursor of the last."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if not page.next_cursor:
            return
        cursor = page.next_cursor


class AsyncClient:
    """The asyncio twin of :class:`~broker.client.Client`: the same methods and arguments, each awaitable.
    Use it as an async context manager, or await :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 5,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url
        self.timeout = timeout
        self.retry = retry or RetryPolicy(retries=retries)
        self._http = httpx.AsyncClient(**http_options(base_url, key, timeout), transport=transport)

    @classmethod
    def from_env(cls, **options: Any) -> AsyncClient:
        """A client of ``$BROKER_URL`` with the key ``$BROKER_KEY``."""
        url, key = env_settings()
        return cls(url, key, **options)

    async def send(self, call: Call[T]) -> T:
        """Send a call built by :mod:`broker.client.calls`, retrying as the policy says."""
        if self.retry.retries <= 0:
            return await self._send_once(call)
        result: T = await self.retry.async_retrying(call)(self._send_once, call)
        return result

    async def _send_once(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, **request_options(call, self.timeout))
        except httpx.TransportError as exc:
            raise connection_failed(exc, call, self._http.base_url) from exc
        return answer(call, response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- queues -----------------------------------------------------------------------------------
    create_queue = AsyncOperation(calls.create_queue)
    get_queue = AsyncOperation(calls.get_queue)
    list_queues = AsyncOperation(calls.list_queues)
    update_queue = AsyncOperation(calls.update_queue)
    delete_queue = AsyncOperation(calls.delete_queue)
    purge_queue = AsyncOperation(calls.purge_queue)
    stats = AsyncOperation(calls.stats)

    async def iter_queues(self, *, limit: int | None = None) -> AsyncIterator[QueueRecord]:
        """Every queue of the project in name order, page by page (``limit`` per page)."""
        async for item in _every(lambda cursor: self.list_queues(cursor=cursor, limit=limit)):
            yield item

    # --- messages ---------------------------------------------------------------------------------
    publish = AsyncOperation(calls.publish)
    publish_batch = AsyncOperation(calls.publish_batch)
    consume = AsyncOperation(calls.consume)
    ack = AsyncOperation(calls.ack)
    ack_batch = AsyncOperation(calls.ack_batch)
    nack = AsyncOperation(calls.nack)
    extend = AsyncOperation(calls.extend)

    # --- dead letters -----------------------------------------------------------------------------
    dlq_list = AsyncOperation(calls.dlq_list)
    dlq_redrive = AsyncOperation(calls.dlq_redrive)

    async def iter_dlq(self, queue: str, *, limit: int | None = None) -> AsyncIterator[DeadLetter]:
        """Every dead letter of ``queue``, oldest first, page by page."""
        async for item in _every(lambda cursor: self.dlq_list(queue, cursor=cursor, limit=limit)):
            yield item

    # --- push -------------------------------------------------------------------------------------
    push_subscribe = AsyncOperation(calls.push_subscribe)
    push_subscription = AsyncOperation(calls.push_subscription)
    push_unsubscribe = AsyncOperation(calls.push_unsubscribe)
