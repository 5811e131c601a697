"""push_subscribe and the subscription extensions through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest

from broker.push import ssrf
from broker.store.keys import ProjectKeys
from broker.store.subscriptions import SubscriptionStore, subscriptions_index

URL = "https://hooks.test/in"


@pytest.fixture
async def papi(app_factory: Any, project: str) -> Any:
    (client,) = await app_factory(project, push_allow_private=True)
    await client.ok("POST", "/v1/queue/create", {"name": "jobs"})
    return client


def error_of(response: Any) -> tuple[int, str, str | None]:
    body = response.json()["error"]
    return response.status_code, body["code"], body.get("field")


async def test_subscribe_returns_subscription_and_get_shows_it(papi):
    r = await papi.post("/v1/queue/push_subscribe/jobs", {"url": URL, "secret": "s3cret"})
    assert r.status_code == 200
    sub = r.json()
    assert sub["queue"] == "jobs" and sub["url"] == URL and sub["subscription_id"].startswith("sub_")
    info = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
    assert "secret" not in info
    assert info == {
        **info,
        "subscription_id": sub["subscription_id"],
        "url": URL,
        "signed": True,
        "max_retries": None,
        "visibility_timeout": 30,
        "dead_letter_queue": None,
        "max_concurrency": 10,
        "last_attempt_at": None,
        "last_status": None,
        "last_error": None,
        "consecutive_failures": 0,
        "disabled": False,
    }


async def test_forward_to_is_an_alias_and_the_body_queue_must_match(papi):
    sub = await papi.ok("POST", "/v1/queue/push_subscribe/jobs", {"queue": "jobs", "forward_to": URL})
    assert sub["url"] == URL
    r = await papi.post("/v1/queue/push_subscribe/jobs", {"queue": "other", "url": URL})
    assert error_of(r) == (400, "VALIDATION_ERROR", "queue")


@pytest.mark.parametrize("body", [{}, {"url": URL, "forward_to": URL}, {"secret": "x"}])
async def test_exactly_one_url_is_required(papi, body):
    r = await papi.post("/v1/queue/push_subscribe/jobs", body)
    assert error_of(r) == (400, "VALIDATION_ERROR", "url")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": URL, "max_retries": -1}, "max_retries"),
        ({"url": URL, "visibility_timeout": 0}, "visibility_timeout"),
        ({"url": URL, "max_concurrency": 0}, "max_concurrency"),
        ({"url": URL, "secret": "whsec_not base64!"}, "secret"),
        ({"url": URL, "dead_letter_queue": "jobs"}, "dead_letter_queue"),
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://hooks.test/"}, "url"),
        ({"url": 5}, "url"),
    ],
)
async def test_invalid_fields(papi, body, field):
    r = await papi.post("/v1/queue/push_subscribe/jobs", body)
    assert error_of(r) == (400, "VALIDATION_ERROR", field)


async def test_unknown_queue_and_unknown_dead_letter_queue(papi):
    r = await papi.post("/v1/queue/push_subscribe/nope", {"url": URL})
    assert error_of(r) == (404, "QUEUE_NOT_FOUND", "queue")
    r = await papi.post("/v1/queue/push_subscribe/jobs", {"url": URL, "dead_letter_queue": "nope"})
    assert error_of(r) == (404, "QUEUE_NOT_FOUND", "dead_letter_queue")
    for method in ("GET", "DELETE"):
        r = await papi.request(method, "/v1/queue/push_subscription/nope")
        assert error_of(r) == (404, "QUEUE_NOT_FOUND", "queue")


async def test_no_subscription_is_404(papi):
    for method in ("GET", "DELETE"):
        r = await papi.request(method, "/v1/queue/push_subscription/jobs")
        assert error_of(r) == (404, "SUBSCRIPTION_NOT_FOUND", "queue")


async def test_subscribing_again_replaces_and_keeps_the_id(papi):
    await papi.ok("POST", "/v1/queue/create", {"name": "dlq"})
    first = await papi.ok("POST", "/v1/queue/push_subscribe/jobs", {"url": URL, "secret": "a"})
    second = await papi.ok(
        "POST", "/v1/queue/push_subscribe/jobs",
        {"url": "https://hooks.test/v2", "max_retries": 3, "visibility_timeout": 5, "dead_letter_queue": "dlq",
         "max_concurrency": 2},
    )
    assert second["subscription_id"] == first["subscription_id"] and second["url"] == "https://hooks.test/v2"
    info = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
    assert (info["signed"], info["max_retries"], info["visibility_timeout"], info["dead_letter_queue"],
            info["max_concurrency"]) == (False, 3, 5, "dlq", 2)


async def test_dead_letter_queue_is_in_use_while_subscribed(papi):
    await papi.ok("POST", "/v1/queue/create", {"name": "dlq"})
    await papi.ok("POST", "/v1/queue/create", {"name": "dlq2"})
    await papi.ok("POST", "/v1/queue/push_subscribe/jobs", {"url": URL, "dead_letter_queue": "dlq"})
    r = await papi.request("DELETE", "/v1/queue/delete/dlq")
    assert error_of(r) == (409, "QUEUE_IN_USE", "queue")
    # Replacing the subscription with another DLQ releases the first one.
    await papi.ok("POST", "/v1/queue/push_subscribe/jobs", {"url": URL, "dead_letter_queue": "dlq2"})
    assert (await papi.ok("DELETE", "/v1/queue/delete/dlq"))["deleted"] is True
    r = await papi.request("DELETE", "/v1/queue/delete/dlq2")
    assert r.status_code == 409
    deleted = await papi.ok("DELETE", "/v1/queue/push_subscription/jobs")
    assert deleted["queue"] == "jobs" and deleted["deleted"] is True
    assert (await papi.ok("DELETE", "/v1/queue/delete/dlq2"))["deleted"] is True


async def test_deleting_the_queue_removes_its_subscription(papi, store, project, redis_client):
    await papi.ok("POST", "/v1/queue/create", {"name": "dlq"})
    await papi.ok("POST", "/v1/queue/push_subscribe/jobs", {"url": URL, "dead_letter_queue": "dlq"})
    assert await redis_client.sismember(subscriptions_index(project), "jobs")
    assert (await papi.ok("DELETE", "/v1/queue/delete/jobs"))["deleted"] is True
    assert not await redis_client.exists(ProjectKeys(project).queue("jobs").sub)
    assert (await papi.ok("DELETE", "/v1/queue/delete/dlq"))["deleted"] is True
    # The delivery loop's listing prunes the index entry the deleted queue left.
    assert await SubscriptionStore(store).active([project]) == []
    assert not await redis_client.sismember(subscriptions_index(project), "jobs")


async def test_idempotency_key(papi):
    body = {"url": URL, "idempotency_key": "k1"}
    first = await papi.ok("POST", "/v1/queue/push_subscribe/jobs", body)
    again = await papi.ok("POST", "/v1/queue/push_subscribe/jobs", body)
    assert again == first
    r = await papi.post("/v1/queue/push_subscribe/jobs", {**body, "url": "https://hooks.test/other"})
    assert error_of(r) == (409, "IDEMPOTENCY_KEY_REUSED", "idempotency_key")


async def test_subscriptions_are_per_project(two_tenants, monkeypatch):
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    monkeypatch.setattr(ssrf, "system_resolver", public)
    a, b = two_tenants
    for api in (a, b):
        await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    await a.ok("POST", "/v1/queue/push_subscribe/jobs", {"url": "https://example.com/hook"})
    r = await b.get("/v1/queue/push_subscription/jobs")
    assert r.status_code == 404 and r.json()["error"]["code"] == "SUBSCRIPTION_NOT_FOUND"


async def test_auth_is_required(papi):
    r = await papi.client.post("/v1/queue/push_subscribe/jobs", json={"url": URL})
    assert r.status_code == 401
    for method in ("GET", "DELETE"):  # the subscription and its recent attempts are read with the key only
        r = await papi.client.request(method, "/v1/queue/push_subscription/jobs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
