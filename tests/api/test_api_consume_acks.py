"""The ``ack`` extension of consume (docs/api.md "Acks and nacks on consume"): the messages it names are acked item by
item in the same atomic step as the lease, before it; the answer reports each; bad items are 400."""

from __future__ import annotations

from typing import Any

from apikit import MakeQueue, assert_error, assert_message


async def publish(api: Any, *payloads: Any, queue: str = "jobs", **extra: Any) -> list[str]:
    return [(await api.ok("POST", "/v1/queue/publish", {"queue": queue, "payload": p, **extra}))["message_id"]
            for p in payloads]


async def consume(api: Any, queue: str = "jobs", **body: Any) -> dict[str, Any]:
    reply: dict[str, Any] = await api.ok("POST", "/v1/queue/consume", {"queue": queue, **body})
    return reply


async def stats(api: Any, queue: str = "jobs") -> dict[str, Any]:
    reply: dict[str, Any] = await api.ok("GET", f"/v1/queue/stats/{queue}")
    return reply


async def test_the_previous_message_is_acked_and_the_next_leased(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    first, second = await publish(api, 1, 2)
    [m1] = (await consume(api))["messages"]
    assert m1["message_id"] == first
    reply = await consume(api, ack=[{"message_id": first, "receipt": m1["receipt"]}])
    assert set(reply) == {"messages", "acked", "failed"}
    assert reply["acked"] == [first] and reply["failed"] == []
    [m2] = reply["messages"]
    assert_message(m2)
    assert m2["message_id"] == second
    s = await stats(api)
    assert (s["available"], s["in_flight"]) == (0, 1)
    # A plain consume answers as the contract says: no acked/failed fields.
    assert await consume(api) == {"messages": []}


async def test_bad_items_are_reported_and_the_good_ones_acked(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    await make_queue("jobs", visibility_timeout_default=10)
    a, b, c = await publish(api, "a", "b", "c")
    leased = {m["message_id"]: m for m in (await consume(api, max_messages=3))["messages"]}
    await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": c})
    reply = await consume(api, ack=[
        {"message_id": a, "receipt": leased[b]["receipt"]},  # the receipt of another message
        {"message_id": b},                                   # any current lease
        {"message_id": b, "receipt": "made-up"},             # a repeat: its first mention counts
        {"message_id": c},                                   # already acked
    ])
    assert reply["acked"] == [b]
    assert [(f["message_id"], f["code"]) for f in reply["failed"]] == [(a, "LEASE_EXPIRED"), (c, "MESSAGE_NOT_FOUND")]
    assert all(isinstance(f["message"], str) and f["message"] for f in reply["failed"])
    assert reply["messages"] == []
    s = await stats(api)
    assert (s["available"], s["in_flight"]) == (0, 1)  # a is still leased
    clock.advance(11)  # a's lease ended: its ack fails, and the same call leases it again
    reply = await consume(api, ack=[{"message_id": a, "receipt": leased[a]["receipt"]}])
    assert reply["acked"] == [] and [f["code"] for f in reply["failed"]] == ["LEASE_EXPIRED"]
    [again] = reply["messages"]
    assert again["message_id"] == a and again["attempts"] == 2


async def test_fifo_the_group_an_ack_frees_is_leased_by_the_same_call(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("orders", type="fifo")
    first, second = await publish(api, 1, 2, queue="orders", group_id="g")
    [m1] = (await consume(api, "orders"))["messages"]
    assert (await consume(api, "orders"))["messages"] == []  # the group is busy
    reply = await consume(api, "orders", ack=[{"message_id": first, "receipt": m1["receipt"]}])
    assert reply["acked"] == [first]
    assert [m["message_id"] for m in reply["messages"]] == [second]


async def test_an_empty_list_acks_nothing_and_still_reports(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    await publish(api, 1)
    reply = await consume(api, ack=[])
    assert reply["acked"] == [] and reply["failed"] == [] and len(reply["messages"]) == 1


async def test_acks_are_applied_once_before_a_long_poll_waits(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    [mid] = await publish(api, 1)
    [m] = (await consume(api))["messages"]
    reply = await consume(api, wait_seconds=0.3, ack=[{"message_id": mid, "receipt": m["receipt"]}])
    assert reply == {"messages": [], "acked": [mid], "failed": []}
    assert (await stats(api))["in_flight"] == 0


async def test_bad_input_is_400_and_changes_nothing(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    [mid] = await publish(api, 1)
    [m] = (await consume(api))["messages"]
    too_many = [{"message_id": f"{i:020x}"} for i in range(101)]
    for ack, field in ((too_many, "ack"), ([{"receipt": m["receipt"]}], "ack[0].message_id"),
                       ([{"message_id": ""}], None), ([{"message_id": mid, "receipt": 5}], "ack[0].receipt"),
                       ({"message_id": mid}, "ack"), ([mid], "ack[0]")):
        response = await api.request("POST", "/v1/queue/consume", {"queue": "jobs", "ack": ack})
        error = assert_error(response, 400, "VALIDATION_ERROR")
        if field is not None:
            assert error.get("field") == field, (ack, error)
    s = await stats(api)
    assert (s["available"], s["in_flight"]) == (0, 1)
    assert_error(await api.request("POST", "/v1/queue/consume", {"queue": "nope", "ack": [{"message_id": mid}]}),
                 404, "QUEUE_NOT_FOUND", "queue")
    assert (await stats(api))["in_flight"] == 1


# The ``nack`` extension of consume (docs/api.md "Acks and nacks on consume").


async def test_a_nack_requeues_and_the_same_call_leases_again(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs", max_retries=3)
    [mid] = await publish(api, 1)
    [m1] = (await consume(api))["messages"]
    reply = await consume(api, nack=[{"message_id": mid, "receipt": m1["receipt"]}])
    assert set(reply) == {"messages", "nacked", "failed"}  # no "acked": the request had no ack
    assert reply["nacked"] == [{"message_id": mid, "requeued": True}] and reply["failed"] == []
    [again] = reply["messages"]  # requeued at once: leased again by the same call, one more attempt
    assert (again["message_id"], again["attempts"]) == (mid, 2)
    assert again["receipt"] != m1["receipt"]
    s = await stats(api)
    assert (s["available"], s["in_flight"]) == (0, 1)


async def test_a_nack_with_a_delay_or_without_requeue(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    await make_queue("jobs-dlq")
    await make_queue("jobs", dead_letter_queue="jobs-dlq", max_retries=5)
    late, dead, fine = await publish(api, "late", "dead", "fine")
    leased = {m["message_id"]: m for m in (await consume(api, max_messages=3))["messages"]}
    reply = await consume(api, ack=[{"message_id": fine}], nack=[
        {"message_id": late, "delay_seconds": 30},
        {"message_id": dead, "requeue": False, "receipt": leased[dead]["receipt"]},
        {"message_id": late, "requeue": False},  # a repeat: its first mention counts
        {"message_id": fine},                    # acked just before by the same call
    ])
    assert reply["acked"] == [fine]
    assert reply["nacked"] == [{"message_id": late, "requeued": True}, {"message_id": dead, "requeued": False}]
    assert [(f["message_id"], f["code"]) for f in reply["failed"]] == [(fine, "MESSAGE_NOT_FOUND")]
    assert reply["messages"] == []  # late waits for its delay
    s = await stats(api)
    assert (s["available"], s["in_flight"], s["delayed"]) == (0, 0, 1)
    [letter] = (await api.ok("GET", "/v1/queue/dlq/list/jobs"))["items"]
    assert (letter["message_id"], letter["reason"]) == (dead, "nack")
    clock.advance(30)
    [m] = (await consume(api))["messages"]
    assert (m["message_id"], m["attempts"]) == (late, 2)


async def test_a_nack_past_the_retries_dead_letters(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs-dlq")
    await make_queue("jobs", dead_letter_queue="jobs-dlq", max_retries=0)
    [mid] = await publish(api, 1)
    [m] = (await consume(api))["messages"]
    reply = await consume(api, nack=[{"message_id": mid, "receipt": m["receipt"]}])
    assert reply["nacked"] == [{"message_id": mid, "requeued": False}] and reply["messages"] == []
    [letter] = (await api.ok("GET", "/v1/queue/dlq/list/jobs"))["items"]
    assert letter["reason"] == "max_retries"


async def test_a_nack_that_does_not_apply_is_reported(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    await make_queue("jobs", visibility_timeout_default=10)
    a, b = await publish(api, "a", "b")
    leased = {m["message_id"]: m for m in (await consume(api, max_messages=2))["messages"]}
    clock.advance(11)  # both leases ended
    reply = await consume(api, max_messages=2, nack=[
        {"message_id": a, "receipt": leased[a]["receipt"]}, {"message_id": "0" * 19}])
    assert reply["nacked"] == []
    assert [(f["message_id"], f["code"]) for f in reply["failed"]] == [(a, "LEASE_EXPIRED"), ("0" * 19,
                                                                                              "MESSAGE_NOT_FOUND")]
    assert sorted(m["message_id"] for m in reply["messages"]) == sorted([a, b])  # leased again, as without the nack
    assert "acked" not in reply


async def test_fifo_a_nack_requeues_at_the_head_of_its_group(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("orders", type="fifo", max_retries=3)
    first, second = await publish(api, 1, 2, queue="orders", group_id="g")
    [m1] = (await consume(api, "orders"))["messages"]
    reply = await consume(api, "orders", max_messages=2, nack=[{"message_id": first, "receipt": m1["receipt"]}])
    assert reply["nacked"] == [{"message_id": first, "requeued": True}]
    assert [(m["message_id"], m["attempts"]) for m in reply["messages"]] == [(first, 2), (second, 1)]


async def test_bad_nack_items_are_400_and_change_nothing(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    [mid] = await publish(api, 1)
    await consume(api)
    too_many = [{"message_id": f"{i:020x}"} for i in range(101)]
    for nack, field in ((too_many, "nack"), ([{"requeue": True}], "nack[0].message_id"),
                        ([{"message_id": mid, "delay_seconds": -1}], "nack[0].delay_seconds"),
                        ([{"message_id": mid, "delay_seconds": 43201}], "nack[0].delay_seconds"),
                        ([{"message_id": mid, "requeue": "yes"}], "nack[0].requeue"), ({"message_id": mid}, "nack")):
        response = await api.request("POST", "/v1/queue/consume", {"queue": "jobs", "nack": nack,
                                                                    "ack": [{"message_id": mid}]})
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert error.get("field") == field, (nack, error)
    s = await stats(api)
    assert (s["available"], s["in_flight"]) == (0, 1)  # neither the ack nor anything else applied
