"""``broker worker``: the background jobs alone, on the configured store or a running serve's."""

from __future__ import annotations

import argparse
import inspect
import os
from typing import Any

from broker.cli.common import ENVIRONMENT_HELP, CliError, check_external, check_scripts, graceful, run, settings_from
from broker.embedded.supervisor import owner_url
from broker.jobs.arq_worker import run_worker


def cmd_worker(args: argparse.Namespace) -> int:
    """``broker worker``: the background jobs alone, on the configured store or a running serve's."""
    settings = settings_from(args, workers=args.workers)
    check_scripts()
    status = 0
    with graceful():
        if settings.redis_url:
            check_external(settings)
            url = settings.redis_url
        else:
            found = owner_url(settings.data_dir)
            if found is None:
                raise CliError(
                    f"no store to work on: set BROKER_REDIS_URL, or start `broker serve` on {settings.data_dir} first "
                    "(the embedded store runs while serve does)"
                )
            url = found
        os.environ["BROKER_REDIS_URL"] = url
        result = run_worker(settings.with_overrides(redis_url=url))
        if inspect.isawaitable(result):
            result = run(result)
        status = result if isinstance(result, int) else 0
    return status


def add_parser(commands: Any, store: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``worker`` to the ``broker`` command's subparsers."""
    formatter = argparse.RawDescriptionHelpFormatter
    worker: argparse.ArgumentParser = commands.add_parser(
        "worker",
        parents=[store],
        help="run the background jobs alone",
        description=(
            "Run the background jobs (lease reaping, delayed promotion, retention, push delivery) as an arq\n"
            "worker, without the HTTP API. Any number of workers and serve processes can share one store. On\n"
            "the embedded store it works on the store of a running `broker serve` with the same data directory."
        ),
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
    )
    worker.add_argument("--workers", metavar="N", type=int, help="number of worker processes, 1..64 (default 1)")
    worker.set_defaults(handler=cmd_worker)
    return worker
