"""The OpenAPI facts of a route, declared beside it: :class:`Operation` says what a route takes, returns and
can fail with, and :class:`ApiRoute` is the Starlette route that carries it. The route modules build their
routes from these records; ``broker.http.openapi`` builds the document from the same route table, so a
route cannot exist without its description.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import KW_ONLY, dataclass
from typing import Annotated, Any, Literal

from msgspec import Meta
from starlette.routing import Route

from broker import errors
from broker.schemas import QueueName


@dataclass(frozen=True)
class Param:
    """A path or query parameter; its schema is derived from ``type`` (a type msgspec understands)."""

    name: str
    type: Any
    description: str
    where: Literal["path", "query"] = "query"
    default: Any = None
    #: What a bad value of it is answered with.
    errors: tuple[type[errors.BrokerError], ...] = ()


#: ``{queue}`` in a path.
QUEUE_PARAM = Param("queue", QueueName, "The queue's name.", where="path", errors=(errors.ValidationError,))


def page_query(default: int = 100, maximum: int = 1000) -> tuple[Param, ...]:
    """``?cursor&limit`` of a list route, as ``broker.http.cursors.page_params`` reads them."""
    return (
        Param("cursor", str, "The `next_cursor` of the previous page (opaque); omit it for the first page.",
              errors=(errors.ValidationError,)),
        Param("limit", Annotated[int, Meta(ge=1, le=maximum)], "The most items to return.", default=default,
              errors=(errors.ValidationError,)),
    )


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: what a 200 answer of this operation (or its request) gives another operation, as
    runtime expressions (``$response.body#/queue``); clients and stateful fuzzers follow them."""

    operation_id: str
    description: str
    parameters: tuple[tuple[str, str], ...] = ()
    request_body: tuple[tuple[str, Any], ...] = ()


def queue_links(source: str, *operation_ids: str, in_body: bool = False) -> tuple[Link, ...]:
    """Links that hand the queue named at ``source`` (a runtime expression) on to each of ``operation_ids``:
    as the ``{queue}`` path parameter, or (``in_body``) as the body's ``queue``."""
    if in_body:
        return tuple(Link(op, "The same queue.", request_body=(("queue", source),)) for op in operation_ids)
    return tuple(Link(op, "The same queue.", parameters=(("queue", source),)) for op in operation_ids)


@dataclass(frozen=True)
class Operation:
    """What one method of one path does, for the OpenAPI document.

    ``request`` is the Struct the handler decodes the JSON body into; ``response`` is the Struct of its 200
    answer (``None`` for a body that is not one of ours: see ``content_types``). ``errors`` are the errors
    particular to the operation; the generator adds those every route of its kind can return: 401, 429 and
    503 when ``auth``; 400 and 413 when it reads a body; its parameters' errors, and 404 for a path
    parameter that matches no route; 500 always."""

    operation_id: str
    summary: str
    _: KW_ONLY
    response: type[Any] | None
    tag: str = ""  # extensions are all under the tag "extensions"
    request: type[Any] | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[type[errors.BrokerError], ...] = ()
    auth: bool = True
    extension: bool = False
    description: str | None = None
    links: tuple[Link, ...] = ()
    content_types: tuple[str, ...] = ("application/json",)


class ApiRoute(Route):
    """A Starlette route with one method and its :class:`Operation`."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, methods: Collection[str], operation: Operation
    ) -> None:
        if len(methods) != 1:
            raise ValueError(f"{path}: an ApiRoute has one method (one Operation), got {sorted(methods)}")
        super().__init__(path, endpoint, methods=methods)
        self.method = next(iter(methods)).upper()
        self.operation = operation
