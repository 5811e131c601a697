"""The OpenAPI 3.1 document of the app, generated from its route table and never written by hand.

Every route of the table is an :class:`~broker.http.operation.ApiRoute` carrying its
:class:`~broker.http.operation.Operation`; the schemas come from the msgspec Structs that validate the
requests and shape the responses (``msgspec.json.schema_components``), the error statuses from the error
classes each operation declares plus those every route of its kind can return. ``create_app`` builds the
document once per process and ``GET /openapi.json`` serves those bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from starlette.routing import BaseRoute

import broker
from broker import errors
from broker.http.operation import QUEUE_PARAM, ApiRoute, Operation, Param
from broker.schemas import ErrorResponse

OPENAPI_VERSION = "3.1.0"
EXTENSIONS_TAG = "extensions"
#: Every tag, in the order the reference shows them.
TAGS = {
    "queues": "Create, configure, inspect and delete queues.",
    "messages": "Publish, consume, acknowledge and reject messages.",
    "dead letters": "List and redrive the dead letters of a queue.",
    "push": "Deliver a queue's messages to a webhook.",
    EXTENSIONS_TAG: "Routes this server adds to the hosted queue API (`x-extension: true`).",
    "health": "Liveness and readiness, without a key.",
    "documentation": "This document and the interactive reference, without a key.",
    "observability": "Prometheus metrics, with the metrics token when one is configured (not a project key).",
    "account": "A project's own credit, limits and usage (free of charge).",
    "admin": "Projects, keys, credit, limits and usage, with the admin key (BROKER_ADMIN_KEY, not a project key).",
}
#: The path parameters that mean the same on every route.
PATH_PARAMS = {QUEUE_PARAM.name: QUEUE_PARAM}
AUTH_ERRORS = (errors.Unauthorized, errors.RateLimited, errors.Unavailable)
BODY_ERRORS = (errors.ValidationError, errors.PayloadTooLarge)
#: Methods whose request body has a meaning in HTTP; other methods' optional body is described in words.
BODY_METHODS = {"POST", "PUT", "PATCH"}
RETRY_AFTER_STATUSES = {429, 503}
_PATH_PARAM_RE = re.compile(r"\{(\w+)(?::\w+)?\}")
_REF = "#/components/schemas/{name}"

DESCRIPTION = """\
A self-hosted message queue that speaks the hosted queue API: a client written for the hosted API works \
against this server by changing only the base URL and the key.

Every route under `/v1/queue` needs `Authorization: Bearer <key>`. Request and response bodies are JSON; \
unknown fields in a request are ignored. Every response carries `X-Request-Id`, and an error's body repeats \
it: `{"error": {"code", "message", "request_id", "field"?}}`. Operations marked `x-extension: true` (tag \
`extensions`) are not part of the hosted API.
"""


def _path_params(route: ApiRoute) -> list[Param]:
    declared = {p.name: p for p in route.operation.params if p.where == "path"}
    found = []
    for name in _PATH_PARAM_RE.findall(route.path):
        param = declared.get(name) or PATH_PARAMS.get(name)
        if param is None:
            raise ValueError(f"{route.method} {route.path}: path parameter {{{name}}} is not declared")
        found.append(param)
    return found


def _parameter(param: Param) -> dict[str, Any]:
    schema = msgspec.json.schema(param.type)
    if "$defs" in schema:
        raise ValueError(f"parameter {param.name}: only plain types can be parameters")
    if param.default is not None:
        schema["default"] = param.default
    return {
        "name": param.name,
        "in": param.where,
        "required": param.where == "path",
        "description": param.description,
        "schema": schema,
    }


def _documents_body(route: ApiRoute) -> bool:
    return route.operation.request is not None and route.method in BODY_METHODS


def _has_required_field(struct: type[Any]) -> bool:
    return any(f.required for f in msgspec.structs.fields(struct))


def _error_classes(route: ApiRoute, path_params: list[Param], query: list[Param]) -> list[type[errors.BrokerError]]:
    op = route.operation
    found: list[type[errors.BrokerError]] = [*op.errors]
    if op.auth:
        found += AUTH_ERRORS
    if op.request is not None:
        found += BODY_ERRORS
    for param in [*path_params, *query]:
        found += param.errors
    if path_params:
        found.append(errors.NotFound)  # a path parameter that is empty or holds a "/" matches no route
    found.append(errors.InternalError)
    return found


def _error_responses(
    classes: Iterable[type[errors.BrokerError]], shared: dict[str, Any]
) -> dict[str, Any]:
    """The error answers of an operation by status, each a reference to a response in ``shared``
    (``components.responses``, one per set of codes, so that operations with the same errors share one)."""
    by_status: dict[int, dict[str, type[errors.BrokerError]]] = {}
    for cls in classes:
        by_status.setdefault(cls.status, {}).setdefault(cls.code, cls)
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        codes = dict(sorted(by_status[status].items()))
        name = "-".join([str(status), *codes])
        if name not in shared:
            shared[name] = _error_response(status, codes)
        responses[str(status)] = {"$ref": f"#/components/responses/{name}"}
    return responses


def _error_response(status: int, codes: dict[str, type[errors.BrokerError]]) -> dict[str, Any]:
    examples = {
        code: {"summary": _message(cls), "value": {"error": {
            "code": code, "message": _message(cls), "request_id": "4f0c2a9e1b7d4c3a8e5f6a7b8c9d0e1f"}}}
        for code, cls in codes.items()
    }
    schema = {
        "allOf": [
            {"$ref": _REF.format(name=ErrorResponse.__name__)},
            {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"enum": list(codes)}}}}},
        ]
    }
    headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if status in RETRY_AFTER_STATUSES:
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return {
        "description": " ".join(f"`{code}`: {_message(cls)}" for code, cls in codes.items()),
        "headers": headers,
        "content": {"application/json": {"schema": schema, "examples": examples}},
    }


def _message(cls: type[errors.BrokerError]) -> str:
    return (cls.__doc__ or cls.code).strip().splitlines()[0]


def _success(op: Operation, refs: dict[type[Any], dict[str, Any]]) -> dict[str, Any]:
    content = {}
    for media_type in op.content_types:
        if op.response is not None:
            schema = refs[op.response]
        elif media_type == "application/json":
            schema = {"type": "object"}
        else:
            schema = {"type": "string"}
        content[media_type] = {"schema": schema}
    success: dict[str, Any] = {
        "description": "OK",
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
        "content": content,
    }
    if op.links:
        success["links"] = {}
        for link in op.links:
            doc: dict[str, Any] = {"operationId": link.operation_id, "description": link.description}
            if link.parameters:
                doc["parameters"] = dict(link.parameters)
            if link.request_body:
                doc["requestBody"] = dict(link.request_body)
            success["links"][link.operation_id.replace(".", "_")] = doc
    return success


def _operation(route: ApiRoute, refs: dict[type[Any], dict[str, Any]], shared: dict[str, Any]) -> dict[str, Any]:
    op = route.operation
    path_params = _path_params(route)
    query = [p for p in op.params if p.where == "query"]
    tag = EXTENSIONS_TAG if op.extension else op.tag
    if tag not in TAGS:
        raise ValueError(f"{route.method} {route.path}: unknown tag {tag!r} (add it to TAGS)")
    description = op.description or ""
    if op.request is not None and not _documents_body(route):
        note = f"An optional JSON body may repeat `queue` (it must equal the path's); it is a {op.request.__name__}."
        description = f"{description}\n\n{note}".strip()
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [tag],
    }
    if description:
        doc["description"] = description
    if path_params or query:
        doc["parameters"] = [_parameter(p) for p in [*path_params, *query]]
    if op.request is not None and _documents_body(route):
        _check_struct(op.request)
        doc["requestBody"] = {
            "required": _has_required_field(op.request),
            "content": {"application/json": {"schema": refs[op.request]}},
        }
    failures = _error_responses(_error_classes(route, path_params, query), shared)
    doc["responses"] = {"200": _success(op, refs), **failures}
    doc["security"] = [{"bearer": []}] if op.auth else []
    if op.extension:
        doc["x-extension"] = True
    return doc


def _check_struct(value: Any) -> None:
    if not (isinstance(value, type) and issubclass(value, msgspec.Struct)):
        raise TypeError(f"{value!r} is not a msgspec Struct")


def api_routes(routes: Sequence[BaseRoute]) -> list[ApiRoute]:
    """The routes of the table, each of which must carry its Operation."""
    found = []
    for route in routes:
        if not isinstance(route, ApiRoute):
            raise TypeError(f"route {getattr(route, 'path', route)!r} has no OpenAPI facts (make it an ApiRoute)")
        found.append(route)
    return found


def build_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` (the app's route table) as a dict."""
    table = api_routes(routes)
    types: list[type[Any]] = [ErrorResponse]
    for route in table:
        op = route.operation
        for struct in (op.response, op.request if _documents_body(route) else None):
            if struct is not None and struct not in types:
                _check_struct(struct)
                types.append(struct)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    refs = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    shared: dict[str, Any] = {}
    for route in table:
        if route.operation.operation_id in operation_ids:
            raise ValueError(f"operationId {route.operation.operation_id!r} is used twice")
        operation_ids.add(route.operation.operation_id)
        methods = paths.setdefault(route.path, {})
        if route.method.lower() in methods:
            raise ValueError(f"{route.method} {route.path} is declared twice")
        methods[route.method.lower()] = _operation(route, refs, shared)
    for route in table:
        for link in route.operation.links:
            if link.operation_id not in operation_ids:
                raise ValueError(f"{route.method} {route.path}: link to unknown operation {link.operation_id!r}")
    used_tags = {op["tags"][0] for methods in paths.values() for op in methods.values()}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "broker",
            "version": broker.__version__,
            "summary": "A self-hosted message queue over HTTP: leases, retries, dead letters, FIFO, priority, push.",
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items() if name in used_tags],
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": dict(sorted(shared.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A project's API key: from BROKER_API_KEYS, or made by `broker keys create`.",
                }
            },
            "headers": {
                "X-Request-Id": {
                    "description": "The request's id: a sane incoming X-Request-Id, else a new one.",
                    "schema": {"type": "string"},
                },
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0},
                },
            },
        },
    }


def document_bytes(routes: Sequence[BaseRoute]) -> bytes:
    """The document of ``routes`` as the JSON that ``GET /openapi.json`` serves."""
    return msgspec.json.encode(build_document(routes))
