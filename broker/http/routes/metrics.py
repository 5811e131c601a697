"""GET /metrics: Prometheus metrics in the text exposition format (broker/telemetry/metrics.py). Open when
BROKER_METRICS_TOKEN is unset; otherwise it needs ``Authorization: Bearer <that token>`` (project keys are
not accepted: the metrics show every project's queues)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from broker import errors
from broker.http.context import authorization_of, ctx_of
from broker.http.operation import ApiRoute, Operation
from broker.store.accounts import Account, Accounts, UsageRow, day_of
from broker.store.queues import QueueMetrics, Store
from broker.telemetry.metrics import CONTENT_TYPE, exposition, render_projects, render_store


async def store_metrics(store: Store) -> tuple[list[QueueMetrics], bool]:
    """Every queue's metrics, and whether the store answered (a scrape still answers while it is away)."""
    try:
        found: list[QueueMetrics] = []
        for project in await store.projects():
            found += await store.queue_metrics(project)
    except errors.BrokerError:
        return [], False
    return found, True


async def project_metrics(store: Store) -> list[tuple[Account, list[UsageRow]]]:
    """The account and today's usage of every project with an account (none while the store is away)."""
    accounts = Accounts(store.redis, store.scripts)
    today = day_of(store.clock())
    found = []
    try:
        for project in (await accounts.projects())[0]:
            try:
                account = await accounts.get(project)
            except errors.NotFound:  # in the registry, its account not written (a crash in between)
                continue
            found.append((account, await accounts.usage(project, today, today)))
    except errors.BrokerError:
        return []
    return found


async def metrics(request: Request) -> Response:
    ctx = ctx_of(request)
    token = ctx.settings.metrics_token
    if token is not None:
        given = authorization_of(request.scope["headers"]) or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise errors.Unauthorized("GET /metrics needs Authorization: Bearer <BROKER_METRICS_TOKEN>")
    queues, up = await store_metrics(ctx.store)
    text = render_store(queues, up, ctx.store.clock()) + render_projects(await project_metrics(ctx.store))
    return Response(exposition(text), media_type=CONTENT_TYPE)


routes = [
    ApiRoute("/metrics", metrics, methods=["GET"], operation=Operation(
        "metrics", "Prometheus metrics (text exposition format)", tag="observability", response=None,
        auth=False, errors=(errors.Unauthorized,), content_types=("text/plain",),
        description="Open unless BROKER_METRICS_TOKEN is set; then `Authorization: Bearer <token>` is required "
                    "(401 otherwise). Metric names and labels: docs/observability.md.",
    )),
]
