"""The background jobs of one process as asyncio tasks: periodic maintenance and push delivery.
Used by ``broker serve`` (in-process) and by each ``broker worker`` process (push delivery; arq's cron
runs maintenance there)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from broker.jobs import tasks
from broker.jobs.maintenance import Maintenance
from broker.jobs.push import PushDispatcher
from broker.push.pool import ENDPOINT_CONNECTIONS
from broker.push.ssrf import AddressGuard, Resolver
from broker.push.webhooks import WebhookSender
from broker.settings import ConfigError, Settings
from broker.store.notify import Notifier
from broker.store.queues import Store
from broker.telemetry.tracing import Tracing

log = logging.getLogger("broker.workers")


def _seconds(extra: dict[str, Any], name: str, default: float) -> float:
    value = extra.get(name, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise ConfigError(f"{name}={seconds} is out of range (0..3600 s)")
    return seconds


def _count(extra: dict[str, Any], name: str, default: int, most: int) -> int:
    value = extra.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{name}={value!r} is not a whole number")
    try:
        count = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if not 1 <= count <= most:
        raise ConfigError(f"{name}={count} is out of range (1..{most})")
    return count


@dataclass(frozen=True)
class BackgroundOptions:
    """How the background jobs run. ``projects`` limits them to those projects (tests, or sharding
    tenants over worker pools); None means every project."""

    maintenance: bool = True
    push: bool = True
    maintenance_interval_s: float = 5.0
    push_refresh_s: float = 1.0
    push_poll_s: float = 2.0
    stop_grace_s: float = 5.0
    #: deliveries (and connections) to one endpoint at once, shared by its subscriptions (docs/push.md)
    push_per_endpoint: int = ENDPOINT_CONNECTIONS
    projects: tuple[str, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BackgroundOptions:
        """Defaults, overridden by ``settings.extra`` keys ``background_projects``,
        ``maintenance_interval_seconds``, ``push_refresh_seconds``, ``push_poll_seconds`` and
        ``push_endpoint_concurrency``."""
        extra = dict(settings.extra)
        projects = extra.get("background_projects")
        return cls(
            maintenance_interval_s=_seconds(extra, "maintenance_interval_seconds", cls.maintenance_interval_s),
            push_refresh_s=_seconds(extra, "push_refresh_seconds", cls.push_refresh_s),
            push_poll_s=_seconds(extra, "push_poll_seconds", cls.push_poll_s),
            push_per_endpoint=_count(extra, "push_endpoint_concurrency", cls.push_per_endpoint, 10_000),
            projects=tuple(projects) if projects is not None else None,
        )


class BackgroundRunner:
    """Runs the enabled jobs until :meth:`stop`."""

    def __init__(
        self,
        store: Store,
        *,
        options: BackgroundOptions | None = None,
        notifier: Notifier | None = None,
        allow_private: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver | None = None,
        tracing: Tracing | None = None,
    ):
        self.tracing = tracing
        self.store = store
        self.options = options or BackgroundOptions()
        self.notifier = notifier
        self.guard = AddressGuard(allow_private, resolver)
        self.ssl_context = ssl_context
        self.maintenance = Maintenance(store, self.options.projects)
        self.dispatcher: PushDispatcher | None = None
        self._maintenance_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.options.maintenance:
            self._maintenance_task = asyncio.create_task(self._maintenance_loop(), name="maintenance")
        if self.options.push:
            self.dispatcher = PushDispatcher(
                self.store,
                WebhookSender(self.guard, self.ssl_context, per_endpoint=self.options.push_per_endpoint),
                notifier=self.notifier,
                projects=self.options.projects,
                refresh_interval=self.options.push_refresh_s,
                poll_interval=self.options.push_poll_s,
                tracing=self.tracing,
                per_endpoint=self.options.push_per_endpoint,
            )
            self.dispatcher.start()

    async def _maintenance_loop(self) -> None:
        ctx = {"maintenance": self.maintenance}
        while True:
            try:
                await tasks.maintenance(ctx)
            except Exception as exc:
                log.warning("maintenance failed: %s", exc)
            await asyncio.sleep(self.options.maintenance_interval_s)

    async def stop(self) -> None:
        """Stop the jobs; push deliveries in flight get ``stop_grace_s`` to finish."""
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance_task
        if self.dispatcher is not None:
            await self.dispatcher.stop(self.options.stop_grace_s)
