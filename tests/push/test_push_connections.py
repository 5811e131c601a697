"""Connection reuse per endpoint, and why it keeps the SSRF guarantee: a reused connection is not resolved
again (it stays on the address checked when it was opened), a new one is resolved and checked again; the
deliveries to one endpoint are bounded and shared in turn by its subscriptions."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from support import eventually

from broker.push.endpoints import EndpointSlots, origin_of
from broker.push.pool import guarded_socket
from broker.push.ssrf import AddressGuard, RefusedAddress
from broker.push.webhooks import WebhookSender
from broker.store.subscriptions import SubscriptionStore


class StubResolver:
    """Answers from ``answers`` in turn (the last one repeats); records the names asked."""

    def __init__(self, *answers: list[str]):
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


async def test_a_reused_connection_is_not_resolved_again_and_a_new_one_is(receiver, tls_files):
    receiver.keep_alive = True
    resolver = StubResolver(["127.0.0.1"])
    sender = WebhookSender(AddressGuard(True, resolver), tls_files.client_context())
    url = receiver.url(host="hooks.test")
    try:
        for n in range(3):
            attempt = await sender.send(url, f"m{n}", b"{}", None, 5.0)
            assert attempt.ok, attempt
        assert (resolver.calls, receiver.connections, len(receiver.requests)) == (["hooks.test"], 1, 3)
        receiver.drop_connections()
        await asyncio.sleep(0.05)
        attempt = await sender.send(url, "m3", b"{}", None, 5.0)
        assert attempt.ok, attempt
        assert (resolver.calls, receiver.connections) == (["hooks.test"] * 2, 2)  # a new connection: resolved
    finally:
        await sender.aclose()


async def test_a_new_connection_of_the_same_sender_is_checked_again():
    """The first connection goes to the public answer (and fails: no network here); the next one is resolved
    again, gets a loopback answer (rebinding) and is refused before any socket is made."""
    connects: list[tuple[str, int]] = []

    def network(addr_info: tuple[Any, ...]) -> socket.socket:
        connects.append(addr_info[4][:2])
        raise OSError("no network in this test")

    resolver = StubResolver(["93.184.215.14"], ["127.0.0.1"])
    sender = WebhookSender(AddressGuard(False, resolver), socket_factory=network)
    try:
        first = await sender.send("https://hooks.test:8443/hook", "m1", b"{}", None, 2.0)
        second = await sender.send("https://hooks.test:8443/hook", "m2", b"{}", None, 2.0)
    finally:
        await sender.aclose()
    assert first.error.startswith("connection failed") and second.error.startswith("refused address")
    assert connects == [("93.184.215.14", 8443)] and resolver.calls == ["hooks.test", "hooks.test"]


def test_no_socket_is_made_for_a_refused_address():
    make = guarded_socket(AddressGuard(False))
    for address in ("127.0.0.1", "10.1.2.3", "::1", "169.254.169.254"):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with pytest.raises(RefusedAddress):
            make((family, socket.SOCK_STREAM, 6, "", (address, 443)))
    sock = make((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)))
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
    guarded_socket(AddressGuard(True))((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))).close()


def test_origins():
    assert origin_of("https://Hooks.Example/a?b") == ("https", "hooks.example", 443)
    assert origin_of("https://hooks.example:8443/a") == ("https", "hooks.example", 8443)
    assert origin_of("http://[::1]/") == ("http", "::1", 80)


async def test_endpoint_slots_are_bounded_shared_in_turn_and_returned_on_cancel():
    slots = EndpointSlots(10)
    assert await slots.acquire(10) == 10
    waiting = [asyncio.create_task(slots.acquire(10)) for _ in range(2)]
    late = asyncio.create_task(slots.acquire(10))
    await asyncio.sleep(0)
    late.cancel()
    await asyncio.sleep(0)
    slots.release(10)
    assert [await w for w in waiting] == [5, 5]  # the two waiting share what was freed
    assert slots.free == 0
    slots.release(10)
    assert slots.idle  # the cancelled wait took nothing


async def test_subscriptions_to_one_endpoint_share_its_bound(app_factory, receiver, start_runner, store, project):
    (papi,) = await app_factory(project, push_allow_private=True)
    release = asyncio.Event()

    async def held(_request: Any) -> Any:
        await release.wait()
        return 200, {}, b"ok"

    receiver.respond = held
    for name in ("a", "b", "c"):
        await papi.ok("POST", "/v1/queue/create", {"name": name})
        await papi.ok("POST", f"/v1/queue/push_subscribe/{name}", {"url": receiver.url(f"/{name}"),
                                                                     "max_concurrency": 10})
        for n in range(4):
            await papi.ok("POST", "/v1/queue/publish", {"queue": name, "payload": n})
    await start_runner(push_per_endpoint=6)
    await receiver.wait_for(6)
    await asyncio.sleep(0.2)
    assert receiver.max_in_progress == 6 and len(receiver.requests) == 6  # the endpoint's bound, not 3 x 10
    leased = [(await papi.ok("GET", f"/v1/queue/stats/{n}"))["in_flight"] for n in ("a", "b", "c")]
    assert sum(leased) == 6  # nothing leased beyond what is being sent
    release.set()
    await receiver.wait_for(12)
    assert receiver.max_in_progress <= 6
    subs = SubscriptionStore(store)

    async def all_acked() -> bool:
        remaining = 0
        for name in ("a", "b", "c"):
            s = await papi.ok("GET", f"/v1/queue/stats/{name}")
            remaining += s["available"] + s["in_flight"] + s["delayed"]
            assert (await subs.get(project, name)).consecutive_failures == 0
        return remaining == 0

    await eventually(all_acked)
