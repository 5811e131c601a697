"""Body routes (the message POSTs) and the lean path that serves them.

A body route is ``handler(ctx, project, body) -> Struct``. It is registered as an ordinary Starlette
route (so routing, 405s and the route list stay in one place), and :class:`FastPath` serves the same
handlers for an exact ``POST`` path match straight from ASGI, before Starlette's middleware stack
(``broker.http.app.BrokerApp``), skipping the Request object, the router's regex scan and the middleware: the
hot routes do less Python per request. Both paths admit the request the same way, read the body under
the same limit, bound the handler's answer the same way (:mod:`broker.http.bound`), set the same
``X-Request-Id``, and render errors with the one error handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from broker.http.bound import within_bound
from broker.http.context import repeated_authorization
from broker.http.edge import JSON, contract_error, error_response, read_body, receive_limited, take_request_id
from broker.http.observe import finished, started
from broker.http.operation import ApiRoute, Operation

log = logging.getLogger("broker.http.edge")
Handler = Callable[[Any, str, bytes], Awaitable[msgspec.Struct]]
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class BodyRoute:
    path: str
    handler: Handler
    limit: int | None = None  # None: the settings' max_body_bytes
    operation: Operation | None = None  # its OpenAPI facts (broker/http/operation.py)

    def starlette_route(self) -> Route:
        handler, limit = self.handler, self.limit

        async def endpoint(request: Request) -> Response:
            ctx = request.state.ctx
            project = await ctx.project(request)
            body = await read_body(request, limit or ctx.settings.max_body_bytes, ctx.body_deadline)
            return JSON(await within_bound(handler(ctx, project, body), describe=ctx.store_state))

        endpoint.__name__ = handler.__name__
        if self.operation is not None:
            return ApiRoute(self.path, endpoint, methods=["POST"], operation=self.operation)
        return Route(self.path, endpoint, methods=["POST"])


class FastPath:
    """Serves ``POST`` to a body route's exact path; ``match`` tells which requests it takes."""

    def __init__(self, routes: list[BodyRoute]):
        self.routes = {route.path: route for route in routes}

    def match(self, scope: Scope) -> BodyRoute | None:
        if scope["type"] == "http" and scope["method"] == "POST":
            return self.routes.get(scope["path"])
        return None

    async def serve(self, route: BodyRoute, scope: Scope, receive: Receive, send: Send) -> None:
        start = started()
        ctx = scope["state"]["ctx"]
        project: str | None = None
        authorization = length = incoming_id = None
        repeated = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                repeated = authorization is not None
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"x-request-id" and incoming_id is None:
                incoming_id = value
        rid = take_request_id(scope, incoming_id)
        try:
            if repeated:
                raise repeated_authorization()  # the one rule of both paths (broker.http.context)
            project = await ctx.admit(authorization)
            limit = route.limit or ctx.settings.max_body_bytes
            body = await ctx.body_deadline.within(receive_limited(receive, length, limit))
            content = _encode(await within_bound(route.handler(ctx, project, body), describe=ctx.store_state))
        except Exception as exc:
            error = contract_error(exc, rid)
            await error_response(error, rid)(scope, receive, send)
            finished(scope, rid, route.path, error.status, start, project, ctx.tracing)
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
        finished(scope, rid, route.path, 200, start, project, ctx.tracing)

