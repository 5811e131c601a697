"""The ``broker`` command: ``serve``, ``worker``, ``keys``, ``limits`` and ``store``, one module each.

Configuration comes from the ``BROKER_*`` environment variables (docs/configuration.md); flags override
them. A configuration error prints one line, ``broker: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from broker.cli import accounts, completion, consume, dlq, keys, limits, publish, queue, serve, store, worker
from broker.cli.common import ENVIRONMENT_HELP, run_parsed, store_options


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``broker`` command and its subcommands."""
    try:
        own_version = version("broker-queue")  # the distribution name (pyproject.toml)
    except PackageNotFoundError:
        own_version = "unknown"
    store_options_parser = store_options()
    parser = argparse.ArgumentParser(
        prog="broker",
        description="A self-hosted, SQS-style message queue over HTTP with its state in Redis.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"broker {own_version}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    for command in (serve, worker, keys, limits, accounts, store, queue, publish, consume, dlq, completion):
        command.add_parser(commands, store_options_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``broker`` console script; returns the exit status."""
    return run_parsed(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
