"""The backstop bound on a handler's answer (broker/http/bound.py): a handler still waiting after the bound is
cancelled and answered 503 in the contract's shape, a long poll's bound starts after its wait, and a
TimeoutError of the handler's own is not mistaken for the bound."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from broker import errors
from broker.http import bound
from broker.http.bound import extend_bound, within_bound


async def test_a_handler_past_the_bound_is_answered_503_and_its_waiting_point_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bound, "_last_logged", -1e9)
    cancelled = asyncio.Event()

    async def stalled_store_call() -> None:
        try:
            await asyncio.Event().wait()  # never set: a call no inner bound ends
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "broker.http.bound"), pytest.raises(errors.Unavailable) as caught:
        await within_bound(stalled_store_call(), 0.2)
    took = time.monotonic() - started
    assert 0.2 <= took < 2, took
    assert cancelled.is_set()
    assert (caught.value.status, caught.value.code, caught.value.headers) == (503, "UNAVAILABLE", {"Retry-After": "1"})
    assert "stalled_store_call" in caplog.text


async def test_a_long_polls_bound_is_extended_by_its_wait() -> None:
    async def long_poll() -> str:
        extend_bound(0.4)  # what ctx.parse does for a consume with wait_seconds
        await asyncio.sleep(0.35)  # beyond the bound of 0.2 s, within 0.2 + 0.4
        return "answered"

    assert await within_bound(long_poll(), 0.2) == "answered"
    extend_bound(5)  # outside a bound: nothing to extend, nothing raised


async def test_a_handlers_own_timeout_is_its_own() -> None:
    async def handler() -> None:
        raise TimeoutError("the handler's own")

    with pytest.raises(TimeoutError, match="the handler's own"):
        await within_bound(handler(), 5)
