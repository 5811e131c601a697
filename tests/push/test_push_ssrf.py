"""The SSRF rules: every refused address form at subscribe time (400, field url) and at delivery time
(the attempt fails without any connection), DNS rebinding, and connecting to the checked address."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import Any

import pytest

from broker.push import ssrf
from broker.push.ssrf import AddressGuard, literal_address, parse_ipv4_loose, refusal_reason
from broker.push.webhooks import WebhookSender

REFUSED = [
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "100.64.0.1", "100.127.255.254", "127.0.0.1", "127.255.255.254",
    "169.254.169.254", "169.254.0.1", "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.168.1.1",
    "198.18.0.1", "198.51.100.1", "203.0.113.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "fc00::1", "fd00:ec2::254", "fe80::1", "fec0::1", "ff02::1", "100::1", "2001:db8::1",
    "::127.0.0.1",                              # IPv4-compatible (deprecated)
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",   # IPv4-mapped
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",   # NAT64 of 127.0.0.1 and the metadata address
    "64:ff9b:1::a00:1",                         # local-use NAT64
    "2002:7f00:1::1", "2002:a9fe:a9fe::1",     # 6to4 of 127.0.0.1 and 169.254.169.254
    "2001:0:4136:e378:8000:63bf:80ff:fffe",     # Teredo, client 127.0.0.1
    "2001:0:a00:1:8000:63bf:f7f7:f7f7",         # Teredo, server 10.0.0.1
]
ALLOWED = [
    "8.8.8.8", "93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
    "2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, server and client (8.8.8.8) public
]
#: Numeric host spellings inet_aton accepts, all private.
ODD_IPV4 = {
    "2130706433": "127.0.0.1", "0x7f000001": "127.0.0.1", "017700000001": "127.0.0.1", "127.1": "127.0.0.1",
    "0x7f.1": "127.0.0.1", "10.1": "10.0.0.1", "169.254.43518": "169.254.169.254", "0xa9fea9fe": "169.254.169.254",
}


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@pytest.mark.parametrize("address", REFUSED)
def test_refused_addresses(address):
    assert refusal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_allowed_addresses(address):
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("text", "address"), [*ODD_IPV4.items(), ("1.2.3.4", "1.2.3.4"), ("0", "0.0.0.0"), ("0x", "0.0.0.0")]
)
def test_inet_aton_spellings(text, address):
    assert parse_ipv4_loose(text) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "text", ["hooks.test", "1.2.3.4.5", "256.1.1.1", "1.2.3.256x", "08", "1..2", "", "١٢٧.0.0.1", "4294967296",
             "1.16777216"]
)
def test_not_inet_aton_numbers(text):
    assert parse_ipv4_loose(text) is None


def test_literal_address_drops_ipv6_zone():
    assert literal_address("fe80::1%25eth0") == ipaddress.IPv6Address("fe80::1")
    assert literal_address("hooks.test") is None


# --- subscribe time ---------------------------------------------------------------------------------
@pytest.fixture
async def strict_api(app_factory: Any, project: str) -> Any:
    """The API with the default rules (no private addresses, https only)."""
    (client,) = await app_factory(project)
    await client.ok("POST", "/v1/queue/create", {"name": "jobs"})
    return client


class StubResolver:
    """Answers every name from ``answers`` in turn (the last one repeats); counts the calls."""

    def __init__(self, *answers: list[str]):
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


async def refused_at_subscribe(api: Any, url: str) -> str:
    r = await api.post("/v1/queue/push_subscribe/jobs", {"url": url})
    assert r.status_code == 400, (url, r.text)
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "url")
    return str(error["message"])


async def test_every_refused_address_at_subscribe_time(strict_api):
    for address in REFUSED:
        message = await refused_at_subscribe(strict_api, f"https://{url_host(address)}/hook")
        assert "globally routable" in message
    for spelling in ODD_IPV4:
        await refused_at_subscribe(strict_api, f"https://{spelling}/hook")
    await refused_at_subscribe(strict_api, "https://localhost/hook")
    await refused_at_subscribe(strict_api, "https://[fe80::1%25eth0]/hook")


async def test_http_is_refused_without_allow_private(strict_api, monkeypatch):
    monkeypatch.setattr(ssrf, "system_resolver", StubResolver(["93.184.215.14"]))
    message = await refused_at_subscribe(strict_api, "http://hooks.example/hook")
    assert "https" in message
    ok = await strict_api.ok("POST", "/v1/queue/push_subscribe/jobs", {"url": "https://hooks.example/hook"})
    assert ok["url"] == "https://hooks.example/hook"


#: The one answer to a refused host name: it says nothing of what the server's resolver answered.
NAME_REFUSED = "host {!r} does not resolve to globally routable addresses only; push targets must be globally routable"


async def test_a_name_with_any_private_answer_is_refused_without_naming_the_answer(strict_api, monkeypatch, caplog):
    monkeypatch.setattr(ssrf, "system_resolver", StubResolver(["93.184.215.14", "10.0.0.7"]))
    with caplog.at_level("INFO", logger="broker.push.ssrf"):
        message = await refused_at_subscribe(strict_api, "https://hooks.example/hook")
    assert message == f"url refused: {NAME_REFUSED.format('hooks.example')}"
    assert "10.0.0.7" not in message and "private" not in message
    assert "hooks.example resolves to 10.0.0.7, which is private" in caplog.text  # the detail is logged


async def test_a_name_that_does_not_resolve_is_refused_alike(strict_api, monkeypatch, caplog):
    """Whether a name has no answer, fails in the resolver, or resolves to loopback, the client reads the same
    message: a key holder cannot map the names the server's resolver knows."""

    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(ssrf, "system_resolver", nxdomain)
    with caplog.at_level("INFO", logger="broker.push.ssrf"):
        missing = await refused_at_subscribe(strict_api, "https://internal.example/")
    monkeypatch.setattr(ssrf, "system_resolver", StubResolver(["127.0.0.1"]))
    loopback = await refused_at_subscribe(strict_api, "https://internal.example/")
    monkeypatch.setattr(ssrf, "system_resolver", StubResolver([]))
    empty = await refused_at_subscribe(strict_api, "https://internal.example/")
    assert missing == loopback == empty == f"url refused: {NAME_REFUSED.format('internal.example')}"
    assert "Name or service not known" in caplog.text
    real = await refused_at_subscribe(strict_api, "https://localhost/hook")  # the system resolver: loopback
    assert real == f"url refused: {NAME_REFUSED.format('localhost')}" and "127.0.0.1" not in real


# --- delivery time ----------------------------------------------------------------------------------
class RecordingBackend:
    """Stands in for the network (as the sender's socket factory): records the address of every socket about
    to be connected, and refuses to make it."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    def __call__(self, addr_info: tuple[Any, ...]) -> socket.socket:
        address = addr_info[4]
        self.connects.append((address[0], address[1]))
        raise OSError("no network in this test")


TLS_CONTEXT = ssl.create_default_context()  # built once: loading trust stores per sender is slow


async def send_with(resolver: Any, url: str = "https://hooks.test/hook") -> tuple[Any, RecordingBackend]:
    network = RecordingBackend()
    guard = AddressGuard(False, resolver)
    sender = WebhookSender(guard, TLS_CONTEXT, socket_factory=network)
    try:
        attempt = await sender.send(url, "m1", b"{}", None, 2.0)
    finally:
        await sender.aclose()
    return attempt, network


async def test_every_refused_address_at_delivery_time():
    for address in REFUSED:
        resolver = StubResolver([address])
        attempt, network = await send_with(resolver)
        assert attempt.status is None and attempt.error.startswith("refused address"), (address, attempt)
        assert network.connects == [], address  # never connected, let alone sent a request
        attempt, network = await send_with(None, f"https://{url_host(address)}/hook")
        assert attempt.error.startswith("refused address") and network.connects == [], address
    for spelling in ODD_IPV4:
        attempt, network = await send_with(None, f"https://{spelling}/hook")
        assert attempt.error.startswith("refused address") and network.connects == [], spelling
    attempt, network = await send_with(StubResolver(["93.184.215.14", "fd00::1"]))
    assert attempt.error.startswith("refused address") and network.connects == []
    attempt, network = await send_with(None, "http://93.184.215.14/hook")
    assert "https" in attempt.error and network.connects == []


async def test_delivery_connects_to_the_checked_address_only():
    resolver = StubResolver(["93.184.215.14"], ["127.0.0.1"])
    attempt, network = await send_with(resolver, "https://hooks.test:8443/hook")
    assert attempt.status is None and attempt.error.startswith("connection failed")
    assert network.connects == [("93.184.215.14", 8443)]  # the address resolved once and checked
    assert resolver.calls == ["hooks.test"]
    attempt, network = await send_with(resolver, "https://hooks.test:8443/hook")  # rebinding: refused
    assert attempt.error.startswith("refused address") and network.connects == []


async def test_dns_rebinding_after_subscribe(app_factory, project, receiver, start_runner, monkeypatch):
    """The name resolves to a public address when subscribing and to loopback at delivery."""
    resolver = StubResolver(["93.184.215.14"], ["127.0.0.1"])
    monkeypatch.setattr(ssrf, "system_resolver", resolver)
    (api,) = await app_factory(project)
    await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    await api.ok("POST", "/v1/queue/push_subscribe/jobs", {"url": receiver.url(host="hooks.test")})
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})
    await start_runner(allow_private=False, resolver=resolver)
    state = await _wait_for_failure(api)
    assert state["last_status"] is None and state["last_error"].startswith("refused address")
    assert "127.0.0.1" not in state["last_error"]  # the resolver's answer is logged, not shown
    assert receiver.requests == []
    stats = await api.ok("GET", "/v1/queue/stats/jobs")
    assert stats["delayed"] == 1  # retried later, like a connection error


async def _wait_for_failure(api: Any) -> Any:
    for _ in range(250):
        state = await api.ok("GET", "/v1/queue/push_subscription/jobs")
        if state["consecutive_failures"]:
            return state
        await asyncio.sleep(0.02)
    raise AssertionError("no failed attempt recorded")


async def test_stored_private_url_is_refused_at_delivery(app_factory, project, receiver, start_runner, subs, make_sub):
    """A subscription to the (listening) loopback receiver, stored without the route's check, is
    refused when delivering: the receiver never gets a request."""
    (api,) = await app_factory(project)
    await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    await subs.subscribe(project, "jobs", make_sub(receiver.url(host="127.0.0.1")), new_id="sub_test")
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})
    await start_runner(allow_private=False)
    state = await _wait_for_failure(api)
    assert "loopback" in state["last_error"] and receiver.requests == []


async def test_pinned_connection_keeps_host_name_for_tls(app_factory, project, receiver, start_runner, subs,
                                                         make_sub):
    """hooks.test is known only to the stub resolver: the delivery connects to the address it gave,
    with SNI, certificate check and Host header for hooks.test; a name the certificate lacks fails."""
    (api,) = await app_factory(project, push_allow_private=True)
    for name in ("good", "bad"):
        await api.ok("POST", "/v1/queue/create", {"name": name})
    await subs.subscribe(project, "good", make_sub(receiver.url("/good", host="hooks.test")), new_id="sub_g")
    await subs.subscribe(project, "bad", make_sub(receiver.url("/bad", host="other.test")), new_id="sub_b")
    for name in ("good", "bad"):
        await api.ok("POST", "/v1/queue/publish", {"queue": name, "payload": name})
    await start_runner(resolver=StubResolver(["127.0.0.1"]))
    [request] = await receiver.wait_for(1, path="/good")
    assert request.headers["host"] == f"hooks.test:{receiver.port}"
    for _ in range(250):
        bad = await api.ok("GET", "/v1/queue/push_subscription/bad")
        if bad["consecutive_failures"]:
            break
        await asyncio.sleep(0.02)
    assert bad["last_error"].startswith("connection failed") and "certificate" in bad["last_error"].lower()
    assert receiver.paths() == ["/good"]
