"""Receipts prove that their holder received that lease: they cannot be guessed from the message id and the
number of deliveries, nor carried over to another message or a later lease. And what a dead letter shows of
its failed deliveries, and how a refused queue name is explained."""

from __future__ import annotations

from typing import Any

from apikit import assert_error


async def test_a_receipt_cannot_be_guessed(api: Any, make_queue: Any, publish: Any, consume: Any) -> None:
    await make_queue("jobs")
    mid = await publish("jobs")
    [message] = await consume("jobs")
    assert message["receipt"] != f"{mid}.1" and mid not in message["receipt"]
    for guess in (f"{mid}.1", f"{mid}.2", "1", "1." + "0" * 24, message["receipt"][:-1] + "x"):
        response = await api.post("/v1/queue/ack", {"queue": "jobs", "message_id": mid, "receipt": guess})
        assert_error(response, 409, "LEASE_EXPIRED", "receipt")
    # The message is still leased under the true receipt, which works.
    assert (await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": mid,
                                                   "receipt": message["receipt"]}))["acked"] is True


async def test_a_receipt_names_one_lease_of_one_message(api: Any, make_queue: Any, publish: Any,
                                                        consume: Any) -> None:
    await make_queue("jobs")
    first, second = await publish("jobs"), await publish("jobs")
    one, two = await consume("jobs", max_messages=2)
    assert {one["message_id"], two["message_id"]} == {first, second}
    # Another message's receipt does not settle this one.
    response = await api.post("/v1/queue/nack", {"queue": "jobs", "message_id": one["message_id"],
                                                 "receipt": two["receipt"]})
    assert_error(response, 409, "LEASE_EXPIRED", "receipt")
    # A new lease of the same message gets a new receipt; the old one is refused everywhere.
    await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": one["message_id"],
                                           "receipt": one["receipt"]})
    [again] = await consume("jobs")
    assert again["message_id"] == one["message_id"] and again["receipt"] != one["receipt"]
    for path, extra in (("/v1/queue/ack", {}), ("/v1/queue/extend", {"visibility_timeout": 30})):
        response = await api.post(path, {"queue": "jobs", "message_id": one["message_id"],
                                         "receipt": one["receipt"], **extra})
        assert_error(response, 409, "LEASE_EXPIRED", "receipt")
    extended = await api.ok("POST", "/v1/queue/extend", {"queue": "jobs", "message_id": again["message_id"],
                                                         "receipt": again["receipt"], "visibility_timeout": 30})
    assert extended["receipt"] == again["receipt"]


async def test_a_dead_letter_shows_its_failed_deliveries(api: Any, make_queue: Any, publish: Any,
                                                         consume: Any) -> None:
    await make_queue("jobs-dlq")
    await make_queue("jobs", dead_letter_queue="jobs-dlq", max_retries=3)
    mid = await publish("jobs")
    for _ in range(4):
        [message] = await consume("jobs")
        await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": mid, "receipt": message["receipt"]})
    [item] = (await api.ok("GET", "/v1/queue/dlq/list/jobs"))["items"]
    assert (item["message_id"], item["reason"], item["source_queue"]) == (mid, "max_retries", "jobs")
    assert item["attempts"] == 4


async def test_a_refused_queue_name_is_explained_in_words(api: Any) -> None:
    for response in (await api.post("/v1/queue/create", {"name": "no spaces"}),
                     await api.get("/v1/queue/stats/no%20spaces"),
                     await api.post("/v1/queue/publish", {"queue": "a/b", "payload": 1})):
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert "letters, digits" in error["message"] and "[" not in error["message"], error
