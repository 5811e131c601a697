"""Receiving push deliveries: :func:`verify` checks a delivery's Standard Webhooks signature (on the
``standardwebhooks`` package) and returns the message it carries. docs/client.md has a Starlette and a Flask
receiver.

The server signs each delivery of a subscription that has a ``secret`` (docs/push.md, "Signing"): headers
``webhook-id`` (the message id, the same on every attempt: use it to drop duplicates), ``webhook-timestamp``
and ``webhook-signature``. A secret starting with ``whsec_`` is base64 after the prefix; any other secret is
used as its UTF-8 bytes, as the server does. Deliveries older or newer than five minutes are refused (replays).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from broker.client.models import PushMessage

__all__ = ["InvalidSignature", "verify"]

_decode = msgspec.json.Decoder(PushMessage).decode


class InvalidSignature(Exception):
    """The delivery is not signed with this secret, is signed too long ago, or is not a message; answer 4xx."""


def _webhook(secret: str | bytes) -> Webhook:
    if isinstance(secret, str) and not secret.startswith("whsec_"):
        secret = secret.encode()
    return Webhook(secret)


def verify(secret: str | bytes, headers: Mapping[str, str], body: bytes | str) -> PushMessage:
    """The message of a push delivery whose signature ``secret`` verifies; raises :class:`InvalidSignature`
    otherwise. Pass the request's headers (any mapping; names in any case) and its body exactly as received."""
    try:
        _webhook(secret).verify(body, {str(k): str(v) for k, v in headers.items()}, json_parse=False)
    except WebhookVerificationError as exc:
        raise InvalidSignature(str(exc)) from None
    try:
        return _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidSignature(f"signed, but not a message: {exc}") from None
