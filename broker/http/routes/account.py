"""GET /v1/account: a project's own credit, limits and usage (extension; docs/admin.md). Free of charge."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from broker import errors
from broker.http.context import ctx_of
from broker.http.edge import JSON
from broker.http.operation import ApiRoute, Operation
from broker.http.routes.admin import DAY_QUERY, Usage, accounts_of, read_usage
from broker.store.accounts import Limits


class AccountView(msgspec.Struct, kw_only=True):
    """``credit`` is null when unlimited; ``usage`` covers ``?from&to`` (default: today, UTC)."""

    project: str
    credit: int | None
    limits: Limits
    prices: dict[str, int]
    usage: Usage


async def account(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    try:
        found = await accounts_of(ctx).get(project)
        credit, limits, prices = found.credit, found.limits, found.prices
    except errors.NotFound:  # a project the admin API never configured: unlimited
        credit, limits, prices = None, Limits(), {}
    return JSON(AccountView(project=project, credit=credit, limits=limits, prices=prices,
                            usage=await read_usage(ctx, request, project)))


routes = [
    ApiRoute("/v1/account", account, methods=["GET"], operation=Operation(
        "account", "The project's credit, limits and usage", tag="account",
        response=AccountView, params=DAY_QUERY,
        description="Free of charge (not debited from the credit). `credit` is null when the project is unlimited.",
    )),
]
