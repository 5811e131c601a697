"""``broker consume QUEUE [--max N] [--wait S] [--ack] [--follow]``: receive messages from the shell.

Without ``--ack`` the messages stay leased (invisible to other consumers) until their lease ends, then are
delivered again: a look that changes nothing for good. With ``--ack`` each batch is acked once printed.
``--follow`` keeps long-polling until Ctrl-C, SIGTERM or ``--max`` messages. ``--json`` prints one JSON object
per message and line (JSON Lines; ``receipt`` included, to ack or nack later).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.table import Table

from broker.cli.common import graceful
from broker.cli.remote import CLIENT_HELP, cell, client_command, client_options, console, print_json
from broker.client import Client, QueueMessage

MAX_PER_CALL = 100


def _table(messages: list[QueueMessage]) -> Table:
    out = Table(header_style="bold")
    for header in ("MESSAGE ID", "ATTEMPTS", "PRIORITY", "GROUP", "ENQUEUED", "PAYLOAD"):
        out.add_column(header, overflow="fold", no_wrap=header != "PAYLOAD")
    for m in messages:
        out.add_row(m.message_id, str(m.attempts), str(m.priority), cell(m.group_id), cell(m.enqueued_at),
                    cell(m.payload))
    return out


@client_command
def cmd_consume(args: argparse.Namespace, client: Client) -> int:
    received = 0
    leased_until = None
    wait = args.wait if args.wait is not None else (20.0 if args.follow else 0.0)
    out = console()
    with graceful():
        while args.max is None or received < args.max:
            want = MAX_PER_CALL if args.max is None else min(MAX_PER_CALL, args.max - received)
            messages = client.consume(args.queue, max_messages=want, wait_seconds=wait,
                                      visibility_timeout=args.visibility_timeout).messages
            received += len(messages)
            if messages:
                if args.json:
                    for message in messages:
                        print_json(message)
                elif args.follow:
                    for message in messages:
                        out.print(f"[bold]{message.message_id}[/bold] attempt {message.attempts}: "
                                  f"{cell(message.payload)}", markup=True, highlight=False)
                else:
                    out.print(_table(messages))
                if args.ack:
                    client.ack_batch(args.queue, messages=messages)
                else:
                    leased_until = max(m.lease_expires_at for m in messages)
            if not args.follow and (not messages or (args.max is not None and received >= args.max)):
                break
            if not args.follow:
                wait = 0.0  # after the first call: take what is there, do not wait again
    if not args.json and received == 0 and not args.follow:
        print(f"broker: no message available in {args.queue}", file=sys.stderr)
    if leased_until is not None and not args.ack:
        print(f"broker: {received} message(s) not acked: leased until {cell(leased_until)} UTC, then delivered "
              "again (--ack deletes them)", file=sys.stderr)
    return 0


def _max(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("--max must be at least 1")
    return number


def add_parser(commands: Any, store: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``consume`` to the ``broker`` command's subparsers (``store`` is unused: it talks HTTP)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "consume", parents=[client_options()], help="receive messages (and ack them with --ack)",
        description=(
            "Receive messages from a queue and print them. Without --ack they stay leased until their lease\n"
            "ends and are then delivered again; with --ack they are deleted once printed. --json prints one\n"
            "message per line (JSON Lines).\n\n"
            "examples:\n"
            "  broker consume orders --max 10\n"
            "  broker consume orders --follow --ack --json | jq .payload"
        ),
        epilog=CLIENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("queue", metavar="QUEUE")
    parser.add_argument("-n", "--max", type=_max, metavar="N",
                        help="stop after N messages (default: 1; with --follow: no limit)")
    parser.add_argument("--wait", type=float, metavar="SECONDS",
                        help="long-poll up to this long for a message (0..20; default 0, with --follow 20)")
    parser.add_argument("--ack", action="store_true", help="ack (delete) the messages once printed")
    parser.add_argument("-f", "--follow", action="store_true", help="keep receiving until Ctrl-C or --max")
    parser.add_argument("--visibility-timeout", type=float, metavar="SECONDS",
                        help="lease length (default: the queue's)")
    parser.set_defaults(handler=_with_default_max)
    return parser


def _with_default_max(args: argparse.Namespace) -> int:
    if args.max is None and not args.follow:
        args.max = 1
    return cmd_consume(args)
