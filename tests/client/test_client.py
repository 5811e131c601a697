"""The blocking client against a real server: every capability, typed answers, the contract's errors, and
retries that never store a message twice."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clientkit import Server, lossy_proxy, run_broker
from support import clean_env, free_port, wait_until
from support.fleet import ApiServer, Fleet

import broker.client as bc
from broker.client import Client, models
from broker.client.calls import publish as publish_call


def test_queue_lifecycle(client: Client, make_queue: Callable[..., str]) -> None:
    dlq = make_queue("dlq")
    name = f"life-{uuid.uuid4().hex[:8]}"
    created = client.create_queue(name, type="fifo", max_retries=2, dead_letter_queue=dlq)
    assert isinstance(created, models.QueueRecord)
    assert (created.queue, created.type, created.max_retries, created.dead_letter_queue) == (name, "fifo", 2, dlq)
    assert created.created_at.tzinfo is not None and abs(datetime.now(UTC) - created.created_at) < timedelta(1)
    assert client.create_queue(name, type="fifo", max_retries=2, dead_letter_queue=dlq) == created  # same config
    with pytest.raises(bc.QueueAlreadyExists):
        client.create_queue(name, max_retries=3)
    assert client.get_queue(name) == created
    updated = client.update_queue(name, max_retries=7, visibility_timeout_default=12)
    assert (updated.max_retries, updated.visibility_timeout_default, updated.dead_letter_queue) == (7, 12, dlq)
    assert client.update_queue(name, dead_letter_queue=None).dead_letter_queue is None  # None clears it
    client.publish(name, payload={"n": 1})
    stats = client.stats(name)
    assert (stats.queue, stats.available, stats.in_flight, stats.delayed, stats.dlq) == (name, 1, 0, 0, 0)
    assert client.purge_queue(name).purged == 1
    assert client.delete_queue(name) == models.QueueDeleted(queue=name, deleted=True)
    assert client.delete_queue(name).deleted is False
    with pytest.raises(bc.QueueNotFound):
        client.get_queue(name)


def test_list_queues_by_page_and_all_of_them(client: Client, make_queue: Callable[..., str]) -> None:
    mine = {make_queue("page") for _ in range(5)}
    page = client.list_queues(limit=2)
    assert len(page.items) == 2 and page.next_cursor
    listed = [q.queue for q in client.iter_queues(limit=2)]
    assert mine <= set(listed)
    assert listed == sorted(listed) and len(listed) == len(set(listed))


def test_publish_consume_ack_with_decoded_payloads(client: Client, queue: str) -> None:
    one = client.publish(queue, payload={"order_id": "o_1", "amount": 12.5})
    batch = client.publish_batch(queue, messages=[{"payload": [1, 2]}, models.BatchMessage(payload="three")])
    assert len(batch.message_ids) == 2
    consumed = client.consume(queue, max_messages=10).messages
    assert [m.message_id for m in consumed] == [one.message_id, *batch.message_ids]
    first = consumed[0]
    assert first.payload["order_id"] == "o_1" and first.payload["amount"] == 12.5
    assert [m.payload for m in consumed[1:]] == [[1, 2], "three"]
    assert first.attempts == 1 and first.lease_expires_at > first.enqueued_at
    assert client.ack(queue, message_id=first.message_id, receipt=first.receipt).acked is True
    assert client.ack_batch(queue, messages=consumed[1:]).acked == batch.message_ids
    assert client.stats(queue).in_flight == 0
    with pytest.raises(bc.MessageNotFound):
        client.ack(queue, message_id=first.message_id)


def test_nack_extend_and_dead_letters(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue(max_retries=1)
    client.publish(queue, payload={"job": 1})
    [message] = client.consume(queue, visibility_timeout=5).messages
    extended = client.extend(queue, message_id=message.message_id, visibility_timeout=60, receipt=message.receipt)
    assert extended.lease_expires_at > message.lease_expires_at
    nacked = client.nack(queue, message_id=message.message_id, receipt=extended.receipt, delay_seconds=30)
    assert (nacked.nacked, nacked.requeued) == (True, True)
    assert client.stats(queue).delayed == 1
    client.publish(queue, payload={"job": 2})
    [second] = client.consume(queue).messages
    assert second.payload == {"job": 2}
    assert client.nack(queue, message_id=second.message_id, requeue=False).requeued is False
    letters = client.dlq_list(queue)
    assert [(d.message_id, d.reason, d.source_queue) for d in letters.items] == [(second.message_id, "nack", queue)]
    assert list(client.iter_dlq(queue, limit=1)) == letters.items
    redriven = client.dlq_redrive(queue, since=datetime.now(UTC) - timedelta(minutes=1))
    assert redriven == models.Redriven(queue=queue, redriven=1)
    [again] = client.consume(queue).messages
    assert again.message_id == second.message_id and again.attempts == 1


def test_errors_carry_the_contracts_code_status_message_and_request_id(
        client: Client, queue: str, server: Server) -> None:
    with pytest.raises(bc.QueueNotFound) as missing:
        client.stats("no-such-queue")
    error = missing.value
    assert (error.code, error.status) == ("QUEUE_NOT_FOUND", 404)
    assert "no-such-queue" in error.message and error.request_id and isinstance(error, bc.NotFound)
    with pytest.raises(bc.ValidationError) as invalid:
        client.publish_batch(queue, messages=[{"payload": 1}, {"payload": 2, "priority": 42}])
    assert invalid.value.field == "messages[1].priority" and invalid.value.status == 400
    assert client.stats(queue).available == 0  # all or nothing
    client.publish(queue, payload=1)
    [message] = client.consume(queue).messages
    with pytest.raises(bc.LeaseExpired):
        client.ack(queue, message_id=message.message_id, receipt=message.receipt + "x")
    client.publish(queue, payload="a", idempotency_key="k-1")
    with pytest.raises(bc.IdempotencyKeyReused) as reused:
        client.publish(queue, payload="b", idempotency_key="k-1")
    assert reused.value.code == "IDEMPOTENCY_KEY_REUSED" and reused.value.status == 409
    with Client(server.url, "not-a-key") as stranger, pytest.raises(bc.Unauthorized) as refused:
        stranger.list_queues()
    assert refused.value.status == 401 and str(refused.value).startswith("UNAUTHORIZED: ")


def test_a_publish_whose_answer_is_lost_is_retried_and_stored_once(client: Client, queue: str,
                                                                   server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with lossy_proxy(port, lose=1) as proxy, Client(proxy.url, server.key, retries=3) as lossy:
        published = lossy.publish(queue, payload={"once": True})
        assert proxy.connections == 2  # the answer of the first was lost; the retry got the first one's id
    with lossy_proxy(port, lose=1) as proxy, Client(proxy.url, server.key, retries=3) as lossy:
        batch = lossy.publish_batch(queue, messages=[{"payload": n} for n in range(3)])
        assert proxy.connections == 2
    consumed = client.consume(queue, max_messages=10).messages
    assert [m.message_id for m in consumed] == [published.message_id, *batch.message_ids]
    assert client.stats(queue).available == 0


def test_the_same_call_sent_twice_stores_one_message(client: Client, queue: str) -> None:
    call = publish_call(queue, payload={"n": 1})  # built once: its automatic idempotency key is fixed
    assert client.send(call) == client.send(call)
    assert client.stats(queue).available == 1
    assert client.publish(queue, payload={"n": 1}) != client.publish(queue, payload={"n": 1})  # two calls, two keys


def test_an_ack_whose_answer_is_lost_is_not_sent_again(client: Client, queue: str, server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    client.publish(queue, payload=1)
    [message] = client.consume(queue).messages
    with lossy_proxy(port, lose=1) as proxy, Client(proxy.url, server.key, retries=3) as lossy:
        with pytest.raises(bc.ConnectionFailed) as lost:
            lossy.ack(queue, message_id=message.message_id)
        assert lost.value.sent is True and proxy.connections == 1
    assert client.stats(queue).in_flight == 0  # it was acked: the answer alone was lost


def test_rate_limited_calls_wait_for_retry_after(server: Server) -> None:
    env = clean_env(BROKER_REDIS_URL=server.redis_url)
    done = run_broker("limits", "set", "--project", "limited", "--rate", "1", "--burst", "1", env=env)
    assert done.returncode == 0, done.stderr
    try:
        with Client(server.url, server.limited_key, retries=0) as impatient:
            def limited() -> bool:
                try:
                    for _ in range(3):
                        impatient.list_queues()
                except bc.RateLimited as exc:
                    assert exc.retry_after is not None and exc.retry_after > 0
                    return True
                return False

            wait_until(limited, 10, what="a 429 once the limit applies")
        with Client(server.url, server.limited_key, retries=5) as patient:
            started = time.monotonic()
            for _ in range(3):
                patient.list_queues()  # the second and third wait for the bucket (one token a second)
            assert time.monotonic() - started >= 1.5
    finally:
        run_broker("limits", "clear", "--project", "limited", env=env)


def test_unavailable_and_unreachable_servers_are_waited_for(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path)
    key = f"outage-{uuid.uuid4().hex}"
    try:
        node = fleet.redis()
        port = free_port()
        # Nothing listens yet: connection refused, retried until the server is up.
        with Client(f"http://127.0.0.1:{port}", key, retries=8) as client:
            starter = threading.Thread(target=lambda: (time.sleep(1.0), fleet.servers.append(
                _serve_on(fleet, node.url, f"p:{key}", port))))
            starter.start()
            try:
                assert client.create_queue("outage").queue == "outage"
            finally:
                starter.join()
            # The store goes away: 503 UNAVAILABLE, retried until it is back.
            node.kill()
            restarter = threading.Thread(target=lambda: (time.sleep(1.0), node.start()))
            restarter.start()
            try:
                assert client.stats("outage").available == 0
            finally:
                restarter.join()
        with Client(f"http://127.0.0.1:{port}", key, retries=0) as once:
            node.kill()
            with pytest.raises(bc.Unavailable) as down:
                once.stats("outage")
            assert down.value.status == 503
            node.start()
    finally:
        fleet.stop_all()


def _serve_on(fleet: Fleet, redis_url: str, keys: str, port: int) -> ApiServer:
    return ApiServer(fleet.workdir, redis_url, keys, port=port).start()


def test_the_client_knows_every_error_code_of_the_server_with_its_status() -> None:
    """broker.client.errors mirrors broker.errors without importing it: the same codes, the same statuses, and
    the same family (a QUEUE_NOT_FOUND is a NotFound on both sides)."""
    from broker import errors as server
    from broker.client import errors as client

    assert set(client.ERRORS_BY_CODE) == set(server.ERRORS_BY_CODE)
    for code, server_cls in server.ERRORS_BY_CODE.items():
        client_cls = client.ERRORS_BY_CODE[code]
        assert client_cls.default_status == server_cls.status, code
        assert client_cls.__name__ == server_cls.__name__, code
        server_family = [c.__name__ for c in server_cls.__mro__ if issubclass(c, server.BrokerError)]
        client_family = [c.__name__ for c in client_cls.__mro__ if issubclass(c, client.BrokerError)]
        assert client_family == server_family, code


def test_consume_carries_acks_and_nacks(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue(max_retries=5)
    ids = client.publish_batch(queue, messages=[{"payload": n} for n in range(3)]).message_ids
    first, second, third = client.consume(queue, max_messages=3).messages
    answer = client.consume(queue, max_messages=1, ack=[first],
                            nack=[second, {"message_id": third.message_id, "delay_seconds": 60}])
    assert answer.acked == [ids[0]] and answer.failed == []
    assert [(n.message_id, n.requeued) for n in answer.nacked or ()] == [(ids[1], True), (ids[2], True)]
    [again] = answer.messages  # second, requeued at once; third waits a minute
    assert (again.message_id, again.attempts) == (ids[1], 2)
    stats = client.stats(queue)
    assert (stats.in_flight, stats.delayed, stats.available) == (1, 1, 0)
    assert client.consume(queue).nacked is None  # a plain consume has no such field
