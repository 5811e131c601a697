"""GET /healthz (the process runs) and GET /readyz (the store answers); no auth."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker import errors
from broker.http.context import ctx_of
from broker.http.edge import JSON
from broker.schemas import Health


async def healthz(request: Request) -> Response:
    return JSON(Health(status="ok"))


async def readyz(request: Request) -> Response:
    """Ready when the store answers and is the store this process knows (broker/store/instance.py): a store
    that came back without its data is 503 with a message saying so."""
    ctx = ctx_of(request)
    if ctx.guard is not None:
        await ctx.guard.ready()
    elif not await ctx.store.ping():
        raise errors.Unavailable("the message store does not answer")
    return JSON(Health(status="ready"))


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
