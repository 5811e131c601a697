"""Standard Webhooks signing, checked against the published test vector and an independent verifier,
and the retry schedule."""

from __future__ import annotations

import email.utils
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from broker.push.webhooks import (
    BACKOFF_CAP_MS,
    RETRY_AFTER_CAP_MS,
    InvalidSecret,
    parse_retry_after,
    retry_delay_ms,
    secret_key,
    sign,
    webhook_headers,
)

# The test vector of the Standard Webhooks specification (shared with its reference libraries).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_published_test_vector():
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


@pytest.mark.parametrize("secret", [VECTOR_SECRET, "whsec_" + "QUJD", "any utf-8 secret: é"])
def test_headers_verify_with_the_reference_library(secret):
    body = b'{"message_id":"abc","payload":{"x":1}}'
    headers = webhook_headers("abc", body, secret)
    assert headers["webhook-id"] == "abc" and abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    verifier = Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode())
    assert verifier.verify(body, headers) == {"message_id": "abc", "payload": {"x": 1}}
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body + b" ", headers)


def test_secret_keys():
    assert secret_key("whsec_QUJD") == b"ABC"
    assert secret_key("whsec_QUI") == b"AB"  # unpadded base64 is accepted
    assert secret_key("plain") == b"plain"
    for bad in ("whsec_", "whsec_***", "whsec_QU JD"):
        with pytest.raises(InvalidSecret):
            secret_key(bad)


def test_no_secret_no_signature():
    assert "webhook-signature" not in webhook_headers("m", b"{}", None)


def test_retry_schedule():
    assert [retry_delay_ms(n, lambda: 1.0) for n in range(1, 10)] == [
        5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000
    ]
    assert retry_delay_ms(1, lambda: 0.0) == 2_500  # jitter: (d/2, d]
    assert retry_delay_ms(1000, lambda: 1.0) == BACKOFF_CAP_MS


def test_retry_after():
    now = time.time()
    assert parse_retry_after("120") == 120_000
    assert parse_retry_after("0") == 0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) in range(29_000, 31_001)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0
    assert parse_retry_after("999999999") == RETRY_AFTER_CAP_MS
    for invalid in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(invalid) is None
