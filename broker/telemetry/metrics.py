"""Prometheus metrics (prometheus-client), served at ``GET /metrics`` in the text exposition format.

Two kinds:

- **Process metrics**, counted by the process that served the request or made the push attempt:
  ``broker_http_requests_total{route,method,status}``, ``broker_http_request_duration_seconds{route,method}``,
  ``broker_push_delivery_duration_seconds``. ``broker serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
  directory before its processes start (prometheus-client's multiprocess mode), so a scrape answered by any
  of its processes reports all of them.
- **Store metrics**, read from Redis at scrape time, so every process reports the same, whole-store figures:
  the message counters that the scripts keep per queue (one HINCRBY per counter and call; exact across every
  API and worker process and across restarts), the depth of each queue by state, its oldest available
  message, and push attempts by outcome.

Every metric name appears once here (:data:`METRIC_NAMES`); ``docs/observability.md`` lists them and a test
holds the two together, and checks that the dashboards and alerts in ``deploy/`` name only these.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from broker.store.accounts import USAGE_KINDS, Account, UsageRow
from broker.store.queues import QueueMetrics

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Counter suffix -> what it counts (each ``broker_messages_<suffix>_total{project,queue}``).
MESSAGE_COUNTERS: dict[str, str] = {
    "published": "Messages stored by publish and publish_batch (an idempotent repeat is not counted).",
    "delivered": "Deliveries: messages leased by consume or for a push attempt.",
    "acked": "Messages acknowledged (deleted after processing), by ack, ack_batch or a successful push.",
    "nacked": "Leases ended by nack (requeued or dead-lettered).",
    "lease_expired": "Leases that reached their deadline without an ack or nack.",
    "dead_lettered": "Messages dead-lettered from the queue (nack without requeue, retries used up, push failed).",
    "redriven": "Dead letters moved back into the queue by redrive.",
    "purged": "Messages deleted by purge.",
}
QUEUE_STATES = ("available", "in_flight", "delayed", "dead_letter")
#: Push outcome label -> the counter of QueueMetrics.
PUSH_OUTCOMES = {"success": "push_success", "failure": "push_failure", "dead_lettered": "push_dead_lettered"}

HTTP_REQUESTS = "broker_http_requests_total"
HTTP_DURATION = "broker_http_request_duration_seconds"
PUSH_DURATION = "broker_push_delivery_duration_seconds"
QUEUE_MESSAGES = "broker_queue_messages"
QUEUE_OLDEST = "broker_queue_oldest_message_age_seconds"
PUSH_DELIVERIES = "broker_push_deliveries_total"
STORE_UP = "broker_store_up"
PROJECT_CREDIT = "broker_project_credit"
PROJECT_LIMIT = "broker_project_limit"
PROJECT_USAGE = "broker_project_usage_today"

#: Every metric this service exports (the process_* and python_* collectors of prometheus-client besides).
METRIC_NAMES: tuple[str, ...] = (
    HTTP_REQUESTS, HTTP_DURATION, PUSH_DURATION,
    *(f"broker_messages_{name}_total" for name in MESSAGE_COUNTERS),
    QUEUE_MESSAGES, QUEUE_OLDEST, PUSH_DELIVERIES, STORE_UP, PROJECT_CREDIT, PROJECT_LIMIT, PROJECT_USAGE,
)

#: Multiprocess mode, decided when this module is imported, as prometheus-client decides where its values go
#: (memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``, or this process's memory).
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0)

_requests = Counter(HTTP_REQUESTS.removesuffix("_total"), "HTTP requests answered, by route template, method and "
                    "status.", ["route", "method", "status"])
_duration = Histogram(HTTP_DURATION, "Time to answer an HTTP request (long polls included), by route template and "
                      "method.", ["route", "method"], buckets=LATENCY_BUCKETS)
_push_duration = Histogram(PUSH_DURATION, "Time of one push delivery attempt, from connecting to the answer.",
                           buckets=LATENCY_BUCKETS)


class RequestMetrics:
    """Counts answered requests of this process. The label children are kept per (route, method, status),
    so a request costs two dictionary lookups, an increment and a histogram observation."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (_requests.labels(route, method, str(status)), _duration.labels(route, method))
        pair[0].inc()
        pair[1].observe(seconds)


def observe_push(seconds: float) -> None:
    _push_duration.observe(seconds)


def render_store(queues: Sequence[QueueMetrics], store_up: bool, now_ms: int | None = None) -> bytes:
    """The store metrics of ``queues`` in the text exposition format, written directly (a store with 10,000
    queues has 160,000 samples: generic metric families would cost more than the reads). Project and queue
    names need no escaping: both are validated to ``[A-Za-z0-9_-]``."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    out: list[str] = []
    labels = [f'project="{q.project}",queue="{q.queue}"' for q in queues]
    for name, help_ in MESSAGE_COUNTERS.items():
        metric = f"broker_messages_{name}_total"
        out.append(f"# HELP {metric} {help_}\n# TYPE {metric} counter\n")
        out.extend(f"{metric}{{{label}}} {getattr(q, name)}\n" for q, label in zip(queues, labels, strict=True))
    out.append(f"# HELP {QUEUE_MESSAGES} Messages of a queue by state (dead_letter: its dead letters, wherever they "
               f"wait).\n# TYPE {QUEUE_MESSAGES} gauge\n")
    for q, label in zip(queues, labels, strict=True):
        out.extend(f'{QUEUE_MESSAGES}{{{label},state="{state}"}} {getattr(q, state)}\n' for state in QUEUE_STATES)
    out.append(f"# HELP {QUEUE_OLDEST} Age of the oldest available message of a queue (0 when it has none).\n"
               f"# TYPE {QUEUE_OLDEST} gauge\n")
    for q, label in zip(queues, labels, strict=True):
        age = 0.0 if q.oldest_enqueued_ms is None else max(0.0, (now_ms - q.oldest_enqueued_ms) / 1000)
        out.append(f"{QUEUE_OLDEST}{{{label}}} {age}\n")
    out.append(f"# HELP {PUSH_DELIVERIES} Push delivery attempts by outcome (failure: to be retried).\n"
               f"# TYPE {PUSH_DELIVERIES} counter\n")
    for q, label in zip(queues, labels, strict=True):
        out.extend(f'{PUSH_DELIVERIES}{{{label},outcome="{outcome}"}} {getattr(q, field)}\n'
                   for outcome, field in PUSH_OUTCOMES.items())
    out.append(f"# HELP {STORE_UP} 1 when the store answered the reads of this scrape, else 0.\n"
               f"# TYPE {STORE_UP} gauge\n{STORE_UP} {1 if store_up else 0}\n")
    return "".join(out).encode()


def render_projects(projects: Sequence[tuple[Account, Sequence[UsageRow]]]) -> bytes:
    """The accounts of the projects created by the admin API (docs/admin.md): credit (projects with credit only),
    limits that are set, and today's usage (UTC) by capability and kind, as the scripts metered it."""
    out = [f"# HELP {PROJECT_CREDIT} Credit left (projects with credit configured; the others are unlimited).\n"
           f"# TYPE {PROJECT_CREDIT} gauge\n"]
    out.extend(f'{PROJECT_CREDIT}{{project="{a.project}"}} {a.credit}\n' for a, _ in projects if a.credit is not None)
    out.append(f"# HELP {PROJECT_LIMIT} Limits of a project that are set, by limit.\n# TYPE {PROJECT_LIMIT} gauge\n")
    for account, _ in projects:
        for name in ("max_queues", "max_messages", "max_payload_bytes", "requests_per_second", "burst"):
            value = getattr(account.limits, name)
            if value is not None:
                out.append(f'{PROJECT_LIMIT}{{project="{account.project}",limit="{name}"}} {value}\n')
    out.append(f"# HELP {PROJECT_USAGE} Usage of the current UTC day by capability and kind (calls, published, "
               f"delivered, pushed, bytes); starts again from 0 each day.\n# TYPE {PROJECT_USAGE} gauge\n")
    for account, rows in projects:
        for row in rows:
            out.extend(f'{PROJECT_USAGE}{{project="{account.project}",capability="{row.capability}",kind="{kind}"}} '
                       f"{getattr(row, kind)}\n" for kind in USAGE_KINDS)
    return "".join(out).encode()


def exposition(store_text: bytes) -> bytes:
    """The whole text exposition: the process metrics (of every process of the server in multiprocess mode),
    this process's process_* and python_* collectors, then the store metrics (:func:`render_store`)."""
    registry: CollectorRegistry = REGISTRY
    if MULTIPROCESS:
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return generate_latest(registry) + store_text
