"""``broker store status|accept-reset``: the store's identity (see broker/store/instance.py).

When a running server finds that the store lost its data (its instance marker is gone or replaced), it
refuses requests with ``503 UNAVAILABLE`` until an operator acknowledges the loss with ``broker store
accept-reset`` (or restarts the servers). Registered into the ``broker`` command by :func:`add_parser`;
``python -m broker.cli.store store ...`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from broker.cli.common import admin, module_main, say, settings_from, store_options, usage
from broker.store.instance import Marker, accept_reset, read_marker


def _when(marker: Marker) -> str:
    if not marker.created_ms:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(marker.created_ms / 1000))


def _describe(marker: Marker | None) -> str:
    if marker is None:
        return "none (a new store, or one that lost its data)"
    return f"{marker.id} ({marker.origin}, {_when(marker)})"


def cmd_store_status(args: argparse.Namespace) -> int:
    """``broker store status``: the store's identity and size."""
    settings = settings_from(args)

    async def action(client: Any) -> tuple[Marker | None, int]:
        return await read_marker(client), int(await client.dbsize())

    marker, keys = admin(settings, action)
    print(f"identity: {_describe(marker)}")
    print(f"keys: {keys}")
    return 0


def cmd_store_accept_reset(args: argparse.Namespace) -> int:
    """``broker store accept-reset``: acknowledge that the store lost its data; servers serve again."""
    settings = settings_from(args)
    previous, marker = admin(settings, accept_reset)
    say(f"store identity was {_describe(previous)}; it is now {_describe(marker)}")
    say("running servers accept the store as it is now and serve again within a few seconds; "
        "messages the store lost are not recovered (restore a backup of the append-only file for that)")
    return 0


def add_parser(commands: Any, store: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add ``store status|accept-reset`` to the ``broker`` command's subparsers."""
    store = store or store_options()
    parser: argparse.ArgumentParser = commands.add_parser(
        "store",
        help="the store's identity: status, and accepting a store that lost its data",
        description=(
            "Every server remembers the identity of the store it started on. When the store comes back without\n"
            "its data (restarted without its append-only file, flushed, replaced), servers refuse requests with\n"
            "503 UNAVAILABLE until an operator acknowledges the loss with `broker store accept-reset`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    status = sub.add_parser("status", parents=[store], help="show the store's identity and number of keys",
                            description="Show the store's identity (instance marker) and its number of keys.")
    status.set_defaults(handler=cmd_store_status)
    accept = sub.add_parser(
        "accept-reset",
        parents=[store],
        help="acknowledge that the store lost its data, so that servers serve again",
        description=(
            "Acknowledge that the store lost its data: give it a new identity that running servers adopt, after\n"
            "which they serve again on what the store holds now. Lost messages are not recovered."
        ),
    )
    accept.set_defaults(handler=cmd_store_accept_reset)
    parser.set_defaults(handler=lambda args: usage(parser))
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m broker.cli.store store ...`` (the same as ``broker store ...``)."""
    return module_main(add_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
