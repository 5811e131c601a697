"""GET /metrics through the app: the exact names and labels of docs/observability.md, store figures that match
the workload exactly, route templates (never raw paths), the metrics token, and the files in deploy/ naming
only metrics that exist. Request logs and tracing spans of the same requests."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from apikit import assert_error
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from broker.store.accounts import Accounts
from broker.telemetry import logs
from broker.telemetry.metrics import MESSAGE_COUNTERS, METRIC_NAMES
from broker.telemetry.tracing import Tracing

ROOT = Path(__file__).resolve().parent.parent.parent


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


async def scrape(api: Any, **kw: Any) -> dict[Any, float]:
    response = await api.client.get("/metrics", **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_a_workload_reads_back_exactly(api: Any, make_queue: Any, publish: Any, consume: Any) -> None:
    await make_queue("dead")
    await make_queue("jobs", dead_letter_queue="dead", max_retries=0)
    for n in range(5):
        await publish("jobs", {"n": n})
    await api.ok("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": [{"payload": i} for i in range(3)]})
    taken = await consume("jobs", max_messages=4)
    await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": taken[0]["message_id"],
                                          "receipt": taken[0]["receipt"]})
    await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": taken[1]["message_id"],
                                           "receipt": taken[1]["receipt"]})  # max_retries 0: dead-lettered
    await api.ok("GET", "/v1/queue/stats/jobs")
    found = await scrape(api)
    q = {"project": api.project, "queue": "jobs"}
    assert value(found, "broker_messages_published_total", **q) == 8
    assert value(found, "broker_messages_delivered_total", **q) == 4
    assert value(found, "broker_messages_acked_total", **q) == 1
    assert value(found, "broker_messages_nacked_total", **q) == 1
    assert value(found, "broker_messages_dead_lettered_total", **q) == 1
    for name in ("lease_expired", "redriven", "purged"):
        assert value(found, f"broker_messages_{name}_total", **q) == 0
    assert value(found, "broker_queue_messages", **q, state="available") == 4
    assert value(found, "broker_queue_messages", **q, state="in_flight") == 2
    assert value(found, "broker_queue_messages", **q, state="delayed") == 0
    assert value(found, "broker_queue_messages", **q, state="dead_letter") == 1
    assert value(found, "broker_queue_oldest_message_age_seconds", **q) >= 0
    assert value(found, "broker_store_up") == 1
    for outcome in ("success", "failure", "dead_lettered"):
        assert value(found, "broker_push_deliveries_total", **q, outcome=outcome) == 0
    # Requests, by route template: /v1/queue/stats/{queue}, never /v1/queue/stats/jobs.
    assert value(found, "broker_http_requests_total", route="/v1/queue/publish", method="POST", status="200") >= 5
    assert value(found, "broker_http_requests_total", route="/v1/queue/stats/{queue}", method="GET",
                 status="200") >= 1
    assert value(found, "broker_http_request_duration_seconds_count", route="/v1/queue/publish", method="POST") >= 5
    routes = {dict(labels).get("route") for name, labels in found if name == "broker_http_requests_total"}
    assert not any(route and "jobs" in route for route in routes), routes


async def test_every_documented_metric_is_exported(api: Any, make_queue: Any, publish: Any) -> None:
    accounts = Accounts(api.ctx.redis, api.ctx.store.scripts)
    # broker_project_* (docs/admin.md): the project's account was opened at start-up (its key is configured)
    await accounts.update(api.project, {"limits": {"max_queues": 5}}, api.ctx.store.clock())
    await accounts.add_credit(api.project, 100)
    await make_queue("jobs")
    await publish("jobs")
    names = {name for name, _ in await scrape(api)}
    for metric in METRIC_NAMES:
        assert any(n == metric or n.startswith(metric + "_") or n == metric.removesuffix("_total") + "_total"
                   for n in names), metric
    assert any(n.startswith("process_") for n in names) and any(n.startswith("python_") for n in names)
    reference = (ROOT / "docs" / "observability.md").read_text()
    for metric in METRIC_NAMES:
        assert f"`{metric}" in reference, f"{metric} is not in docs/observability.md"
    assert len(MESSAGE_COUNTERS) == 8


async def test_the_metrics_token(app_factory: Any, project: str) -> None:
    (api,) = await app_factory(project, metrics_token="s3cret-token")
    assert_error(await api.client.get("/metrics"), 401, "UNAUTHORIZED")
    assert_error(await api.client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}), 401,
                 "UNAUTHORIZED")
    assert_error(await api.client.get("/metrics", headers=api.headers), 401, "UNAUTHORIZED")  # a project key
    await scrape(api, headers={"Authorization": "Bearer s3cret-token"})


def _metrics_in(text: str) -> set[str]:
    return set(re.findall(r"\b((?:broker|process|python)_[a-z_]+)\b", text))


def _known(metric: str) -> bool:
    if metric.startswith(("process_", "python_")):
        return True
    return any(metric == m or metric in (f"{m}_bucket", f"{m}_count", f"{m}_sum") for m in METRIC_NAMES)


def test_the_dashboard_and_the_alerts_name_only_metrics_that_exist() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 8
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus-alerts.yml").read_text())
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {"BrokerOldestMessageTooOld", "BrokerDeadLettersGrowing",
                                                 "BrokerHighErrorRate", "BrokerStoreUnavailable"}
    used = set().union(*(_metrics_in(e) for e in exprs), *(_metrics_in(r["expr"]) for r in rules))
    assert used, "no metric found in the expressions"
    unknown = sorted(m for m in used if not _known(m))
    assert not unknown, unknown
    # Between them they show depth, age, rates in/out/dead-lettered, errors, latency and push health.
    for metric in ("broker_queue_messages", "broker_queue_oldest_message_age_seconds",
                   "broker_messages_published_total", "broker_messages_acked_total",
                   "broker_messages_dead_lettered_total", "broker_http_requests_total",
                   "broker_http_request_duration_seconds_bucket", "broker_push_deliveries_total"):
        assert metric in " ".join(exprs), metric


async def test_one_log_line_per_request(api: Any, make_queue: Any, caplog: pytest.LogCaptureFixture) -> None:
    await make_queue("jobs")
    caplog.set_level(logging.INFO, logger="broker.access")
    await api.post("/v1/queue/publish", {"queue": "jobs", "payload": 1})
    await api.get("/v1/queue/stats/jobs")
    await api.get("/v1/queue/stats/nope")
    records = [r for r in caplog.records if r.name == "broker.access"]
    assert [(r.method, r.route, r.status) for r in records] == [  # type: ignore[attr-defined]
        ("POST", "/v1/queue/publish", 200), ("GET", "/v1/queue/stats/{queue}", 200),
        ("GET", "/v1/queue/stats/{queue}", 404)]
    for record in records:
        assert record.project == api.project and record.request_id  # type: ignore[attr-defined]
        assert record.duration_ms >= 0  # type: ignore[attr-defined]
        line = json.loads(logs.JsonFormatter().format(record))
        assert {"time", "level", "logger", "message", "request_id", "method", "route", "status", "duration_ms",
                "project"} <= set(line)
        assert api.key not in json.dumps(line) and api.key not in logs.ConsoleFormatter().format(record)


async def test_spans_follow_the_messaging_conventions(app_factory: Any, project: str) -> None:
    exporter = InMemorySpanExporter()
    (api,) = await app_factory(project, tracing=Tracing.with_exporter(exporter, batch=False))
    await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await api.post("/v1/queue/publish", {"queue": "jobs", "payload": 1}, headers={"traceparent": parent})
    await api.get("/v1/queue/stats/jobs")
    spans = {span.name: span for span in exporter.get_finished_spans()}
    publish = spans["POST /v1/queue/publish"]
    assert publish.kind.name == "SERVER"
    assert publish.attributes["messaging.system"] == "broker"
    assert publish.attributes["messaging.operation.type"] == "send"
    assert publish.attributes["http.response.status_code"] == 200
    assert format(publish.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"  # joined the caller's
    assert publish.parent is not None and format(publish.parent.span_id, "016x") == "00f067aa0ba902b7"
    stats = spans["GET /v1/queue/stats/{queue}"]
    assert stats.attributes["messaging.destination.name"] == "jobs"
