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
import contextlib
import email.utils
import hashlib
import hmac
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from broker.push.ssrf import AddressGuard, GuardedTransport, RefusedAddress, RefusedUrl, parse_push_url

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


async def _body_snippet(response: httpx.Response) -> str:
    read = b""
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) >= ERROR_BODY_CHARS * 4:
            break
    text = " ".join(read.decode("utf-8", "replace").split())
    return text[:ERROR_BODY_CHARS]


def _failure_text(response: httpx.Response, snippet: str) -> str:
    text = f"HTTP {response.status_code}"
    if response.is_redirect:
        text += f" (redirects are not followed; location: {response.headers.get('location', '')[:200]})"
    return f"{text}: {snippet}" if snippet else text


class WebhookSender:
    """Sends push attempts through a :class:`GuardedTransport`: the address check applies to every
    attempt, redirects are never followed, and no proxy from the environment is used."""

    def __init__(
        self,
        guard: AddressGuard,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.guard = guard
        self.client = httpx.AsyncClient(
            transport=transport or GuardedTransport(guard, ssl_context),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(
        self, url: str, message_id: str, body: bytes, secret: str | None, timeout_s: float,
        extra_headers: dict[str, str] | None = None,
    ) -> Attempt:
        """POST ``body`` to ``url``, signed when there is a secret, with ``extra_headers`` (trace context);
        never raises for a failed attempt."""
        try:
            target = parse_push_url(url, self.guard.allow_private)
        except RefusedUrl as exc:
            return Attempt(None, str(exc))
        headers = webhook_headers(message_id, body, secret)
        if extra_headers:
            headers.update(extra_headers)
        request = self.client.build_request(
            "POST", target, content=body, headers=headers, timeout=httpx.Timeout(timeout_s)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                response = await self.client.send(request, stream=True)
        except RefusedAddress as exc:
            return Attempt(None, f"refused address: {exc}")
        except (TimeoutError, httpx.TimeoutException):
            return Attempt(None, f"timeout: no answer within {timeout_s:g} s")
        except (httpx.HTTPError, OSError) as exc:
            return Attempt(None, f"connection failed: {type(exc).__name__}: {exc}"[:400])
        try:
            if 200 <= response.status_code < 300:
                return Attempt(response.status_code)
            snippet = ""
            with contextlib.suppress(Exception):
                async with asyncio.timeout_at(deadline):
                    snippet = await _body_snippet(response)
        finally:
            with contextlib.suppress(Exception):
                await response.aclose()
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Attempt(response.status_code, _failure_text(response, snippet), retry_after)
