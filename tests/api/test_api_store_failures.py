"""One mapping from store failures to contract errors (broker/store/failures.py), the same on every path:
a route served by the lean path (publish), a Starlette route that calls a script (stats), and a Starlette
route that reads the store without a script (get). One case per failure class of the table."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import assert_error
from redis import exceptions as redis_errors

from broker.store.failures import FAILURES, LOST_MESSAGE, ReplicaAckError, StoreLostError, store_failure
from broker.store.scripts import Scripts

CASES: list[tuple[Exception, int, str, str]] = [
    (StoreLostError(LOST_MESSAGE), 503, "UNAVAILABLE", "lost its data"),
    (redis_errors.OutOfMemoryError("OOM command not allowed"), 503, "UNAVAILABLE", "out of memory"),
    (redis_errors.BusyLoadingError("LOADING Redis is loading"), 503, "UNAVAILABLE", "loading"),
    (redis_errors.ReadOnlyError("READONLY You can't write against a read only replica"), 503, "UNAVAILABLE",
     "read-only"),
    (ReplicaAckError(0, 1, 500), 503, "UNAVAILABLE", "replicas"),
    (redis_errors.ClusterDownError("CLUSTERDOWN"), 503, "UNAVAILABLE", "cluster is down"),
    (redis_errors.TryAgainError("TRYAGAIN"), 503, "UNAVAILABLE", "unavailable"),
    (redis_errors.NoScriptError("NOSCRIPT No matching script"), 503, "UNAVAILABLE", "changed"),
    (redis_errors.MasterDownError("MASTERDOWN"), 503, "UNAVAILABLE", "no primary"),
    (redis_errors.ConnectionError("refused"), 503, "UNAVAILABLE", "unavailable"),
    (redis_errors.TimeoutError("slow"), 503, "UNAVAILABLE", "unavailable"),
    (TimeoutError(), 503, "UNAVAILABLE", "unavailable"),
    (ConnectionResetError(), 503, "UNAVAILABLE", "unavailable"),
    (OSError("Network is unreachable"), 503, "UNAVAILABLE", "unavailable"),
    (redis_errors.ResponseError("MISCONF cannot persist"), 503, "UNAVAILABLE", "unavailable"),
    (redis_errors.ResponseError("WRONGTYPE Operation against a key"), 500, "INTERNAL", "internal"),
    (redis_errors.DataError("Invalid input of type"), 500, "INTERNAL", "internal"),
    (redis_errors.InvalidResponse("Protocol error"), 503, "UNAVAILABLE", "unavailable"),
    (redis_errors.ResponseError("QUEUE_NOT_FOUND\tqueue\tqueue 'x' does not exist"), 404, "QUEUE_NOT_FOUND",
     "does not exist"),
]


def test_no_entry_of_the_table_is_shadowed_by_an_earlier_one() -> None:
    classes = [cls for cls, _ in FAILURES]
    for i, earlier in enumerate(classes):
        for later in classes[i + 1 :]:
            assert not issubclass(later, earlier), f"{later.__name__} comes after its base {earlier.__name__}"


def test_every_class_of_the_table_has_a_case() -> None:
    covered = {type(exc) for exc, *_ in CASES}
    assert {cls for cls, _ in FAILURES} <= covered


@pytest.mark.parametrize(("exc", "status", "code", "words"), CASES, ids=lambda v: type(v).__name__ if
                         isinstance(v, Exception) else None)
def test_the_table(exc: Exception, status: int, code: str, words: str) -> None:
    mapped = store_failure(exc)
    assert (mapped.status, mapped.code) == (status, code)
    assert words in mapped.message.lower()
    assert "WRONGTYPE" not in mapped.message and "Protocol" not in mapped.message
    if status == 503:
        assert mapped.headers["Retry-After"]


@pytest.mark.parametrize(("exc", "status", "code", "words"), CASES, ids=lambda v: type(v).__name__ if
                         isinstance(v, Exception) else None)
async def test_every_http_path_answers_the_same(api: Any, make_queue: Any, redis_client: Any,
                                                monkeypatch: pytest.MonkeyPatch, exc: Exception, status: int,
                                                code: str, words: str) -> None:
    await make_queue("jobs")

    def fail(*_args: Any, **_kwargs: Any) -> Any:
        async def failing() -> Any:  # like the client: the command fails when awaited
            raise exc

        return failing()

    monkeypatch.setattr(Scripts, "_evalsha", fail)
    monkeypatch.setattr(Scripts, "_eval_source", fail)  # NOSCRIPT is retried with the source: it fails again
    monkeypatch.setattr(redis_client, "hmget", fail)
    answers = [
        await api.post("/v1/queue/publish", {"queue": "jobs", "payload": {"n": 1}}),  # the lean path
        await api.get("/v1/queue/stats/jobs"),  # a Starlette route calling a script
        await api.get("/v1/queue/get/jobs"),  # a Starlette route reading without a script
    ]
    for response in answers:
        error = assert_error(response, status, code)
        assert words in error["message"].lower()
        if status == 503:
            assert response.headers["retry-after"]

