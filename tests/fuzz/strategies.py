"""Hypothesis strategies of the fuzz tests: requests for every route of ``broker.http.app.ROUTES`` (and for paths
and methods that are none), with bodies built from each route's fields or from nothing at all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_from_bytes

import msgspec
from hypothesis import strategies as st

from broker import schemas
from broker.http.app import ROUTES

TEMPLATES = sorted((method, route.path) for route in ROUTES for method in (route.methods or ()) if method != "HEAD")
BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    "/v1/queue/create": schemas.CreateQueueRequest,
    "/v1/queue/update/{queue}": schemas.UpdateQueueRequest,
    "/v1/queue/publish": schemas.PublishRequest,
    "/v1/queue/publish_batch": schemas.PublishBatchRequest,
    "/v1/queue/consume": schemas.ConsumeRequest,
    "/v1/queue/ack": schemas.AckRequest,
    "/v1/queue/ack_batch": schemas.AckBatchRequest,
    "/v1/queue/nack": schemas.NackRequest,
    "/v1/queue/extend": schemas.ExtendRequest,
    "/v1/queue/dlq/redrive/{queue}": schemas.RedriveRequest,
    "/v1/queue/push_subscribe/{queue}": schemas.PushSubscribeRequest,
}

# --- values ----------------------------------------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)), max_leaves=20)
queue_names = st.one_of(
    st.sampled_from(["q1", "f1", "dead"]),
    st.sampled_from(["q1", "f1", "dead", "nope", "Q1", "q1 ", "", "a" * 80, "a" * 81, "..", "*", "{q1}", "q:1",
                     "q%2F1", "é", "\u0000", "q1\n"]),
    st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z"),
    st.text(max_size=20),
)
numbers = st.one_of(st.sampled_from([0, 1, -1, 0.5, 2, 9, 10, 20, 20.5, 100, 101, 1000, 1001, 43200, 43201, 2**53,
                                     10**20, -(10**20), 1e308, "1", "", None, True]),
                    st.integers(min_value=-5, max_value=1005), st.floats(allow_nan=False, allow_infinity=False))
short_waits = st.sampled_from([0, 0, 0.01, -1, 20.5, 21, "1", None, True, 1e308])


@dataclass(frozen=True)
class Ref:
    """The ``index``-th message id (or receipt) that exists when the request is sent (they change between
    examples, and a strategy must not depend on them)."""

    kind: str
    index: int


def resolve(value: Any, world: Any) -> Any:
    if isinstance(value, Ref):
        pool = world.message_ids if value.kind == "id" else world.receipts
        return pool[value.index % len(pool)] if pool else "0-1"
    if isinstance(value, dict):
        return {k: resolve(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, world) for v in value]
    return value


ids = st.integers(0, 63).map(lambda i: Ref("id", i))
receipts = st.integers(0, 63).map(lambda i: Ref("receipt", i))


def plausible(field: str) -> st.SearchStrategy[Any]:
    """Values that are often valid for ``field`` (so the request gets past decoding), and often not."""
    if field in ("queue", "name", "dead_letter_queue"):
        return queue_names
    if field == "payload":
        return st.one_of(json_values, st.just({"deep": [[[[["x"]]]]]}), st.just(None))
    if field == "wait_seconds":
        return short_waits
    if field in ("message_id",):
        return st.one_of(ids, st.text(max_size=70), numbers)
    if field == "receipt":
        return st.one_of(receipts, st.text(max_size=130), numbers)
    if field == "messages":
        item = st.fixed_dictionaries({}, optional={
            "payload": json_values, "message_id": ids, "receipt": receipts, "priority": numbers,
            "delay_seconds": numbers, "group_id": st.text(max_size=130), "idempotency_key": st.text(max_size=10)})
        return st.one_of(st.lists(item, max_size=4), json_values)
    if field in ("type",):
        return st.sampled_from(["standard", "fifo", "lifo", "", None, 1])
    if field in ("url", "forward_to"):
        return st.sampled_from(["https://93.184.216.34/hook", "http://127.0.0.1:9/h", "ftp://x", "https://",
                                "not a url", "https://[::1]/", "", None, 5])
    if field in ("requeue", "enable_priority"):
        return st.one_of(st.booleans(), json_scalars)
    if field in ("idempotency_key", "group_id", "secret", "since"):
        return st.one_of(st.text(max_size=300), st.sampled_from(["2026-01-01T00:00:00Z", "whsec_AAAA", None]))
    return numbers


@st.composite
def bodies(draw: st.DrawFn, path: str) -> bytes | dict[str, Any]:
    """A body: bytes as they are sent, or a dict to send as JSON once its Refs are resolved."""
    kind = draw(st.sampled_from(["plausible"] * 6 + ["json", "bytes", "utf8", "deep", "empty", "big"]))
    if kind == "plausible":
        struct = BODY_TYPES.get(path, schemas.QueueOnlyRequest)
        fields = [f.name for f in msgspec.structs.fields(struct)]
        chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)))
        body: dict[str, Any] = {f: draw(plausible(f)) for f in chosen}
        if draw(st.booleans()):
            body[draw(st.text(max_size=8))] = draw(json_values)  # unknown fields are ignored
        return body
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "utf8":
        return b'{"queue": "q1", "payload": "\xff\xfe\xc3"}'
    if kind == "deep":
        depth = draw(st.sampled_from([500, 5000, 200_000]))
        return b'{"queue":"q1","payload":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "big":
        return b'{"queue":"q1","payload":"' + b"x" * (256 * 1024 + draw(st.integers(0, 10))) + b'"}'
    return b""


header_sets = st.fixed_dictionaries({}, optional={
    "content-type": st.sampled_from([b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data",
                                     b"application/json; charset=latin-1", b"\xff\xfe", b""]),
    "authorization": st.sampled_from([b"", b"Bearer", b"Bearer ", b"Bearer wrong-key-123", b"Basic dXNlcjpwYXNz",
                                      b"Bearer " + b"k" * 600, b"\xff\xfe", b"bearer"]),
    "content-length": st.sampled_from([b"0", b"1", b"-1", b"abc", b"99999999999999999999", b"5242881", b" 3 ",
                                       b"1e3"]),
    "x-request-id": st.one_of(st.binary(max_size=40), st.sampled_from([b"a" * 200, b"ok-id.1:2"])),
})


Request = tuple[str, bytes, bytes, list[Any], bytes | dict[str, Any]]


@st.composite
def requests(draw: st.DrawFn, route: tuple[str, str] | None = None) -> Request:
    """(method, raw path, query string, headers, body): to ``route`` (a (method, path template) of TEMPLATES) when
    it is given, else to any route of TEMPLATES, or (one in ten) to a path or method that is none."""
    if route is None and draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO"]))
        raw_path = draw(st.sampled_from([b"/", b"/v1", b"/v1/queue", b"/v1/queue/", b"/v1/queue/get/",
                                         b"/v1/queue/get/q1/extra", b"/v1/queue/%ff", b"/v1/queue/get/%00",
                                         b"/v1/queue/publish/", b"//v1/queue/list", b"/v1/queue/../queue/list"]))
        template = ""
    else:
        method, template = route or draw(st.sampled_from(TEMPLATES))
        raw_path = template.encode()
        if b"{queue}" in raw_path:
            name = draw(st.one_of(queue_names.map(lambda n: quote(n, safe="", errors="surrogatepass").encode()),
                                  st.sampled_from([b"%ff%fe", b"q%201", b"q1%2Fx", b"%C3%A9", b"q1%00", b"q1/x"])))
            raw_path = raw_path.replace(b"{queue}", name)
    # An HTTP server delivers the request target as ASCII (uvicorn refuses other bytes with its own 400), so
    # everything else arrives percent-encoded.
    query = draw(st.one_of(st.just(b""), st.sampled_from([b"limit=0", b"limit=1001", b"limit=abc", b"limit=-1",
                                                          b"limit=1&limit=2", b"cursor=%ff", b"cursor=!!!", b"cursor=",
                                                          b"limit=99999999999999999999", b"%ff=%fe", b"a=b&&&"]),
                           st.binary(max_size=30).map(lambda b: quote_from_bytes(b, safe="=&").encode())))
    headers = draw(header_sets) if draw(st.integers(0, 3)) == 0 else {}
    body = draw(bodies(template))
    return method, raw_path, query, list(headers.items()), body
