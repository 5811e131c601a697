"""One valid request for every route of ``broker.http.app.ROUTES``: what the outage tests send while the store is
away. A route added later without an entry here still gets a request (with a generic body)."""

from __future__ import annotations

from typing import Any

from broker.http.app import ROUTES
from broker.http.routes.ui import ASSETS as UI_ASSETS

#: (method, path template) -> body of a request that would succeed (or fail only on a missing message).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/queue/create"): {"name": "other"},
    ("PATCH", "/v1/queue/update/{queue}"): {"max_retries": 7},
    ("POST", "/v1/queue/publish"): {"queue": "{queue}", "payload": {"n": 1}},
    ("POST", "/v1/queue/publish_batch"): {"queue": "{queue}", "messages": [{"payload": 1}, {"payload": 2}]},
    ("POST", "/v1/queue/consume"): {"queue": "{queue}", "max_messages": 5},
    ("POST", "/v1/queue/ack"): {"queue": "{queue}", "message_id": "0-1"},
    ("POST", "/v1/queue/ack_batch"): {"queue": "{queue}", "messages": [{"message_id": "0-1"}]},
    ("POST", "/v1/queue/nack"): {"queue": "{queue}", "message_id": "0-1"},
    ("POST", "/v1/queue/extend"): {"queue": "{queue}", "message_id": "0-1", "visibility_timeout": 5},
    ("POST", "/v1/queue/push_subscribe/{queue}"): {"url": "http://127.0.0.1:9/hook"},
    ("POST", "/v1/queue/dlq/redrive/{queue}"): {},
    ("POST", "/v1/queue/purge/{queue}"): {},
}
UNAUTHENTICATED = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css",
                   "/docs/assets/swagger-ui-bundle.js", "/docs/assets/docs.js", "/metrics", "/ui",
                   *(f"/ui/assets/{name}" for name in UI_ASSETS)}


def _fill(value: Any, queue: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, queue) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, queue) for v in value]
    return queue if value == "{queue}" else value


def route_requests(queue: str) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body or None) for every authenticated route."""
    requests = []
    for route in ROUTES:
        if route.path in UNAUTHENTICATED or route.path.startswith("/v1/admin/"):
            continue  # the admin API takes the admin key, not a project's (tests/api/test_api_quotas.py)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            body = BODIES.get((method, route.path), {"queue": "{queue}"} if method != "GET" else None)
            if "{queue}" in route.path and isinstance(body, dict) and body.get("queue") == "{queue}":
                body = {k: v for k, v in body.items() if k != "queue"}
            path = route.path.replace("{queue}", queue).replace("{message_id}", "0" * 19)
            requests.append((method, path, _fill(body, queue)))
    return requests
