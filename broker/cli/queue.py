"""``broker queue create|list|get|update|delete|purge|stats``: queues of a server, over its HTTP API."""

from __future__ import annotations

import argparse
from typing import Any

from msgspec import UNSET

from broker.cli.common import usage
from broker.cli.remote import CLIENT_HELP, client_command, client_options, confirm, console, print_json, record, table
from broker.client import Client

QUEUE_COLUMNS = ("queue", "type", "dead_letter_queue", "max_retries", "message_retention_days",
                 "visibility_timeout_default", "enable_priority", "created_at")
QUEUE_HEADERS = ("queue", "type", "dlq", "retries", "retention d", "visibility s", "priority", "created")
STATS_COLUMNS = ("queue", "available", "in_flight", "delayed", "dlq", "oldest_age_seconds")


@client_command
def cmd_create(args: argparse.Namespace, client: Client) -> int:
    created = client.create_queue(
        args.name, type=args.type, dead_letter_queue=args.dead_letter_queue, max_retries=args.max_retries,
        message_retention_days=args.retention_days, visibility_timeout_default=args.visibility_timeout,
        enable_priority=args.enable_priority,
    )
    if args.json:
        print_json(created)
    else:
        console().print(record(created, title=f"queue {created.queue}"))
    return 0


@client_command
def cmd_list(args: argparse.Namespace, client: Client) -> int:
    queues = list(client.iter_queues(limit=args.page_size))
    if args.json:
        print_json(queues)
    elif not queues:
        console().print("no queues (create one with: broker queue create NAME)")
    else:
        console().print(table(queues, QUEUE_COLUMNS, headers=QUEUE_HEADERS))
    return 0


@client_command
def cmd_get(args: argparse.Namespace, client: Client) -> int:
    found = client.get_queue(args.name)
    if args.json:
        print_json(found)
    else:
        console().print(record(found, title=f"queue {found.queue}"))
    return 0


@client_command
def cmd_update(args: argparse.Namespace, client: Client) -> int:
    dead_letter_queue: Any = UNSET
    if args.no_dead_letter_queue:
        dead_letter_queue = None
    elif args.dead_letter_queue is not None:
        dead_letter_queue = args.dead_letter_queue
    updated = client.update_queue(
        args.name, dead_letter_queue=dead_letter_queue, max_retries=args.max_retries,
        message_retention_days=args.retention_days, visibility_timeout_default=args.visibility_timeout,
        enable_priority=args.enable_priority,
    )
    if args.json:
        print_json(updated)
    else:
        console().print(record(updated, title=f"queue {updated.queue}"))
    return 0


@client_command
def cmd_delete(args: argparse.Namespace, client: Client) -> int:
    confirm(args, f"Delete queue {args.name!r} with all its messages and dead letters?")
    deleted = client.delete_queue(args.name)
    if args.json:
        print_json(deleted)
    else:
        console().print(f"deleted queue {deleted.queue}" if deleted.deleted else f"no queue {deleted.queue}")
    return 0


@client_command
def cmd_purge(args: argparse.Namespace, client: Client) -> int:
    confirm(args, f"Delete every available, delayed and in-flight message of {args.name!r}?")
    purged = client.purge_queue(args.name)
    if args.json:
        print_json(purged)
    else:
        console().print(f"purged {purged.purged} message(s) from {purged.queue}")
    return 0


@client_command
def cmd_stats(args: argparse.Namespace, client: Client) -> int:
    found = [client.stats(name) for name in args.names]
    if args.json:
        print_json(found[0] if len(found) == 1 else found)
    else:
        console().print(table(found, STATS_COLUMNS,
                              headers=("queue", "available", "in flight", "delayed", "dlq", "oldest age s")))
    return 0


def _settings(parser: argparse.ArgumentParser, update: bool) -> None:
    group = parser.add_argument_group("settings" + (" (only those given change)" if update else ""))
    if not update:
        group.add_argument("--type", choices=("standard", "fifo"), help="standard (default) or fifo")
    dlq = group.add_mutually_exclusive_group() if update else group
    dlq.add_argument("--dead-letter-queue", metavar="QUEUE",
                     help="an existing queue that receives this queue's dead letters")
    if update:
        dlq.add_argument("--no-dead-letter-queue", action="store_true",
                         help="keep dead letters in the queue's own dead-letter area again")
    group.add_argument("--max-retries", type=int, metavar="N", help="deliveries beyond the first (0..1000, default 5)")
    group.add_argument("--retention-days", type=int, metavar="DAYS", help="message retention (1..14, default 4)")
    group.add_argument("--visibility-timeout", type=int, metavar="SECONDS",
                       help="default lease of a consume (0..43200, default 30)")
    group.add_argument("--priority", dest="enable_priority", action=argparse.BooleanOptionalAction, default=None,
                       help="deliver higher priorities first (default: off)")


def add_parser(commands: Any, store: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``queue`` to the ``broker`` command's subparsers (``store`` is unused: these talk HTTP)."""
    formatter = argparse.RawDescriptionHelpFormatter
    server = client_options()
    queue: argparse.ArgumentParser = commands.add_parser(
        "queue", help="create, list, inspect, change, purge and delete queues on a server",
        description="Manage the queues of a project on a running server, over its HTTP API.",
        epilog=CLIENT_HELP, formatter_class=formatter,
    )
    sub = queue.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, parents=[server], help=help_text,
                                                         description=help_text[0].upper() + help_text[1:] + ".",
                                                         epilog=CLIENT_HELP, formatter_class=formatter)
        parser.set_defaults(handler=handler)
        return parser

    create = command("create", "create a queue (an existing one with the same settings is returned)", cmd_create)
    create.add_argument("name", metavar="NAME", help="the queue's name (letters, digits, _ and -; 1..80)")
    _settings(create, update=False)
    listing = command("list", "list the project's queues", cmd_list)
    listing.add_argument("--page-size", type=int, metavar="N", help="queues per request (1..1000, default 100)")
    command("get", "show a queue's settings", cmd_get).add_argument("name", metavar="NAME")
    update = command("update", "change a queue's settings", cmd_update)
    update.add_argument("name", metavar="NAME")
    _settings(update, update=True)
    for name, help_text, handler in (("delete", "delete a queue with its messages and dead letters", cmd_delete),
                                     ("purge", "delete a queue's available, delayed and in-flight messages",
                                      cmd_purge)):
        parser = command(name, help_text, handler)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask (asked only on a terminal)")
    stats = command("stats", "show queues' message counts", cmd_stats)
    stats.add_argument("names", metavar="NAME", nargs="+")
    queue.set_defaults(handler=lambda args: usage(queue))
    return queue
