"""The admin API under /v1/admin (docs/admin.md): projects, their keys, credit, limits and usage.

Every route needs ``Authorization: Bearer <BROKER_ADMIN_KEY>``; a project key, any other value, or a server
without an admin key configured is answered 401 ``UNAUTHORIZED``. Admin calls are not charged to any project.
"""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType
from starlette.requests import Request
from starlette.responses import Response

from broker import errors
from broker.http.context import Context, authorization_of, ctx_of
from broker.http.cursors import decode_cursor, encode_cursor, page_params
from broker.http.edge import JSON, decode, read_body
from broker.http.operation import ApiRoute, Operation, Param, page_query
from broker.settings import PROJECT_RE
from broker.store.accounts import Account, Accounts, UsageRow, day_of, day_text, parse_day
from broker.store.apikeys import (
    ProjectKey,
    create_project_key,
    delete_project_key,
    project_keys,
    rotate_project_key,
    shown,
)

ProjectName = Annotated[str, Meta(pattern=PROJECT_RE.pattern, min_length=1, max_length=64)]
MAX_OVERLAP_SECONDS = 30 * 86400


class LimitsPatch(msgspec.Struct, kw_only=True):
    """Limits to change: a value sets it, null removes it, an absent field stays as it is."""

    max_queues: int | UnsetType | None = UNSET
    max_messages: int | UnsetType | None = UNSET
    max_payload_bytes: int | UnsetType | None = UNSET
    requests_per_second: float | UnsetType | None = UNSET
    burst: int | UnsetType | None = UNSET


class CreateProjectRequest(msgspec.Struct, kw_only=True):
    project: ProjectName
    limits: LimitsPatch | None = None


class UpdateProjectRequest(msgspec.Struct, kw_only=True):
    """PATCH of a project: only the fields given change."""

    limits: LimitsPatch | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET
    prices: dict[str, int | None] | UnsetType = UNSET  # capability -> price per call (per message: publish_batch)
    usage_retention_days: int | UnsetType = UNSET
    credit: int | UnsetType | None = UNSET  # null: unlimited; a number: the balance is set to it


class CreditRequest(msgspec.Struct, kw_only=True):
    amount: int


class RotateKeyRequest(msgspec.Struct, kw_only=True):
    overlap_seconds: Annotated[int, Meta(ge=0, le=MAX_OVERLAP_SECONDS)] = 3600


class ProjectList(msgspec.Struct, kw_only=True):
    items: list[Account]
    next_cursor: str | None = None


class KeyList(msgspec.Struct, kw_only=True):
    items: list[ProjectKey]


class KeyDeleted(msgspec.Struct, kw_only=True):
    key_id: str
    deleted: bool


class Credit(msgspec.Struct, kw_only=True):
    project: str
    credit: int


class Usage(msgspec.Struct, kw_only=True):
    project: str
    from_: str = msgspec.field(name="from")
    to: str
    items: list[UsageRow]


def _given(patch: msgspec.Struct) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not UNSET}


def admit_admin(request: Request) -> Context:
    """The context of an admin request, or 401: the header must be exactly ``Bearer <BROKER_ADMIN_KEY>``."""
    ctx = ctx_of(request)
    admin_key = ctx.settings.admin_key
    given = authorization_of(request.scope["headers"]) or ""
    if admin_key is None:
        raise errors.Unauthorized("the admin API is closed: the server has no BROKER_ADMIN_KEY")
    if not hmac.compare_digest(given.encode(), f"Bearer {admin_key}".encode()):
        raise errors.Unauthorized("the admin API needs Authorization: Bearer <BROKER_ADMIN_KEY>")
    return ctx


def accounts_of(ctx: Context) -> Accounts:
    return Accounts(ctx.redis, ctx.store.scripts)


def path_project(request: Request) -> str:
    project = str(request.path_params["project"])
    if not PROJECT_RE.match(project) or len(project) > 64:
        raise errors.ValidationError(f"project must match {PROJECT_RE.pattern}", field="project")
    return project


async def _body(ctx: Context, request: Request, type_: type[Any]) -> Any:
    return decode(await read_body(request, ctx.settings.max_body_bytes, ctx.body_deadline), type_)


async def create_project(request: Request) -> Response:
    ctx = admit_admin(request)
    req = await _body(ctx, request, CreateProjectRequest)
    limits = None if req.limits is None else _given(req.limits)
    return JSON(await accounts_of(ctx).create(req.project, limits, ctx.store.clock()))


async def list_projects(request: Request) -> Response:
    ctx = admit_admin(request)
    accounts = accounts_of(ctx)
    cursor, limit = page_params(request)
    after = None if cursor is None else decode_cursor(cursor)
    if after is not None and not PROJECT_RE.fullmatch(after):
        raise errors.ValidationError("invalid cursor", field="cursor")
    names, more = await accounts.projects(after, limit)
    items = []
    for project in names:
        try:
            items.append(await accounts.get(project))
        except errors.NotFound:  # in the registry, its account not written (a crash in between)
            continue
    return JSON(ProjectList(items=items, next_cursor=encode_cursor(names[-1]) if more else None))


async def get_project(request: Request) -> Response:
    ctx = admit_admin(request)
    return JSON(await accounts_of(ctx).get(path_project(request)))


async def update_project(request: Request) -> Response:
    ctx = admit_admin(request)
    project = path_project(request)
    req = await _body(ctx, request, UpdateProjectRequest)
    changes = _given(req)
    if "limits" in changes:
        changes["limits"] = _given(changes["limits"])
    return JSON(await accounts_of(ctx).update(project, changes, ctx.store.clock()))


async def add_credit(request: Request) -> Response:
    ctx = admit_admin(request)
    project = path_project(request)
    req = await _body(ctx, request, CreditRequest)
    return JSON(Credit(project=project, credit=await accounts_of(ctx).add_credit(project, req.amount)))


async def usage(request: Request) -> Response:
    ctx = admit_admin(request)
    project = path_project(request)
    await accounts_of(ctx).get(project)
    return JSON(await read_usage(ctx, request, project))


async def read_usage(ctx: Context, request: Request, project: str) -> Usage:
    """Usage of ``?from&to`` (YYYY-MM-DD, UTC, inclusive; default: today) for the admin and account routes."""
    today = day_of(ctx.store.clock())
    query = request.query_params
    to_day = parse_day(query["to"], "to") if "to" in query else today
    from_day = parse_day(query["from"], "from") if "from" in query else min(today, to_day)
    rows = await accounts_of(ctx).usage(project, from_day, to_day)
    return Usage(project=project, from_=day_text(from_day), to=day_text(to_day), items=rows)


async def create_key(request: Request) -> Response:
    ctx = admit_admin(request)
    project = path_project(request)
    await accounts_of(ctx).get(project)
    return JSON(await create_project_key(ctx.redis, project))


async def list_keys(request: Request) -> Response:
    ctx = admit_admin(request)
    project = path_project(request)
    await accounts_of(ctx).get(project)
    now = time.time()
    stored = await project_keys(ctx.redis, project)
    items = [shown(h, r) for h, r in stored if r.expires_at is None or r.expires_at > now]
    return JSON(KeyList(items=items))


async def delete_key(request: Request) -> Response:
    ctx = admit_admin(request)
    project = path_project(request)
    key_id = str(request.path_params["key_id"])
    await delete_project_key(ctx.redis, project, key_id)
    return JSON(KeyDeleted(key_id=key_id, deleted=True))


async def rotate_key(request: Request) -> Response:
    ctx = admit_admin(request)
    project = path_project(request)
    req = await _body(ctx, request, RotateKeyRequest)
    return JSON(await rotate_project_key(ctx.redis, project, str(request.path_params["key_id"]), req.overlap_seconds))


PROJECT_PARAM = Param("project", ProjectName, "The project's name.", where="path", errors=(errors.ValidationError,))
KEY_PARAM = Param("key_id", str, "The key's id (as listed).", where="path")
DAY_QUERY = (
    Param("from", str, "First day, YYYY-MM-DD (UTC); default: today (or `to`).", errors=(errors.ValidationError,)),
    Param("to", str, "Last day, YYYY-MM-DD (UTC), inclusive; default: today.", errors=(errors.ValidationError,)),
)
_ADMIN = "Needs `Authorization: Bearer <BROKER_ADMIN_KEY>` (401 otherwise). See docs/admin.md."
P = "/v1/admin/projects"


def _op(operation_id: str, summary: str, response: Any, **kw: Any) -> Operation:
    errs = (errors.Unauthorized, *kw.pop("errors", ()))
    return Operation(operation_id, summary, tag="admin", response=response, auth=False, errors=errs,
                     description=_ADMIN, **kw)


_404 = (errors.NotFound,)
routes = [
    ApiRoute(P, create_project, methods=["POST"], operation=_op(
        "admin.projects.create", "Create a project (with limits)", Account, request=CreateProjectRequest,
        errors=(errors.Conflict,))),
    ApiRoute(P, list_projects, methods=["GET"], operation=_op(
        "admin.projects.list", "List projects, by name, a page at a time", ProjectList, params=page_query())),
    ApiRoute(P + "/{project}", get_project, methods=["GET"], operation=_op(
        "admin.projects.get", "A project's credit, limits and prices", Account, params=(PROJECT_PARAM,),
        errors=_404)),
    ApiRoute(P + "/{project}", update_project, methods=["PATCH"], operation=_op(
        "admin.projects.update", "Change limits, prices, credit, disabled", Account, params=(PROJECT_PARAM,),
        request=UpdateProjectRequest, errors=_404)),
    ApiRoute(P + "/{project}/credit", add_credit, methods=["POST"], operation=_op(
        "admin.projects.credit", "Add credit (negative to correct)", Credit, params=(PROJECT_PARAM,),
        request=CreditRequest, errors=_404)),
    ApiRoute(P + "/{project}/usage", usage, methods=["GET"], operation=_op(
        "admin.projects.usage", "Usage per day and capability", Usage, params=(PROJECT_PARAM, *DAY_QUERY),
        errors=_404)),
    ApiRoute(P + "/{project}/keys", create_key, methods=["POST"], operation=_op(
        "admin.keys.create", "Create a key (shown once)", ProjectKey, params=(PROJECT_PARAM,), errors=_404)),
    ApiRoute(P + "/{project}/keys", list_keys, methods=["GET"], operation=_op(
        "admin.keys.list", "List a project's keys", KeyList, params=(PROJECT_PARAM,), errors=_404)),
    ApiRoute(P + "/{project}/keys/{key_id}", delete_key, methods=["DELETE"], operation=_op(
        "admin.keys.delete", "Revoke a key at once", KeyDeleted, params=(PROJECT_PARAM, KEY_PARAM), errors=_404)),
    ApiRoute(P + "/{project}/keys/{key_id}/rotate", rotate_key, methods=["POST"], operation=_op(
        "admin.keys.rotate", "Replace a key; the old one stays valid for overlap_seconds", ProjectKey,
        params=(PROJECT_PARAM, KEY_PARAM), request=RotateKeyRequest, errors=_404)),
]
