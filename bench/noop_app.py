"""The ceiling of the server stack: the same uvicorn and Starlette as the API, one route that reads the
request body and returns a small constant JSON (the size of a publish answer). Served with the same
uvicorn flags, worker count and wrk connection count as the API, so ``publish / no-op`` is the share
of the stack's capacity that the publish path keeps."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"message_id":"0190000000000000001"}'


async def noop(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


def create() -> Starlette:
    """Factory for ``uvicorn --factory bench.noop_app:create``."""
    return Starlette(routes=[Route("/v1/queue/publish", noop, methods=["GET", "POST"])])
