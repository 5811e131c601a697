"""Hardening of the HTTP edge, through the app: payloads every strict reader can read (valid UTF-8, numbers a
64-bit float holds), bad input that used to be a 500 (and a logged traceback), one Authorization header on both
request paths, no trailing-slash redirects, long-poll slots fair between projects, and the settings that bound
all this. The same behaviours through a real ``broker serve`` (and the connection limits, which only exist in
the server) are in tests/ops/test_ops_hardening.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from apikit import MakeQueue, assert_error

from broker.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
async def jobs(make_queue: MakeQueue) -> str:
    await make_queue("jobs")
    return "jobs"


async def post_raw(api: Any, path: str, body: bytes) -> Any:
    return await api.request("POST", path, content=body, headers=JSON_HEADERS)


async def available(api: Any, queue: str = "jobs") -> int:
    return int((await api.ok("GET", f"/v1/queue/stats/{queue}"))["available"])


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


# --- payloads (items 3 and 4) -----------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "field"), [
    (b'{"queue":"jobs","payload":"\xff"}', "payload"),                       # compact, as in the report
    (b'{"queue":"jobs","payload":{"name":"caf\xe9"}}', "payload"),          # latin-1, not UTF-8
    (b'{"queue":"jobs","payload":"\xed\xa0\x80"}', "payload"),               # a UTF-8-encoded surrogate
    (b'{"queue": "jobs", "payload": {"a": "\xff"}}', "payload"),             # with whitespace: was a 500
])
async def test_a_payload_that_is_not_valid_utf8_is_refused(api: Any, jobs: str, body: bytes, field: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    assert_error(await post_raw(api, "/v1/queue/publish", body), 400, "VALIDATION_ERROR", field)
    assert await available(api) == 0
    no_traceback(caplog)


async def test_a_lone_surrogate_escape_is_refused(api: Any, jobs: str, caplog: pytest.LogCaptureFixture) -> None:
    for body in (b'{"queue":"jobs","payload":"\\ud800"}', b'{"queue": "jobs", "payload": ["\\udfff"]}'):
        assert_error(await post_raw(api, "/v1/queue/publish", body), 400, "VALIDATION_ERROR")
    assert await available(api) == 0
    no_traceback(caplog)


async def test_a_batch_item_that_is_not_valid_utf8_is_refused_and_nothing_is_stored(
    api: Any, jobs: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"queue":"jobs","messages":[{"payload":1},{"payload":"ok"},{"payload":["\xc3"]}]}'
    assert_error(await post_raw(api, "/v1/queue/publish_batch", body), 400, "VALIDATION_ERROR", "messages[2].payload")
    assert await available(api) == 0
    no_traceback(caplog)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/queue/publish", b'{"queue": "jobs", "payload": {"n": 1e400}}', "payload"),
    ("/v1/queue/publish", b'{"queue":"jobs","payload":{"n":1e400}}', "payload"),  # compact: refused alike
    ("/v1/queue/publish", b'{"queue": "jobs", "payload": [ -1e400 ]}', "payload[0]"),
    ("/v1/queue/publish", b'{"queue":"jobs","payload":1' + b"0" * 400 + b'.5}', "payload"),
    ("/v1/queue/publish_batch", b'{"queue": "jobs", "messages": [{"payload": 1}, {"payload": [1e400, 2]}]}',
     "messages[1].payload[0]"),
])
async def test_a_number_out_of_range_is_400_not_500(api: Any, jobs: str, path: str, body: bytes, field: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    error = assert_error(await post_raw(api, path, body), 400, "VALIDATION_ERROR", field)
    assert "out of range" in error["message"]
    assert await available(api) == 0
    no_traceback(caplog)


async def test_every_stored_payload_reads_back_as_strict_json(api: Any, jobs: str) -> None:
    """What is accepted is delivered as JSON that a strict parser reads, byte for byte as stored."""
    bodies = [b'{"queue":"jobs","payload":{"t":"caf\xc3\xa9 \xe2\x9c\x93"}}', b'{"queue": "jobs", "payload": [1e300]}',
              b'{"queue":"jobs","payload":1' + b"0" * 400 + b"}", b'{"queue":"jobs","payload":"\\ud83d\\ude00"}']
    for body in bodies:
        assert (await post_raw(api, "/v1/queue/publish", body)).status_code == 200
    response = await api.post("/v1/queue/consume", {"queue": "jobs", "max_messages": 10})
    payloads = [m["payload"] for m in json.loads(response.content.decode("utf-8", errors="strict"))["messages"]]
    assert payloads == [{"t": "café ✓"}, [1e300], 10**400, "😀"]


# --- the DLQ cursor (item 4) ---------------------------------------------------------------------------------
def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("score", ["9" * 5000, "²", "١٢", "-1", "1.5", ""])
async def test_a_malformed_dlq_cursor_is_400(api: Any, jobs: str, score: str, caplog: pytest.LogCaptureFixture) -> None:
    response = await api.get("/v1/queue/dlq/list/jobs", params={"cursor": cursor(f"{score}:jobs\0m1")})
    assert_error(response, 400, "VALIDATION_ERROR", "cursor")
    no_traceback(caplog)


async def test_a_sane_dlq_cursor_is_taken(api: Any, jobs: str) -> None:
    response = await api.get("/v1/queue/dlq/list/jobs", params={"cursor": cursor("1700000000000:jobs\0m1")})
    assert response.status_code == 200 and response.json() == {"items": []}


# --- Authorization (item 7) ----------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["wrong-then-right", "right-then-wrong", "right-twice"])
async def test_two_authorization_headers_are_refused_on_both_request_paths(api: Any, jobs: str, order: str) -> None:
    right, wrong = f"Bearer {api.key}", "Bearer wrong-key-0123456789"
    pair = {"wrong-then-right": [wrong, right], "right-then-wrong": [right, wrong], "right-twice": [right, right]}
    headers = [("Authorization", value) for value in pair[order]] + [("Content-Type", "application/json")]
    publish = await api.client.post("/v1/queue/publish", content=b'{"queue":"jobs","payload":1}', headers=headers)
    error = assert_error(publish, 401, "UNAUTHORIZED")  # the lean path
    assert "more than one Authorization header" in error["message"]
    stats = await api.client.get("/v1/queue/stats/jobs", headers=headers)
    assert assert_error(stats, 401, "UNAUTHORIZED")["message"] == error["message"]  # the Starlette routes
    assert await available(api) == 0


# --- no redirects (item 6) -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/queue/publish/"), ("GET", "/v1/queue/list/"),
                                              ("GET", "/healthz/"), ("GET", "/v1/queue/stats/jobs/")])
async def test_a_trailing_slash_is_404_in_the_error_shape_not_a_redirect(api: Any, jobs: str, method: str,
                                                                        path: str) -> None:
    response = await api.request(method, path, {"queue": "jobs", "payload": 1}, headers={"Host": "evil.example"})
    assert_error(response, 404, "NOT_FOUND")
    assert "location" not in response.headers
    assert await available(api) == 0


# --- long polls, per project (item 5) ------------------------------------------------------------------------
async def test_one_project_cannot_take_every_long_poll_slot(app_factory: Any, make_project: Any) -> None:
    hog, other = await app_factory(make_project("hog"), make_project("other"), use_clock=False,
                                   max_long_polls=4, max_long_polls_per_project=2)
    for api in (hog, other):
        await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    waits = [asyncio.create_task(hog.post("/v1/queue/consume", {"queue": "jobs", "wait_seconds": 2}))
             for _ in range(2)]
    await asyncio.sleep(0.3)
    refused = await hog.post("/v1/queue/consume", {"queue": "jobs", "wait_seconds": 1})
    error = assert_error(refused, 429, "RATE_LIMITED")
    assert refused.headers["retry-after"] == "1" and "this project already holds 2" in error["message"]
    # a task of its own, as the server runs every request (the slot is the task's until it ends)
    admitted = await asyncio.create_task(other.post("/v1/queue/consume", {"queue": "jobs", "wait_seconds": 0.2}))
    assert admitted.status_code == 200 and admitted.json() == {"messages": []}
    assert (await hog.post("/v1/queue/consume", {"queue": "jobs"})).status_code == 200  # wait 0: never bounded
    assert [r.status_code for r in await asyncio.gather(*waits)] == [200, 200]
    assert hog.ctx.long_polls.in_use == 0


async def test_by_default_a_project_leaves_a_tenth_of_the_slots_to_the_others(app_factory: Any,
                                                                              make_project: Any) -> None:
    """The report: one project held every waiting consume of the process and another project's got 429."""
    hog, other = await app_factory(make_project("hog"), make_project("other"), use_clock=False, max_long_polls=10)
    for api in (hog, other):
        await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    waits = [asyncio.create_task(hog.post("/v1/queue/consume", {"queue": "jobs", "wait_seconds": 1.5}))
             for _ in range(10)]
    await asyncio.sleep(0.3)
    theirs = await asyncio.create_task(other.post("/v1/queue/consume", {"queue": "jobs", "wait_seconds": 0.3}))
    assert theirs.status_code == 200, theirs.text
    assert hog.ctx.long_polls.held_by(hog.project) == 9
    statuses = sorted(r.status_code for r in await asyncio.gather(*waits))
    assert statuses == [200] * 9 + [429]


# --- settings and their documentation (the body timeout's default: test_api_body_timeout.py) -------------------
def test_the_new_limits_have_sane_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.max_header_bytes == 16 * 1024
    assert 1 <= settings.header_timeout_seconds <= 10
    assert settings.max_connections > settings.max_long_polls
    assert settings.long_polls_per_project == 900 < settings.max_long_polls
    assert Settings.from_env({"BROKER_MAX_LONG_POLLS": "2"}).long_polls_per_project == 2
    assert Settings.from_env({"BROKER_MAX_LONG_POLLS_PER_PROJECT": "50"}).long_polls_per_project == 50


@pytest.mark.parametrize(("variable", "value"), [
    ("BROKER_MAX_HEADER_BYTES", "100"), ("BROKER_MAX_HEADER_BYTES", "lots"), ("BROKER_HEADER_TIMEOUT_SECONDS", "0"),
    ("BROKER_MAX_CONNECTIONS", "1"), ("BROKER_BODY_TIMEOUT_SECONDS", "0"), ("BROKER_MAX_LONG_POLLS_PER_PROJECT", "0"),
    ("BROKER_MAX_LONG_POLLS_PER_PROJECT", "1001"),  # more than BROKER_MAX_LONG_POLLS
])
def test_a_bad_limit_stops_start_up_with_one_line_naming_it(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    message = str(raised.value)
    assert message.startswith(f"{variable}=") and "\n" not in message


def test_every_setting_is_documented_and_the_limits_are_listed_in_reliability() -> None:
    source = (ROOT / "broker" / "settings.py").read_text()
    variables = set(re.findall(r'"(BROKER_[A-Z_]+)"', source))
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    assert {v for v in variables if f"`{v}`" not in configuration} == set()
    reliability = (ROOT / "docs" / "reliability.md").read_text()
    limits = {"BROKER_MAX_HEADER_BYTES", "BROKER_HEADER_TIMEOUT_SECONDS", "BROKER_MAX_CONNECTIONS",
              "BROKER_BODY_TIMEOUT_SECONDS", "BROKER_MAX_LONG_POLLS", "BROKER_MAX_LONG_POLLS_PER_PROJECT"}
    assert limits <= variables
    assert {v for v in limits if f"`{v}`" not in reliability} == set()
    defaults = Settings()
    row = re.search(r"\| `BROKER_BODY_TIMEOUT_SECONDS` \| `(\d+)` \|", configuration)
    assert row and int(row.group(1)) == defaults.body_timeout_seconds
