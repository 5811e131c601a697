"""GET /healthz (the process runs) and GET /readyz (the store answers); no auth."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker import errors
from broker.context import ctx_of
from broker.http import JSON
from broker.schemas import Health


async def healthz(request: Request) -> Response:
    return JSON(Health(status="ok"))


async def readyz(request: Request) -> Response:
    if not await ctx_of(request).store.ping():
        raise errors.Unavailable("the message store does not answer")
    return JSON(Health(status="ready"))


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
