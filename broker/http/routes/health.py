"""GET /healthz (the process runs) and GET /readyz (the store answers); no auth."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from broker import errors
from broker.http.context import ctx_of
from broker.http.edge import JSON
from broker.http.operation import ApiRoute, Operation
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
    ApiRoute("/healthz", healthz, methods=["GET"], operation=Operation(
        "healthz", "200 while the process runs", tag="health", response=Health, auth=False,
    )),
    ApiRoute("/readyz", readyz, methods=["GET"], operation=Operation(
        "readyz", "200 when the store answers (and is the store this process knows)", tag="health",
        response=Health, auth=False, errors=(errors.Unavailable,),
    )),
]
