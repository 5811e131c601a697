"""Property-based fuzzing of every route in ``broker.http.app.ROUTES`` (and of paths and methods that are not
routes): generated bodies (plausible ones built from each route's fields, arbitrary JSON, huge and deeply
nested JSON, invalid UTF-8, random bytes), paths, query strings and headers (wrong content types, lying
Content-Length, broken Authorization). For every request: never a 5xx; every 4xx in the contract's error
shape; and a 4xx changes nothing in the store (the project's keys are compared byte for byte)."""

from __future__ import annotations

import json
from typing import Any

from fuzzkit import Answer, call, contract_problems
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from strategies import BODY_TYPES, TEMPLATES, Request, bodies, requests, resolve
from support import changed_keys, project_snapshot

from broker.http.app import ROUTES

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)


async def run(world: Any, method: str, raw_path: bytes, query: bytes, extra: list[tuple[str, bytes]],
              body: bytes, chunked: bool = False) -> Answer:
    headers = {"authorization": f"Bearer {world.key}".encode(), "content-type": b"application/json",
               "content-length": str(len(body)).encode()}
    headers.update(dict(extra))
    raw_headers = [(k.encode(), v) for k, v in headers.items() if v is not None]
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)] if chunked else [body]
    return await call(world.app, method, raw_path, query=query, headers=raw_headers, chunks=chunks,
                      state=world.state)


async def check_one(world: Any, request: Request, chunked: bool = False) -> None:
    method, raw_path, query, headers, content = request
    await world.ensure()
    body = content if isinstance(content, bytes) else json.dumps(resolve(content, world)).encode()
    before = await project_snapshot(world.redis, world.project)
    answer = await run(world, method, raw_path, query, headers, body, chunked)
    event(f"{answer.status}")
    problems = contract_problems(answer)
    assert not problems, (problems, method, raw_path, query, headers, body[:300], answer.status, answer.body[:300])
    if 400 <= answer.status < 500:
        changed = changed_keys(before, await project_snapshot(world.redis, world.project))
        assert not changed, (f"a {answer.status} changed {changed}", method, raw_path, body[:300], answer.body[:300])


@given(data=st.data())
@FUZZ
async def test_fuzzed_requests_get_contract_answers_and_refusals_change_nothing(
    world: Any, data: st.DataObject
) -> None:
    await check_one(world, data.draw(requests()))


@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
async def test_fuzzed_bodies_sent_in_pieces(world: Any, data: st.DataObject) -> None:
    method, template = data.draw(st.sampled_from([t for t in TEMPLATES if t[0] != "GET"]))
    body = data.draw(bodies(template))
    await check_one(world, (method, template.replace("{queue}", "q1").encode(), b"", [], body), chunked=True)


@given(data=st.data())
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_route_is_fuzzed(data: st.DataObject) -> None:
    """The generators draw every route of the app (TEMPLATES is the route table), each with the body of its own
    request type: a new route needs nothing here, a new route with a body of its own needs an entry in BODY_TYPES
    (one that takes the queue from its path gets QueueOnlyRequest's fields), and an entry for a route that is
    gone fails. For each route, what ``requests`` draws for it is a request to that route."""
    routes = {(method, route.path) for route in ROUTES for method in (route.methods or ()) if method != "HEAD"}
    assert set(TEMPLATES) == routes and len(TEMPLATES) == len(routes)
    assert set(BODY_TYPES) <= {path for _, path in routes}, "BODY_TYPES entries for paths that are not routes"
    for method, path in TEMPLATES:
        if method in ("POST", "PATCH") and path not in BODY_TYPES and not path.startswith("/v1/admin/"):
            assert path.startswith("/v1/queue/") and "{queue}" in path, (method, path)  # the admin API: 401 here
        drawn_method, raw_path, _query, _headers, _body = data.draw(requests(route=(method, path)))
        prefix, queue_in_path, suffix = path.partition("{queue}")
        target = raw_path.decode("latin-1")
        assert drawn_method == method, (method, path, drawn_method)
        if queue_in_path:
            # the queue part may be empty: a fuzzed name
            assert target.startswith(prefix) and target.endswith(suffix), (path, target)
        else:
            assert target == path, (path, target)
