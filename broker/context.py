"""The shared state of one API process, built by the app's lifespan and reached by handlers as
``request.state.ctx``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request

from broker.auth import KeyRing
from broker.http import decode, read_body
from broker.notify import Notifier
from broker.settings import Settings
from broker.store import Store

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    redis: Any
    store: Store
    keyring: KeyRing
    notifier: Notifier

    async def project(self, request: Request) -> str:
        """Authenticate the request; its project."""
        return await self.keyring.project_for(request.headers.get("authorization"))

    async def body(self, request: Request, type_: type[T], limit: int | None = None) -> T:
        return decode(await read_body(request, limit or self.settings.max_body_bytes), type_)


def ctx_of(request: Request) -> Context:
    ctx: Context = request.state.ctx
    return ctx
