"""Push delivery end to end: the API subscribes, a runner delivers over real TLS to a local receiver."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from standardwebhooks import Webhook
from support import eventually

from broker.push.webhooks import BACKOFF_FIRST_MS
from broker.store.keys import ProjectKeys
from broker.telemetry.tracing import Tracing

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
async def papi(app_factory: Any, project: str) -> Any:
    """The API of the test's project, allowing push to the local receiver."""
    (client,) = await app_factory(project, push_allow_private=True)
    return client


async def make_queue(api: Any, name: str = "jobs", **config: Any) -> None:
    await api.ok("POST", "/v1/queue/create", {"name": name, **config})


async def subscribe(api: Any, queue: str, url: str, **options: Any) -> dict[str, Any]:
    result: dict[str, Any] = await api.ok("POST", f"/v1/queue/push_subscribe/{queue}", {"url": url, **options})
    return result


async def publish(api: Any, queue: str, payload: Any) -> str:
    return str((await api.ok("POST", "/v1/queue/publish", {"queue": queue, "payload": payload}))["message_id"])


async def stats(api: Any, queue: str = "jobs") -> dict[str, Any]:
    result: dict[str, Any] = await api.ok("GET", f"/v1/queue/stats/{queue}")
    return result


async def due_ms(redis_client: Any, project: str, queue: str, message_id: str) -> int | None:
    score = await redis_client.zscore(ProjectKeys(project).queue(queue).delayed, message_id)
    return None if score is None else int(score)


async def test_delivers_signed_message_and_acks(papi, receiver, start_runner):
    await make_queue(papi)
    sub = await subscribe(papi, "jobs", receiver.url(), secret=SECRET)
    message_id = await publish(papi, "jobs", {"order": 7})
    await start_runner()
    [request] = await receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["webhook-id"] == message_id
    assert request.headers["content-type"] == "application/json"
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["message_id"] == message_id and body["payload"] == {"order": 7}
    assert body["attempts"] == 1 and body["group_id"] is None and body["priority"] == 0
    assert "receipt" not in body and {"enqueued_at", "lease_expires_at"} <= set(body)
    await eventually(lambda: _settled(papi))
    state = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
    assert state["subscription_id"] == sub["subscription_id"]
    assert (state["last_status"], state["consecutive_failures"], state["disabled"]) == (200, 0, False)
    assert state["last_error"] is None and state["last_attempt_at"] is not None
    [entry] = state["recent_attempts"]
    assert (entry["message_id"], entry["attempt"], entry["outcome"], entry["status"], entry["error"]) == (
        message_id, 1, "success", 200, None)
    assert entry["at"] == state["last_attempt_at"] and entry["duration_ms"] >= 0


async def _settled(api: Any, queue: str = "jobs") -> bool:
    s = await stats(api, queue)
    return s["available"] == s["in_flight"] == s["delayed"] == 0


async def test_unsigned_without_secret(papi, receiver, start_runner):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url())
    await publish(papi, "jobs", 1)
    await start_runner()
    [request] = await receiver.wait_for(1)
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-timestamp"].isdigit()


async def test_retries_with_backoff_then_succeeds(papi, receiver, start_runner, clock, redis_client, project):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url(), secret="plain secret")
    receiver.statuses = [500, 502]
    message_id = await publish(papi, "jobs", {"n": 1})
    await start_runner()
    await receiver.wait_for(1)
    due = await eventually(lambda: due_ms(redis_client, project, "jobs", message_id))
    assert BACKOFF_FIRST_MS / 2 <= due - clock.ms <= BACKOFF_FIRST_MS  # first retry within 5 s
    clock.advance(5)
    await receiver.wait_for(2)
    second_wait = await eventually(lambda: due_ms(redis_client, project, "jobs", message_id)) - clock.ms
    assert BACKOFF_FIRST_MS <= second_wait <= 2 * BACKOFF_FIRST_MS  # doubled
    clock.advance(10)
    requests = await receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in requests} == {message_id}  # the same id on every attempt
    assert [r.json()["attempts"] for r in requests] == [1, 2, 3]
    Webhook(b"plain secret").verify(requests[2].body, requests[2].headers)  # a non-whsec secret is raw bytes
    await eventually(lambda: _settled(papi))
    state = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
    assert state["last_status"] == 200 and state["consecutive_failures"] == 0


async def test_failure_state_is_recorded(papi, receiver, start_runner):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url())
    receiver.statuses = [500]
    await publish(papi, "jobs", 1)
    await start_runner()
    await receiver.wait_for(1)

    async def failed() -> Any:
        state = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
        return state if state["consecutive_failures"] == 1 else None

    state = await eventually(failed)
    assert state["last_status"] == 500 and state["last_error"].startswith("HTTP 500")
    assert state["disabled"] is False


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(papi, receiver, start_runner, clock, redis_client, project, status):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url())

    async def busy(_request: Any) -> Any:
        return status, {"retry-after": "120"}, b"busy"

    receiver.respond = busy
    message_id = await publish(papi, "jobs", 1)
    await start_runner()
    await receiver.wait_for(1)
    due = await eventually(lambda: due_ms(redis_client, project, "jobs", message_id))
    assert due - clock.ms == 120_000


async def test_gone_disables_subscription_and_requeues(papi, receiver, start_runner, clock):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url())
    receiver.statuses = [410]
    await publish(papi, "jobs", 1)
    runner = await start_runner()
    await receiver.wait_for(1)

    async def disabled() -> Any:
        state = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
        return state if state["disabled"] else None

    state = await eventually(disabled)
    assert state["last_status"] == 410
    s = await stats(papi)
    assert (s["available"], s["in_flight"], s["delayed"]) == (1, 0, 0)  # requeued at once

    async def retired() -> bool:
        return not runner.dispatcher.pushers

    await eventually(retired)
    await publish(papi, "jobs", 2)
    clock.advance(60)
    await runner.dispatcher.refresh()  # what the runner does every refresh interval: no pusher for it
    assert not runner.dispatcher.pushers
    assert len(receiver.requests) == 1  # no deliveries while disabled
    # The message is still there for pull consumers; the 410 attempt did not count.
    consume = {"queue": "jobs", "max_messages": 10, "visibility_timeout": 0}
    consumed = await papi.ok("POST", "/v1/queue/consume", consume)
    assert sorted(m["attempts"] for m in consumed["messages"]) == [1, 1]
    # Subscribing again enables it.
    await subscribe(papi, "jobs", receiver.url())
    await receiver.wait_for(3)


async def test_redirect_is_not_followed(papi, receiver, start_runner, clock, redis_client, project):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url("/hook"))

    async def redirect(request: Any) -> Any:
        if request.path == "/hook":
            return 302, {"location": receiver.url("/elsewhere")}, b""
        return 200, {}, b"ok"

    receiver.respond = redirect
    message_id = await publish(papi, "jobs", 1)
    await start_runner()
    await receiver.wait_for(1)
    assert await eventually(lambda: due_ms(redis_client, project, "jobs", message_id))  # a failure: retried
    assert receiver.paths() == ["/hook"]
    state = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
    assert state["last_status"] == 302 and "not followed" in state["last_error"]


async def test_dead_letters_with_push_failed_after_max_retries(papi, receiver, start_runner, clock):
    await make_queue(papi, max_retries=0)
    await subscribe(papi, "jobs", receiver.url(), max_retries=2)  # the subscription's budget wins
    receiver.statuses = [500, 500, 500, 200]
    message_id = await publish(papi, "jobs", {"k": "v"})
    await start_runner()
    for n in (1, 2):
        await receiver.wait_for(n)
        await eventually(lambda: _delayed(papi))
        clock.advance(20)
    await receiver.wait_for(3)

    async def listed() -> Any:
        page = await papi.ok("GET", "/v1/queue/dlq/list/jobs")
        return page["items"]

    [dead] = await eventually(listed)
    assert dead["message_id"] == message_id and dead["reason"] == "push_failed"
    assert dead["source_queue"] == "jobs" and dead["last_error"].startswith("HTTP 500")
    assert dead["attempts"] == 3
    clock.advance(700)
    await eventually(lambda: _settled(papi), what="nothing left to deliver")  # no retry left, none in flight
    assert len(receiver.requests) == 3
    state = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
    assert [(e["message_id"], e["attempt"], e["outcome"], e["status"]) for e in state["recent_attempts"]] == [
        (message_id, 3, "dead_lettered", 500), (message_id, 2, "failure", 500), (message_id, 1, "failure", 500)]
    assert all(e["error"].startswith("HTTP 500") and e["duration_ms"] >= 0 for e in state["recent_attempts"])


async def _delayed(api: Any, queue: str = "jobs") -> bool:
    return bool((await stats(api, queue))["delayed"])


async def test_dead_letters_to_the_subscriptions_dlq(papi, receiver, start_runner):
    await make_queue(papi, "failed")
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url(), max_retries=0, dead_letter_queue="failed")
    receiver.statuses = [500]
    message_id = await publish(papi, "jobs", 1)
    await start_runner()
    await receiver.wait_for(1)
    await eventually(lambda: _available(papi, "failed"))
    page = await papi.ok("GET", "/v1/queue/dlq/list/jobs")
    assert [(i["message_id"], i["reason"]) for i in page["items"]] == [(message_id, "push_failed")]
    consumed = await papi.ok("POST", "/v1/queue/consume", {"queue": "failed"})
    assert consumed["messages"][0]["message_id"] == message_id


async def _available(api: Any, queue: str) -> bool:
    return bool((await stats(api, queue))["available"])


async def test_timeout_counts_as_failure(papi, receiver, start_runner, clock, redis_client, project):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url(), visibility_timeout=1)
    release = asyncio.Event()

    async def slow(_request: Any) -> Any:
        await release.wait()
        return 200, {}, b"late"

    receiver.respond = slow
    message_id = await publish(papi, "jobs", 1)
    await start_runner()
    await receiver.wait_for(1)
    assert await eventually(lambda: due_ms(redis_client, project, "jobs", message_id), timeout=3)
    release.set()
    state = await papi.ok("GET", "/v1/queue/push_subscription/jobs")
    assert state["last_status"] is None and state["last_error"].startswith("timeout")


async def test_concurrency_limit_per_subscription(papi, receiver, start_runner):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url(), max_concurrency=3)
    release = asyncio.Event()

    async def held(_request: Any) -> Any:
        await release.wait()
        return 200, {}, b"ok"

    receiver.respond = held
    for n in range(7):
        await publish(papi, "jobs", n)
    await start_runner()
    await receiver.wait_for(3)
    s = await stats(papi)
    assert (s["in_flight"], s["available"]) == (3, 4)  # three leased (and being delivered), no more claimed
    assert len(receiver.requests) == 3 and receiver.max_in_progress == 3
    release.set()
    await receiver.wait_for(7)
    assert receiver.max_in_progress <= 3
    await eventually(lambda: _settled(papi))


async def test_slow_endpoint_does_not_stall_other_queues(papi, receiver, start_runner):
    await make_queue(papi, "slow")
    await make_queue(papi, "fast")
    await subscribe(papi, "slow", receiver.url("/slow"), max_concurrency=1)
    await subscribe(papi, "fast", receiver.url("/fast"))
    release = asyncio.Event()

    async def answer(request: Any) -> Any:
        if request.path == "/slow":
            await release.wait()
        return 200, {}, b"ok"

    receiver.respond = answer
    for n in range(3):
        await publish(papi, "slow", n)
    await start_runner()
    await receiver.wait_for(1, path="/slow")
    for n in range(5):
        await publish(papi, "fast", n)
    await receiver.wait_for(5, path="/fast", timeout=3)
    assert len([p for p in receiver.paths() if p == "/slow"]) == 1
    release.set()
    await receiver.wait_for(3, path="/slow")


async def test_two_runners_deliver_each_message_once(papi, receiver, start_runner):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url())
    ids = [await publish(papi, "jobs", n) for n in range(30)]
    runners = await asyncio.gather(start_runner(), start_runner())
    await receiver.wait_for(30)
    await eventually(lambda: _settled(papi))
    for runner in runners:
        await runner.stop()  # nothing is sent after this: a duplicate would be among the requests now
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(ids)


async def test_unsubscribe_stops_deliveries(papi, receiver, start_runner, clock):
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url())
    runner = await start_runner()
    await publish(papi, "jobs", 1)
    await receiver.wait_for(1)
    deleted = await papi.request("DELETE", "/v1/queue/push_subscription/jobs")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True

    async def retired() -> bool:  # the runner notices within its refresh interval
        return not runner.dispatcher.pushers

    await eventually(retired)
    await publish(papi, "jobs", 2)
    await runner.dispatcher.refresh()  # what the runner does every refresh interval: no pusher for it
    assert not runner.dispatcher.pushers
    assert len(receiver.requests) == 1
    assert (await stats(papi))["available"] == 1


async def test_replacing_subscription_redirects_deliveries(papi, receiver, start_runner):
    await make_queue(papi)
    first = await subscribe(papi, "jobs", receiver.url("/one"))
    runner = await start_runner()
    await publish(papi, "jobs", 1)
    await receiver.wait_for(1, path="/one")
    second = await subscribe(papi, "jobs", receiver.url("/two"))
    assert second["subscription_id"] == first["subscription_id"]

    async def updated() -> bool:
        return [p.sub.url for p in runner.dispatcher.pushers.values()] == [second["url"]]

    await eventually(updated)
    await publish(papi, "jobs", 2)
    await receiver.wait_for(1, path="/two")


async def test_serve_runs_push_delivery_in_process(app_factory, project, receiver, tls_files, monkeypatch):
    """``broker serve`` (run_workers) delivers with its in-process runner. The test CA is trusted through
    SSL_CERT_FILE, as a deployment with a private CA would do it."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))
    extra = {"background_projects": [project], "push_poll_seconds": 0.05, "push_refresh_seconds": 0.05}
    (api,) = await app_factory(project, run_workers=True, push_allow_private=True, extra=extra)
    await make_queue(api)
    await subscribe(api, "jobs", receiver.url())
    message_id = await publish(api, "jobs", {"via": "serve"})
    [request] = await receiver.wait_for(1)
    assert request.json()["message_id"] == message_id
    await eventually(lambda: _settled(api))


async def test_fifo_groups_are_pushed_in_order_one_at_a_time(papi, receiver, start_runner, clock):
    await make_queue(papi, type="fifo")
    await subscribe(papi, "jobs", receiver.url())
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []
    failed_once: set[int] = set()

    async def answer(request: Any) -> Any:
        body = request.json()
        group, n = body["group_id"], body["payload"]["n"]
        in_flight[group] = in_flight.get(group, 0) + 1
        if in_flight[group] > 1:
            overlaps.append(group)
        await asyncio.sleep(0.02)
        in_flight[group] -= 1
        if group == "g" and n == 1 and n not in failed_once:
            failed_once.add(n)
            return 500, {}, b"first attempt fails"
        return 200, {}, b"ok"

    receiver.respond = answer
    for group, n in [("g", 1), ("g", 2), ("h", 1), ("g", 3), ("h", 2)]:
        await papi.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": {"n": n}, "group_id": group})
    await start_runner()
    await receiver.wait_for(3)  # g1 (fails), h1, h2; g2 waits behind g1's retry

    async def waiting_for_the_retry() -> bool:
        s = await stats(papi)
        return (s["in_flight"], s["delayed"]) == (0, 1) and receiver.in_progress == 0

    await eventually(waiting_for_the_retry)
    consumed = await papi.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 10})
    assert consumed["messages"] == []  # g2 and g3 wait behind g1's retry: nothing for the pusher to take either
    order = [(r.json()["group_id"], r.json()["payload"]["n"]) for r in receiver.requests]
    assert [n for g, n in order if g == "g"] == [1]
    clock.advance(5)
    await receiver.wait_for(6)
    order = [(r.json()["group_id"], r.json()["payload"]["n"]) for r in receiver.requests]
    assert [n for g, n in order if g == "g"] == [1, 1, 2, 3] and [n for g, n in order if g == "h"] == [1, 2]
    assert overlaps == []


async def test_a_delivery_is_a_producer_span_and_carries_its_traceparent(papi, receiver, start_runner):
    exporter = InMemorySpanExporter()
    await make_queue(papi)
    await subscribe(papi, "jobs", receiver.url(), secret=SECRET)
    message_id = await publish(papi, "jobs", {"order": 8})
    await start_runner(tracing=Tracing.with_exporter(exporter, batch=False))
    [request] = await receiver.wait_for(1)
    await eventually(lambda: len(exporter.get_finished_spans()) == 1)
    [span] = exporter.get_finished_spans()
    assert span.name == "send jobs" and span.kind.name == "PRODUCER"
    assert span.attributes["messaging.message.id"] == message_id
    assert span.attributes["messaging.destination.name"] == "jobs"
    assert span.attributes["http.response.status_code"] == 200
    version, trace_id, span_id, flags = request.headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert trace_id == format(span.context.trace_id, "032x") and span_id == format(span.context.span_id, "016x")
    Webhook(SECRET).verify(request.body, request.headers)  # the signature does not cover the trace headers
