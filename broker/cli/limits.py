"""``broker limits set|show|clear``: per-project request-rate limits (see broker/store/ratelimit.py).

A limit is a token bucket kept in the store: ``--rate`` requests per second on average, bursts of up to
``--burst`` requests. Running servers apply a new or changed limit within about a second. Projects have no
limit by default. Registered into the ``broker`` command by :func:`add_parser`; ``python -m
broker.cli.limits limits ...`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from broker.cli.common import (
    CliError,
    admin,
    module_main,
    project_name,
    say,
    settings_from,
    store_options,
    usage,
)
from broker.store.ratelimit import Limit, clear_limit, list_limits, set_limit, wall_ms
from broker.store.scripts import Scripts

MAX_RATE = 1e9
MAX_BURST = 1_000_000_000


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of requests per second") from None
    if not math.isfinite(rate) or not 0 < rate <= MAX_RATE:
        raise argparse.ArgumentTypeError(f"{value!r} is out of range (more than 0, at most {MAX_RATE:g})")
    return rate


def _burst(value: str) -> int:
    try:
        burst = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of requests") from None
    if not 1 <= burst <= MAX_BURST:
        raise argparse.ArgumentTypeError(f"{value!r} is out of range (1..{MAX_BURST})")
    return burst


def describe(limit: Limit) -> str:
    return f"{limit.rate:g} requests per second, burst {limit.burst}"


def cmd_limits_set(args: argparse.Namespace) -> int:
    """``broker limits set --project P --rate R [--burst B]``."""
    settings = settings_from(args)
    burst = args.burst if args.burst is not None else max(1, math.ceil(args.rate))

    async def action(client: Any) -> None:
        await set_limit(Scripts(client, coalesce=False), client, args.project, args.rate, burst, wall_ms())

    admin(settings, action)
    say(f'project "{args.project}": {describe(Limit(args.rate, burst))}; running servers apply it within a second')
    return 0


def cmd_limits_clear(args: argparse.Namespace) -> int:
    """``broker limits clear --project P``: no limit any more."""
    settings = settings_from(args)

    async def action(client: Any) -> bool:
        return await clear_limit(Scripts(client, coalesce=False), client, args.project, wall_ms())

    if not admin(settings, action):
        raise CliError(f'project "{args.project}" has no rate limit')
    say(f'project "{args.project}": no rate limit; running servers stop limiting it within a second')
    return 0


def cmd_limits_show(args: argparse.Namespace) -> int:
    """``broker limits show [--project P]``: one line per limited project."""
    settings = settings_from(args)
    projects = [args.project] if args.project else None
    found = admin(settings, lambda client: list_limits(client, projects))
    if not found:
        say(f'project "{args.project}" has no rate limit' if args.project else "no project has a rate limit")
        return 0
    rows = [("PROJECT", "RATE/S", "BURST", "TOKENS")]
    rows += [(project, f"{limit.rate:g}", str(limit.burst), f"{tokens:.0f}") for project, limit, tokens in found]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)), row[3]]))
    return 0


def add_parser(commands: Any, store: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add ``limits set|show|clear`` to the ``broker`` command's subparsers."""
    store = store or store_options()
    limits: argparse.ArgumentParser = commands.add_parser(
        "limits",
        help="set, show and clear per-project request-rate limits",
        description=(
            "Per-project request-rate limits: a token bucket in the store refilling at RATE requests per second up\n"
            "to BURST. A request beyond it is refused with 429 RATE_LIMITED and Retry-After. Projects have no limit\n"
            "by default; running servers apply changes within about a second."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = limits.add_subparsers(title="commands", metavar="COMMAND")
    set_ = sub.add_parser("set", parents=[store], help="set a project's limit",
                          description="Set (or change) a project's request-rate limit.")
    set_.add_argument("--project", required=True, type=project_name, help="the project (tenant)")
    set_.add_argument("--rate", required=True, type=_rate, help="requests per second on average (may be fractional)")
    set_.add_argument("--burst", type=_burst, help="requests allowed at once (default: one second's worth, at least 1)")
    set_.set_defaults(handler=cmd_limits_set)
    show = sub.add_parser("show", parents=[store], help="show the limits",
                          description="Show every project's limit, or one project's.")
    show.add_argument("--project", type=project_name, help="only this project")
    show.set_defaults(handler=cmd_limits_show)
    clear = sub.add_parser("clear", parents=[store], help="remove a project's limit",
                           description="Remove a project's limit (it is then unlimited). Exits 1 if it had none.")
    clear.add_argument("--project", required=True, type=project_name, help="the project (tenant)")
    clear.set_defaults(handler=cmd_limits_clear)
    limits.set_defaults(handler=lambda args: usage(limits))
    return limits


def main(argv: list[str] | None = None) -> int:
    """``python -m broker.cli.limits limits ...`` (the same as ``broker limits ...``)."""
    return module_main(add_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
