"""The connections of push deliveries: one aiohttp connector per sending process, keeping connections alive per
endpoint (scheme, host, port) and opening each new one only to an address the :class:`AddressGuard` checked.

Two checks, both at connect time, through public parameters of aiohttp:

- :class:`GuardedResolver` is the connector's resolver, with aiohttp's DNS cache off: every new connection
  resolves its host once through the guard, which refuses the host when any answer is not globally routable,
  and aiohttp connects to one of exactly those answers, with the URL's host name for SNI and the certificate
  check. A second lookup cannot answer differently (DNS rebinding), since there is none.
- :func:`guarded_socket` is the connector's socket factory: it sees the address of every socket about to be
  connected (also for a URL that names an address, which aiohttp does not resolve) and refuses a refused one.

A reused connection stays connected to the address it was opened to, which was checked then; a DNS answer
that changes later cannot move it, so reuse keeps the guarantee that no byte goes to an unchecked address.
Idle connections are closed after ``KEEPALIVE_S``; a new connection is resolved and checked again.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult

from broker.push.ssrf import AddressGuard, RefusedAddress, literal_address, refusal_reason

#: Idle connections to an endpoint are kept this long, then closed (a new one is checked again).
KEEPALIVE_S = 15.0
#: Connections to one endpoint (scheme, host, port) per process, open or opening at once. The deliveries of
#: all subscriptions to that endpoint share them (broker/push/endpoints.py bounds the deliveries the same way).
ENDPOINT_CONNECTIONS = 100
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


def default_ssl_context() -> ssl.SSLContext:
    """Certificate verification against the system store (which honours SSL_CERT_FILE/SSL_CERT_DIR)
    and the certifi bundle. Built once per sender: loading the trust stores is slow."""
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver: the addresses :meth:`AddressGuard.addresses` checked (RefusedAddress otherwise)."""

    def __init__(self, guard: AddressGuard):
        self.guard = guard

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for address in await self.guard.addresses(host, port):
            results.append(ResolveResult(
                hostname=host, host=address, port=port, proto=0, flags=_NUMERIC,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
            ))
        return results

    async def close(self) -> None:
        return None


SocketFactory = Any  # aiohappyeyeballs.SocketFactoryType: (family, type, proto, canonname, sockaddr) -> socket


def guarded_socket(guard: AddressGuard, inner: SocketFactory | None = None) -> SocketFactory:
    """The connector's socket factory: refuses (RefusedAddress) to make a socket for an address the guard would
    refuse; ``inner`` makes the socket otherwise (tests record connection attempts with it)."""

    def make(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _canonname, sockaddr = addr_info
        if not guard.allow_private:
            address = literal_address(str(sockaddr[0]))
            why = "not an address" if address is None else refusal_reason(address)
            if why:
                raise RefusedAddress(f"{sockaddr[0]} is {why}; push targets must be globally routable")
        if inner is not None:
            made: socket.socket = inner(addr_info)
            return made
        sock = socket.socket(family=family, type=type_, proto=proto)
        # A request is written in two pieces (head, body): without TCP_NODELAY the second waits for the
        # receiver's delayed ACK (~40 ms) on event loops that do not set it on a socket they are given (uvloop).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    return make


def guarded_connector(
    guard: AddressGuard,
    ssl_context: ssl.SSLContext | None = None,
    *,
    per_endpoint: int = ENDPOINT_CONNECTIONS,
    socket_factory: SocketFactory | None = None,
) -> aiohttp.TCPConnector:
    """The connector of a sender: keep-alive per endpoint, at most ``per_endpoint`` connections to each, every
    new connection resolved and checked by ``guard``. Must be called with an event loop running."""
    return aiohttp.TCPConnector(
        ssl=ssl_context or default_ssl_context(),
        resolver=GuardedResolver(guard),
        use_dns_cache=False,
        socket_factory=guarded_socket(guard, socket_factory),
        limit=0,
        limit_per_host=per_endpoint,
        keepalive_timeout=KEEPALIVE_S,
        happy_eyeballs_delay=None,
    )
