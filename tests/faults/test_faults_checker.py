"""The queue checker itself (tests/faults/loadgen.py), on made-up histories: what counts as lost, and what as an
ack of unknown outcome that may have taken effect."""

from __future__ import annotations

import httpx
from loadgen import History, check


def answer(status: int) -> httpx.Response:
    return httpx.Response(status, json={})


def history_of(*events: tuple[str, int | None]) -> History:
    """A history of one acknowledged publish ("p1", message "m1") and then ``events`` in order:
    ("deliver", attempt) or ("ack", status or None for no answer)."""
    history = History()
    history.sent["p1"] = {"id": "p1"}
    history.acknowledged.add("p1")
    for kind, value in events:
        if kind == "deliver":
            history.deliver({"payload": {"id": "p1"}, "message_id": "m1", "attempts": value}, "c1")
        else:
            history.acked("p1", "ack", None if value is None else answer(value))
            if value == 200:
                history.completed.add("p1")
    return history


def test_an_acked_message_is_complete() -> None:
    verdict = check(history_of(("deliver", 1), ("ack", 200)))
    assert verdict.ok and verdict.lost == [] and verdict.maybe_acked == []


def test_a_message_delivered_and_gone_without_an_ack_is_lost() -> None:
    verdict = check(history_of(("deliver", 1), ("ack", 409)))
    assert not verdict.ok and verdict.lost == ["p1"] and verdict.maybe_acked == []


def test_an_ack_of_unknown_outcome_after_the_last_delivery_may_have_acked_it() -> None:
    for unknown in (503, None):
        verdict = check(history_of(("deliver", 1), ("ack", unknown), ("ack", 409)))
        assert verdict.ok and verdict.lost == [] and verdict.maybe_acked == ["p1"], unknown


def test_a_delivery_after_the_unknown_ack_shows_it_did_not_take_effect() -> None:
    verdict = check(history_of(("deliver", 1), ("ack", 503), ("deliver", 2), ("ack", 409)))
    assert not verdict.ok and verdict.lost == ["p1"] and verdict.maybe_acked == []


def test_a_429_is_a_definite_refusal_not_an_unknown_outcome() -> None:
    verdict = check(history_of(("deliver", 1), ("ack", 429), ("ack", 409)))
    assert verdict.lost == ["p1"]
