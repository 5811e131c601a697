"""Running the background jobs inside an API process (``broker serve`` without ``--no-workers``):
the same job functions as the arq workers, as asyncio tasks of the server's event loop."""

from __future__ import annotations

from broker.jobs.runner import BackgroundOptions, BackgroundRunner
from broker.services import Services


async def start_background(services: Services) -> BackgroundRunner:
    """Start maintenance and push delivery; the caller awaits ``stop()`` on shutdown."""
    runner = BackgroundRunner(
        services.store,
        options=BackgroundOptions.from_settings(services.settings),
        notifier=services.notifier,
        allow_private=services.settings.push_allow_private,
        tracing=services.tracing,
    )
    await runner.start()
    return runner
