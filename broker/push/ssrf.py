"""Server-side request forgery defence for push deliveries.

A push URL must be https and its host must resolve only to globally routable addresses. The rules:

- IPv4: refused are unspecified/"this network" (0/8), private (10/8, 172.16/12, 192.168/16), CGNAT
  (100.64/10), loopback (127/8), link-local (169.254/16, including the 169.254.169.254 metadata
  service), IETF protocol assignments (192.0.0/24), documentation, benchmarking, the 6to4 relay
  anycast, multicast (224/4), reserved (240/4) and broadcast.
- IPv6: only global unicast (2000::/3) is accepted, minus documentation and IETF protocol assignment
  ranges; so unspecified, loopback, ULA (fc00::/7), link-local (fe80::/10), site-local, multicast and
  discard are refused. Addresses that embed an IPv4 address are unwrapped first and judged by it:
  IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16`` and Teredo ``2001::/32``
  (server and client).
- A host written as a number the way ``inet_aton`` reads it (``2130706433``, ``0x7f000001``,
  ``017700000001``, ``127.1``) is that address.
- A host name is resolved once per new connection; every address it resolves to must pass, and the
  connection goes to one of exactly those addresses (broker/push/pool.py), so a second resolution cannot
  return a different answer (DNS rebinding). TLS still uses the host name for SNI and certificate checks.

A refused host *name* is answered with one message whatever the reason (no answer, a resolver error, a
private answer), at subscribe time and in a delivery's ``last_error``: otherwise any key holder could ask the
server's resolver about internal names and read the answers. The reason is logged (INFO, ``broker.push.ssrf``).
A refused literal address is named, since the client wrote it.

``allow_private`` (``BROKER_PUSH_ALLOW_PRIVATE=1``) lifts the address rules and allows http, for
local development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import httpx

log = logging.getLogger("broker.push.ssrf")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolver(host, port)`` -> the addresses ``host`` resolves to (tests substitute their own).
Resolver = Callable[[str, int], Awaitable[list[str]]]
RESOLVE_TIMEOUT_SECONDS = 5.0


class RefusedUrl(ValueError):
    """The URL is not an acceptable push target; the message says why."""


class RefusedAddress(Exception):
    """The host does not resolve, or resolves to an address that is not globally routable. The message says
    nothing the URL did not: a refused host *name* gets one message whatever the resolver answered, so that
    refusals cannot map the names the server's resolver knows; ``detail`` (logged) has the answer."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail or message


def refused_name(host: str, detail: str) -> RefusedAddress:
    """The refusal of a host name, the same for every reason; the reason is logged."""
    log.info("push target refused: %s", detail)
    return RefusedAddress(
        f"host {host!r} does not resolve to globally routable addresses only; push targets must be globally "
        "routable",
        detail,
    )


_V4_REFUSED: list[tuple[ipaddress.IPv4Network, str]] = [
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "CGNAT shared address space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved for IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
]
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_REFUSED: list[tuple[ipaddress.IPv6Network, str]] = [
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("2001::/23", "reserved for IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
    )
]
_V6_OUTSIDE_GLOBAL: list[tuple[ipaddress.IPv6Network, str]] = [
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique local (ULA)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
    )
]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """Read ``text`` the way ``inet_aton`` does: 1 to 4 parts, each decimal, octal (leading 0) or hex
    (``0x``); the last part fills the remaining bytes. None when it is not such a number."""
    if not text.isascii():
        return None
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                value = int(part[2:], 16) if len(part) > 2 else 0
            elif len(part) > 1 and part[0] == "0":
                value = int(part[1:], 8)
            else:
                value = int(part, 10) if part.isdigit() else -1
        except ValueError:
            return None
        if value < 0:
            return None
        values.append(value)
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally (an IPv6 zone is dropped), or None for a host name."""
    text = unquote(host.strip("[]"))
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return parse_ipv4_loose(text)


def _v4_refusal(ip: ipaddress.IPv4Address) -> str | None:
    for net, why in _V4_REFUSED:
        if ip in net:
            return why
    return None if ip.is_global else "not globally routable"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo), or []."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip in _TEREDO and ip.teredo is not None:
        return list(ip.teredo)
    return []


def refusal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not an acceptable push target, or None when it is globally routable."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_refusal(ip)
    ip = ipaddress.IPv6Address(int(ip))  # drop any zone
    embedded = _embedded_ipv4(ip)
    if embedded:
        for v4 in embedded:
            why = _v4_refusal(v4)
            if why:
                return f"{why} ({v4} embedded in {ip})"
        return None
    if ip not in _V6_GLOBAL_UNICAST:
        for net, why in _V6_OUTSIDE_GLOBAL:
            if ip in net:
                return why
        return "reserved"
    for net, why in _V6_REFUSED:
        if ip in net:
            return why
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system resolver (getaddrinfo), in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressGuard:
    """Resolves push hosts and refuses any that reach a non-global address (unless ``allow_private``)."""

    def __init__(
        self, allow_private: bool = False, resolver: Resolver | None = None, timeout: float = RESOLVE_TIMEOUT_SECONDS
    ):
        self.allow_private = allow_private
        self.resolver = resolver
        self.timeout = timeout

    async def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses to connect to for ``host``; RefusedAddress when any is refused."""
        literal = literal_address(host)
        if literal is not None:
            found: list[IPAddress] = [literal]
        else:
            resolver = self.resolver or system_resolver
            try:
                async with asyncio.timeout(self.timeout):
                    answers = await resolver(host, port)
            except (OSError, UnicodeError, TimeoutError) as exc:
                raise refused_name(host, f"host {host!r} does not resolve ({exc or type(exc).__name__})") from None
            found = []
            for answer in answers:
                address = literal_address(answer)
                if address is None:
                    raise refused_name(host, f"host {host!r} resolved to something that is not an address: {answer!r}")
                found.append(address)
            if not found:
                raise refused_name(host, f"host {host!r} does not resolve")
        if not self.allow_private:
            for address in found:
                why = refusal_reason(address)
                if why and literal is None:
                    raise refused_name(host, f"{host} resolves to {address}, which is {why}")
                if why:
                    raise RefusedAddress(f"{address} is {why}; push targets must be globally routable")
        return [str(address) for address in found]


def parse_push_url(url: str, allow_private: bool) -> httpx.URL:
    """The parsed URL when its form is acceptable (scheme, host); RefusedUrl otherwise. Addresses are
    checked separately (:meth:`AddressGuard.addresses`)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise RefusedUrl(f"url is not a valid URL: {exc}") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        raise RefusedUrl("url must use https" if not allow_private else "url must use http or https")
    if not parsed.host:
        raise RefusedUrl("url has no host")
    if parsed.fragment:
        raise RefusedUrl("url must not have a fragment")
    return parsed


async def check_url(url: str, guard: AddressGuard) -> None:
    """Refuse (RefusedUrl) a push URL whose form or whose host's addresses are not acceptable."""
    parsed = parse_push_url(url, guard.allow_private)
    if guard.allow_private:
        return
    try:
        await guard.addresses(parsed.host, parsed.port or 443)
    except RefusedAddress as exc:
        raise RefusedUrl(f"url refused: {exc}") from None
