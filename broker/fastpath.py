"""Body routes (the message POSTs) and the lean path that serves them.

A body route is ``handler(ctx, project, body) -> Struct``. It is registered as an ordinary Starlette
route (so routing, 405s and the route list stay in one place), and :class:`FastPath` serves the same
handlers for an exact ``POST`` path match straight from ASGI, skipping the Request object, the router's
regex scan and the middleware stack: the hot routes do less Python per request. Both paths admit the
request the same way, read the body under the same limit, and render errors with the one error handler.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from broker import errors
from broker.http import JSON, assign_request_id, error_response, read_limited

log = logging.getLogger("broker.http")
Handler = Callable[[Any, str, bytes], Awaitable[msgspec.Struct]]
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class BodyRoute:
    path: str
    handler: Handler
    limit: int | None = None  # None: the settings' max_body_bytes

    def starlette_route(self) -> Route:
        handler, limit = self.handler, self.limit

        async def endpoint(request: Request) -> Response:
            ctx = request.state.ctx
            project = await ctx.project(request)
            body = await read_limited(
                request.stream(), request.headers.get("content-length"), limit or ctx.settings.max_body_bytes
            )
            return JSON(await handler(ctx, project, body))

        endpoint.__name__ = handler.__name__
        return Route(self.path, endpoint, methods=["POST"])


class FastPath:
    """ASGI wrapper: ``POST`` to a body route's exact path is served here, everything else by ``app``."""

    def __init__(self, app: ASGIApp, routes: list[BodyRoute]):
        self.app = app
        self.routes = {route.path: route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        rid = assign_request_id(scope)
        try:
            ctx = scope["state"]["ctx"]
            authorization = length = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                elif name == b"content-length":
                    length = value.decode("latin-1")
            project = await ctx.admit(authorization)
            body = await read_limited(_chunks(receive), length, route.limit or ctx.settings.max_body_bytes)
            content = _encode(await route.handler(ctx, project, body))
        except errors.BrokerError as exc:
            if exc.status >= 500:
                log.warning("request %s: %s %s", rid, exc.code, exc.message)
            await error_response(exc, rid)(scope, receive, send)
            return
        except Exception:
            log.exception("request %s failed", rid)
            await error_response(errors.InternalError(), rid)(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"x-request-id", rid.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.ValidationError("the client went away before sending the whole body")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
