"""``broker keys create|list|revoke``: API keys, stored only as digests."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from broker.cli.common import CliError, admin, project_name, say, settings_from, usage
from broker.store.apikeys import SHOWN_PREFIX_LENGTH, create_key, list_keys, revoke_key
from broker.store.sqskeys import load_pepper, store_credential


def cmd_keys_create(args: argparse.Namespace) -> int:
    """``broker keys create --project P``: print a new key once."""
    settings = settings_from(args)
    if getattr(args, "json", False):
        return _create_with_sqs(args)
    key = admin(settings, lambda client: create_key(client, args.project))
    print(key, flush=True)
    say(f'created an API key for project "{args.project}"; it is shown once (above), store it now')
    return 0


def _create_with_sqs(args: argparse.Namespace) -> int:
    """``broker keys create --project P --json``: the key and its SQS credentials as one JSON object."""
    settings = settings_from(args)
    pepper = load_pepper(settings.sqs_pepper, settings.data_dir)

    async def create(client: Any) -> dict[str, str]:
        key = await create_key(client, args.project)
        access_key_id, secret = await store_credential(client, pepper, args.project, key)
        return {"project": args.project, "key": key, "key_id": key[:SHOWN_PREFIX_LENGTH],
                "sqs_access_key_id": access_key_id, "sqs_secret_access_key": secret}

    print(json.dumps(admin(settings, create)), flush=True)
    say(f'created an API key with SQS credentials for project "{args.project}"; shown once (above), store it now')
    return 0


def _created(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def cmd_keys_list(args: argparse.Namespace) -> int:
    """``broker keys list``: prefixes, projects, source and creation time; never whole keys."""
    settings = settings_from(args)
    keys = admin(settings, lambda client: list_keys(client, settings.api_keys))
    if not keys:
        say("no API keys (create one with: broker keys create --project NAME)")
        return 0
    rows = [("PREFIX", "PROJECT", "SOURCE", "CREATED")]
    rows += [(k.prefix + "...", k.project, k.source, _created(k.created_at)) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]]))
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """``broker keys revoke KEY_OR_PREFIX``: exit 1 when nothing matched or a prefix is ambiguous."""
    settings = settings_from(args)
    given = args.key.strip()
    if given.endswith("..."):  # pasted from `broker keys list`
        given = given[:-3]
    shown = given if len(given) <= SHOWN_PREFIX_LENGTH else given[:SHOWN_PREFIX_LENGTH] + "..."
    if len(given) < 6:
        raise CliError(f"{shown!r} is too short: give the key or at least 6 characters of its prefix")

    async def revoke(client: Any) -> int:
        if len(given) < SHOWN_PREFIX_LENGTH:
            matches = [k for k in await list_keys(client, settings.api_keys) if k.prefix.startswith(given)]
            if len(matches) > 1:
                raise CliError(f"{shown!r} matches {len(matches)} keys; give a longer prefix")
        return await revoke_key(client, given, settings.api_keys)

    count = admin(settings, revoke)
    if not count:
        raise CliError(f"no API key matches {shown!r} (see broker keys list)")
    say(f"revoked {count} key(s) matching {shown!r}; running servers refuse them within a second")
    return 0


def add_parser(commands: Any, store: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``keys`` to the ``broker`` command's subparsers."""
    formatter = argparse.RawDescriptionHelpFormatter
    keys: argparse.ArgumentParser = commands.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description=(
            "Manage the API keys stored in the store (hashed; the key itself is shown only when created).\n"
            "Without a Redis URL they work on the embedded store: the one a running `broker serve` owns, or\n"
            "one started for the command."
        ),
        formatter_class=formatter,
    )
    key_commands = keys.add_subparsers(title="commands", metavar="COMMAND")
    create = key_commands.add_parser(
        "create",
        parents=[store],
        help="create a key for a project and print it once",
        description="Create an API key for a project and print it (on stdout) once; only its digest is stored.",
    )
    create.add_argument("--project", required=True, type=project_name, help="the project (tenant) the key belongs to")
    create.add_argument("--json", action="store_true",
                        help="print one JSON object: project, key, key_id, sqs_access_key_id, sqs_secret_access_key "
                             "(the SQS credentials of the key, docs/sqs.md)")
    create.set_defaults(handler=cmd_keys_create)
    listing = key_commands.add_parser(
        "list",
        parents=[store],
        help="list keys by prefix, project, source and creation time",
        description=(
            "List the API keys: shown prefix, project, source (store: created with `broker keys create`; env: from\n"
            "BROKER_API_KEYS) and creation time (UTC). Whole keys are never shown."
        ),
        formatter_class=formatter,
    )
    listing.set_defaults(handler=cmd_keys_list)
    revoke = key_commands.add_parser(
        "revoke",
        parents=[store],
        help="revoke a key given whole or by its prefix",
        description=(
            "Revoke an API key given whole or by its shown prefix (as printed by `broker keys list`). Running\n"
            "servers refuse it within a second. Exits 1 when nothing matched or a short prefix is ambiguous."
        ),
        formatter_class=formatter,
    )
    revoke.add_argument("key", metavar="KEY_OR_PREFIX", help="the whole key, or its prefix (at least 6 characters)")
    revoke.set_defaults(handler=cmd_keys_revoke)
    keys.set_defaults(handler=lambda args: usage(keys))
    return keys
