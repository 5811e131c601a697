"""Running the background jobs inside an API process (``broker serve`` without ``--no-workers``):
the same job functions as the arq workers, as asyncio tasks of the server's event loop."""

from __future__ import annotations

from broker.context import Context
from workers.runner import BackgroundOptions, BackgroundRunner


async def start_background(ctx: Context) -> BackgroundRunner:
    """Start maintenance and push delivery; the caller awaits ``stop()`` on shutdown."""
    runner = BackgroundRunner(
        ctx.store,
        options=BackgroundOptions.from_settings(ctx.settings),
        notifier=ctx.notifier,
        allow_private=ctx.settings.push_allow_private,
    )
    await runner.start()
    return runner
