"""``broker admin ...``: projects, their keys, credit, limits and usage, on the store (the same as the admin API
under /v1/admin, see docs/admin.md). Every command prints JSON on stdout."""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from broker import errors
from broker.cli.common import (
    CliError,
    admin,
    module_main,
    project_name,
    settings_from,
    store_options,
    usage,
)
from broker.store.accounts import CHARGED_CAPABILITIES, Accounts, day_of, day_text, parse_day
from broker.store.apikeys import create_project_key, delete_project_key, project_keys, rotate_project_key, shown
from broker.store.ratelimit import wall_ms
from broker.store.scripts import Scripts

_encode = msgspec.json.Encoder().encode


def _print(value: Any) -> None:
    print(msgspec.json.format(_encode(value), indent=2).decode(), flush=True)


def _run(args: argparse.Namespace, action: Callable[[Accounts, Any], Awaitable[Any]]) -> int:
    """Run ``action(accounts, client)`` on the configured store and print its answer; a contract error is one line."""
    settings = settings_from(args)

    async def with_accounts(client: Any) -> Any:
        return await action(Accounts(client, Scripts(client, coalesce=False)), client)

    try:
        result = admin(settings, with_accounts)
    except errors.BrokerError as exc:
        raise CliError(f"{exc.code}: {exc.message}") from None
    _print(result)
    return 0


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    """The limits given on the command line; ``none`` removes one."""
    found: dict[str, Any] = {}
    for name in ("max_queues", "max_messages", "max_payload_bytes", "requests_per_second", "burst"):
        value = getattr(args, name, None)
        if value is not None:
            found[name] = None if value == "none" else (float(value) if name == "requests_per_second" else int(value))
    return found


def _limit_value(value: str) -> str:
    if value != "none":
        try:
            float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number (or none)") from None
    return value


def _price(value: str) -> tuple[str, int | None]:
    capability, sep, price = value.partition("=")
    if not sep or capability not in CHARGED_CAPABILITIES:
        raise argparse.ArgumentTypeError(f"{value!r}: expected CAPABILITY=PRICE, CAPABILITY one of "
                                         + ", ".join(CHARGED_CAPABILITIES))
    if price == "default":
        return capability, None
    try:
        return capability, int(price)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: the price must be a whole number (or default)") from None


def cmd_create(args: argparse.Namespace) -> int:
    return _run(args, lambda accounts, _: accounts.create(args.project, _limits(args) or None, wall_ms()))


def cmd_list(args: argparse.Namespace) -> int:
    async def action(accounts: Accounts, _: Any) -> Any:
        return [await accounts.get(p) for p in (await accounts.projects())[0] if await accounts.exists(p)]

    return _run(args, action)


def cmd_show(args: argparse.Namespace) -> int:
    return _run(args, lambda accounts, _: accounts.get(args.project))


def cmd_set(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if _limits(args):
        changes["limits"] = _limits(args)
    if args.disabled is not None:
        changes["disabled"] = args.disabled
    if args.price:
        changes["prices"] = dict(args.price)
    if args.usage_days is not None:
        changes["usage_retention_days"] = args.usage_days
    if args.unlimited:
        changes["credit"] = None
    if not changes:
        raise CliError("nothing to change (see broker admin project set --help)", 2)
    return _run(args, lambda accounts, _: accounts.update(args.project, changes, wall_ms()))


def cmd_credit(args: argparse.Namespace) -> int:
    async def action(accounts: Accounts, _: Any) -> Any:
        return {"project": args.project, "credit": await accounts.add_credit(args.project, args.amount)}

    return _run(args, action)


def cmd_usage(args: argparse.Namespace) -> int:
    today = day_of(wall_ms())

    async def action(accounts: Accounts, _: Any) -> Any:
        await accounts.get(args.project)
        to_day = parse_day(args.to, "to") if args.to else today
        from_day = parse_day(args.from_, "from") if args.from_ else min(today, to_day)
        rows = await accounts.usage(args.project, from_day, to_day)
        return {"project": args.project, "from": day_text(from_day), "to": day_text(to_day), "items": rows}

    return _run(args, action)


def cmd_key_create(args: argparse.Namespace) -> int:
    async def action(accounts: Accounts, client: Any) -> Any:
        await accounts.get(args.project)
        return await create_project_key(client, args.project)

    return _run(args, action)


def cmd_key_list(args: argparse.Namespace) -> int:
    async def action(accounts: Accounts, client: Any) -> Any:
        now = datetime.datetime.now(datetime.UTC).timestamp()
        return [shown(h, r) for h, r in await project_keys(client, args.project)
                if r.expires_at is None or r.expires_at > now]

    return _run(args, action)


def cmd_key_revoke(args: argparse.Namespace) -> int:
    async def action(accounts: Accounts, client: Any) -> Any:
        await delete_project_key(client, args.project, args.key_id)
        return {"key_id": args.key_id, "deleted": True}

    return _run(args, action)


def cmd_key_rotate(args: argparse.Namespace) -> int:
    if not 0 <= args.overlap_seconds <= 30 * 86400:
        raise CliError("--overlap-seconds must be 0..2592000 (30 days)", 2)
    return _run(args, lambda _, client: rotate_project_key(client, args.project, args.key_id, args.overlap_seconds))


def _limit_options(parser: argparse.ArgumentParser) -> None:
    for flag, meaning in (("--max-queues", "queues"), ("--max-messages", "messages stored in all queues"),
                          ("--max-payload-bytes", "bytes of one payload (compact JSON)"),
                          ("--requests-per-second", "requests per second (the token bucket of `broker limits`)"),
                          ("--burst", "requests at once (with --requests-per-second)")):
        parser.add_argument(flag, type=_limit_value, metavar="N", help=f"the most {meaning}; `none`: no limit")


def add_parser(commands: Any, store: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add ``admin`` to the ``broker`` command's subparsers."""
    store = store or store_options()
    top: argparse.ArgumentParser = commands.add_parser(
        "admin",
        help="projects, keys, credit, limits and usage (as the admin API)",
        description=(
            "Manage projects on the store, as the admin API under /v1/admin does (docs/admin.md): create a project\n"
            "with limits, give it keys, credit and prices, disable it, and read its usage per day. Prints JSON."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    groups = top.add_subparsers(title="commands", metavar="COMMAND")

    project = groups.add_parser("project", help="create, list, show and change projects")
    project_commands = project.add_subparsers(title="commands", metavar="COMMAND")
    create = project_commands.add_parser("create", parents=[store], help="create a project")
    create.add_argument("project", type=project_name)
    _limit_options(create)
    create.set_defaults(handler=cmd_create)
    listed = project_commands.add_parser("list", parents=[store], help="list the projects")
    listed.set_defaults(handler=cmd_list)
    show = project_commands.add_parser("show", parents=[store], help="a project's credit, limits and prices")
    show.add_argument("project", type=project_name)
    show.set_defaults(handler=cmd_show)
    change = project_commands.add_parser("set", parents=[store], help="change limits, prices, disabled, credit")
    change.add_argument("project", type=project_name)
    _limit_options(change)
    change.add_argument("--disable", dest="disabled", action="store_const", const=True, help="refuse its keys")
    change.add_argument("--enable", dest="disabled", action="store_const", const=False, help="accept its keys again")
    change.add_argument("--price", type=_price, action="append", metavar="CAPABILITY=PRICE",
                        help="price of a call (publish_batch: of a message); `default` for 1")
    change.add_argument("--usage-days", type=int, help="days a day's usage is kept (default 90)")
    change.add_argument("--unlimited", action="store_true", help="remove the credit: the project is unlimited")
    change.set_defaults(handler=cmd_set)
    project.set_defaults(handler=lambda args: usage(project))

    credit = groups.add_parser("credit", parents=[store], help="add credit (negative to correct)")
    credit.add_argument("project", type=project_name)
    credit.add_argument("amount", type=int)
    credit.set_defaults(handler=cmd_credit)

    used = groups.add_parser("usage", parents=[store], help="usage per day and capability")
    used.add_argument("project", type=project_name)
    used.add_argument("--from", dest="from_", metavar="YYYY-MM-DD", help="first day (UTC; default today)")
    used.add_argument("--to", metavar="YYYY-MM-DD", help="last day, inclusive (UTC; default today)")
    used.set_defaults(handler=cmd_usage)

    keys = groups.add_parser("keys", help="create, list, revoke and rotate a project's keys")
    key_commands = keys.add_subparsers(title="commands", metavar="COMMAND")
    key_create = key_commands.add_parser("create", parents=[store], help="a new key (printed once)")
    key_create.add_argument("project", type=project_name)
    key_create.set_defaults(handler=cmd_key_create)
    key_list = key_commands.add_parser("list", parents=[store], help="the project's keys (ids and prefixes)")
    key_list.add_argument("project", type=project_name)
    key_list.set_defaults(handler=cmd_key_list)
    key_revoke = key_commands.add_parser("revoke", parents=[store], help="revoke a key at once")
    key_revoke.add_argument("project", type=project_name)
    key_revoke.add_argument("key_id")
    key_revoke.set_defaults(handler=cmd_key_revoke)
    key_rotate = key_commands.add_parser("rotate", parents=[store], help="replace a key, with an overlap window")
    key_rotate.add_argument("project", type=project_name)
    key_rotate.add_argument("key_id")
    key_rotate.add_argument("--overlap-seconds", type=int, default=3600,
                            help="how long the old key stays valid (default 3600; 0: refused at once)")
    key_rotate.set_defaults(handler=cmd_key_rotate)
    keys.set_defaults(handler=lambda args: usage(keys))
    top.set_defaults(handler=lambda args: usage(top))
    return top


def main(argv: list[str] | None = None) -> int:
    """``python -m broker.cli.accounts admin ...`` (the same as ``broker admin ...``)."""
    return module_main(add_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
