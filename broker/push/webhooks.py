"""Push deliveries on the wire: Standard Webhooks signing, the retry schedule, and one HTTP attempt.

Signing (https://www.standardwebhooks.com): ``webhook-id`` is the message id (the same on every
attempt, so receivers can deduplicate), ``webhook-timestamp`` the attempt's Unix time in seconds, and
``webhook-signature`` ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``. A secret starting
with ``whsec_`` is base64-decoded after the prefix; any other secret is used as its UTF-8 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import functools
import hashlib
import hmac
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from broker.push.pool import ENDPOINT_CONNECTIONS, SocketFactory, guarded_connector
from broker.push.ssrf import AddressGuard, RefusedAddress, RefusedUrl, literal_address, parse_push_url

SECRET_PREFIX = "whsec_"
USER_AGENT = "broker-push/1"
#: Retry schedule: the n-th failed attempt is retried after a delay drawn from (d/2, d], where
#: d = min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** (n - 1)): 2.5-5 s, 5-10 s, 10-20 s, ... 5-10 min.
BACKOFF_FIRST_MS = 5_000
BACKOFF_CAP_MS = 600_000
#: A Retry-After (on 429 and 503) is honoured up to this long.
RETRY_AFTER_CAP_MS = 3_600_000
#: How much of a response body is kept in the error text of a failed attempt.
ERROR_BODY_CHARS = 200


class InvalidSecret(ValueError):
    """A ``whsec_`` secret whose rest is not base64 of at least one byte."""


@functools.lru_cache(maxsize=1024)
def secret_key(secret: str) -> bytes:
    """The HMAC key of ``secret`` (see the module docstring)."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSecret("a secret starting with whsec_ must be base64 after the prefix") from None
        if not key:
            raise InvalidSecret("a secret starting with whsec_ must hold at least one byte")
        return key
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(message_id: str, body: bytes, secret: str | None, timestamp: int | None = None) -> dict[str, str]:
    """The headers of one attempt; unsigned when there is no secret."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret:
        headers["webhook-signature"] = sign(secret, message_id, timestamp, body)
    return headers


def retry_delay_ms(failed_attempts: int, rng: Callable[[], float] = random.random) -> int:
    """The delay before retrying after the ``failed_attempts``-th failure (exponential, jittered, capped)."""
    exponent = min(max(failed_attempts, 1) - 1, 30)
    nominal = min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2**exponent)
    return int(nominal * (0.5 + 0.5 * rng()))


def parse_retry_after(value: str | None, now_s: float | None = None) -> int | None:
    """A Retry-After header (seconds or an HTTP date) in ms from now, capped; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now_s is None else now_s)
    return int(min(max(seconds, 0.0) * 1000, RETRY_AFTER_CAP_MS))


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one delivery attempt. ``status`` is None when no HTTP answer came back."""

    status: int | None
    error: str = ""
    retry_after_ms: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


#: A 2xx answer's body is read (and dropped) up to this size so that its connection can be reused; a longer
#: one closes the connection instead.
DRAIN_BYTES = 64 * 1024
_REDIRECTS = frozenset((301, 302, 303, 307, 308))


async def _read_some(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body (all of it when shorter)."""
    read = b""
    while len(read) < limit:
        chunk = await response.content.read(limit - len(read))
        if not chunk:
            break
        read += chunk
    return read


def _failure_text(response: aiohttp.ClientResponse, snippet: str) -> str:
    text = f"HTTP {response.status}"
    location = response.headers.get("location")
    if response.status in _REDIRECTS and location is not None:
        text += f" (redirects are not followed; location: {location[:200]})"
    return f"{text}: {snippet}" if snippet else text


class WebhookSender:
    """Sends push attempts with aiohttp over the connections of :func:`guarded_connector`: kept alive per
    endpoint, every new one resolved and checked by the guard (broker/push/pool.py). Redirects are never
    followed, and no proxy from the environment is used. ``socket_factory`` stands in for socket creation
    (tests); the session is made on the first attempt, inside the running event loop."""

    def __init__(
        self,
        guard: AddressGuard,
        ssl_context: ssl.SSLContext | None = None,
        *,
        per_endpoint: int = ENDPOINT_CONNECTIONS,
        socket_factory: SocketFactory | None = None,
    ):
        self.guard = guard
        self.ssl_context = ssl_context
        self.per_endpoint = per_endpoint
        self.socket_factory = socket_factory
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._targets: dict[str, tuple[str, int, bool] | RefusedUrl] = {}

    def _target(self, url: str) -> tuple[str, int, bool] | RefusedUrl:
        """(host, port, names an address) of an acceptable URL, or why it is refused; remembered per URL."""
        target = self._targets.get(url)
        if target is None:
            try:
                parsed = parse_push_url(url, self.guard.allow_private)
                target = (parsed.host, parsed.port or 443, literal_address(parsed.host) is not None)
            except RefusedUrl as exc:
                target = exc
            if len(self._targets) >= 4096:
                self._targets.clear()
            self._targets[url] = target
        return target

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = guarded_connector(self.guard, self.ssl_context, per_endpoint=self.per_endpoint,
                                          socket_factory=self.socket_factory)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def send(
        self, url: str, message_id: str, body: bytes, secret: str | None, timeout_s: float,
        extra_headers: dict[str, str] | None = None,
    ) -> Attempt:
        """POST ``body`` to ``url``, signed when there is a secret, with ``extra_headers`` (trace context);
        never raises for a failed attempt."""
        target = self._target(url)
        if isinstance(target, RefusedUrl):
            return Attempt(None, str(target))
        host, port, literal = target
        headers = webhook_headers(message_id, body, secret)
        if extra_headers:
            headers.update(extra_headers)
        # aiohttp's total timeout covers the connection (the guard's lookup included), the request and the
        # answer's body; the reads below are bounded by the same deadline.
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            if literal and not self.guard.allow_private:
                await self.guard.addresses(host, port)  # a refusal says why; no lookup for an address
            response = await self._client().post(
                url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout(timeout_s)
            )
        except RefusedAddress as exc:
            return Attempt(None, f"refused address: {exc}")
        except TimeoutError:
            return Attempt(None, f"timeout: no answer within {timeout_s:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Attempt(None, f"connection failed: {type(exc).__name__}: {exc}"[:400])
        try:
            status = response.status
            if 200 <= status < 300:
                if not response.content.at_eof():  # read what is left, so that the connection can be reused
                    try:
                        async with asyncio.timeout_at(deadline):
                            await _read_some(response, DRAIN_BYTES)
                    except (TimeoutError, aiohttp.ClientError, OSError):
                        response.close()
                return Attempt(status)
            snippet = ""
            try:
                async with asyncio.timeout_at(deadline):
                    read = await _read_some(response, ERROR_BODY_CHARS * 4)
                snippet = " ".join(read.decode("utf-8", "replace").split())[:ERROR_BODY_CHARS]
            except (TimeoutError, aiohttp.ClientError, OSError):
                response.close()
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            return Attempt(status, _failure_text(response, snippet), retry_after)
        finally:
            response.release()
