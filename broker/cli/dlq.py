"""``broker dlq list|redrive QUEUE``: a queue's dead letters, and moving them back."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from rich.table import Table

from broker.cli.common import usage
from broker.cli.remote import CLIENT_HELP, cell, client_command, client_options, console, print_json
from broker.client import Client


@client_command
def cmd_list(args: argparse.Namespace, client: Client) -> int:
    letters = client.iter_dlq(args.queue, limit=min(args.limit or 1000, 1000))
    shown = letters if args.limit is None else itertools.islice(letters, args.limit)
    if args.json:  # JSON Lines: one dead letter per line, streamed
        for letter in shown:
            print_json(letter)
        return 0
    out = Table(header_style="bold")
    for header in ("MESSAGE ID", "REASON", "SOURCE", "ATTEMPTS", "DEAD-LETTERED", "PAYLOAD", "LAST ERROR"):
        out.add_column(header, overflow="fold", no_wrap=header not in ("PAYLOAD", "LAST ERROR"))
    count = 0
    for letter in shown:
        count += 1
        out.add_row(letter.message_id, letter.reason, letter.source_queue, str(letter.attempts),
                    cell(letter.dead_lettered_at), cell(letter.payload), cell(letter.last_error))
    console().print(out if count else f"no dead letters in {args.queue}")
    return 0


@client_command
def cmd_redrive(args: argparse.Namespace, client: Client) -> int:
    redriven = client.dlq_redrive(args.queue, message_id=args.message_id, since=args.since, max_messages=args.max)
    if args.json:
        print_json(redriven)
    else:
        console().print(f"redrove {redriven.redriven} dead letter(s) back to {redriven.queue}")
    return 0


def add_parser(commands: Any, store: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``dlq`` to the ``broker`` command's subparsers (``store`` is unused: it talks HTTP)."""
    formatter = argparse.RawDescriptionHelpFormatter
    server = client_options()
    dlq: argparse.ArgumentParser = commands.add_parser(
        "dlq", help="list a queue's dead letters and redrive them",
        description="A queue's dead letters (wherever they wait), and moving them back to the queue.",
        epilog=CLIENT_HELP, formatter_class=formatter,
    )
    sub = dlq.add_subparsers(title="commands", metavar="COMMAND")
    listing = sub.add_parser("list", parents=[server], help="list dead letters, oldest first",
                             description="List a queue's dead letters, oldest first (--json: one per line).",
                             epilog=CLIENT_HELP, formatter_class=formatter)
    listing.add_argument("queue", metavar="QUEUE")
    listing.add_argument("--limit", type=int, default=100, metavar="N",
                         help="show at most N (default 100)")
    listing.add_argument("--all", dest="limit", action="store_const", const=None, help="show every dead letter")
    listing.set_defaults(handler=cmd_list)
    redrive = sub.add_parser("redrive", parents=[server], help="move dead letters back to their queue",
                             description=("Move dead letters back to the queue with a fresh retry budget: one\n"
                                          "(--message-id), or all of them (dead-lettered at or after --since, at\n"
                                          "most --max), oldest first."),
                             epilog=CLIENT_HELP, formatter_class=formatter)
    redrive.add_argument("queue", metavar="QUEUE")
    redrive.add_argument("--message-id", metavar="ID", help="only this dead letter")
    redrive.add_argument("--since", metavar="TIME", help="only those dead-lettered at or after this RFC 3339 time")
    redrive.add_argument("--max", type=int, metavar="N", help="at most N")
    redrive.set_defaults(handler=cmd_redrive)
    dlq.set_defaults(handler=lambda args: usage(dlq))
    return dlq
