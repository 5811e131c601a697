"""What every answered request leaves behind, the same on both request paths: its Prometheus figures
(broker_http_requests_total, broker_http_request_duration_seconds), its log line, and its span when tracing
is on. ``route`` is always a route template (``unmatched`` for a path no route has), never the raw path."""

from __future__ import annotations

import time

from starlette.types import Scope

from broker.telemetry.logs import log_request
from broker.telemetry.metrics import RequestMetrics
from broker.telemetry.tracing import Tracing

UNMATCHED = "unmatched"
_metrics = RequestMetrics()


def started() -> tuple[float, int]:
    """(perf_counter, wall-clock ns) at the start of a request."""
    return time.perf_counter(), time.time_ns()


def finished(scope: Scope, rid: str, route: str, status: int, start: tuple[float, int], project: str | None,
             tracing: Tracing | None) -> None:
    seconds = time.perf_counter() - start[0]
    method: str = scope["method"]
    _metrics.observe(route, method, status, seconds)
    log_request(rid, method, route, status, seconds, project)
    if tracing is not None and tracing.enabled:
        queue = scope.get("path_params", {}).get("queue")
        tracing.request(scope["headers"], method, route, status, start[1], project, queue)


def route_of(scope: Scope) -> str:
    """The template of the route that served ``scope`` (Starlette sets ``scope["route"]``)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
