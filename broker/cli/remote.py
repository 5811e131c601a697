"""What the commands that talk to a server over HTTP share (``queue``, ``publish``, ``consume``, ``dlq``): the
connection options, a :class:`~broker.client.Client` made from them, output as tables for people (rich) or
JSON for scripts (``--json``), and errors: the contract's code and message on stderr and a non-zero exit
status (1; 2 for a usage or configuration problem; 130 after Ctrl-C)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from broker.cli.common import CliError
from broker.cli.profiles import resolve
from broker.client import BrokerError, Client

CLIENT_HELP = """\
server and key (the first that is set):
  --url / --key        flags
  --profile NAME       a profile of the config file
  BROKER_URL / BROKER_KEY
  BROKER_PROFILE, else the config file's "default" profile
config file: $BROKER_CONFIG, else ~/.config/broker/config.toml; see docs/client.md"""

_encode = msgspec.json.Encoder().encode


def client_options() -> argparse.ArgumentParser:
    """The options of every client command (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server")
    group.add_argument("--url", metavar="URL", help="the server, e.g. http://127.0.0.1:8080 (default: $BROKER_URL)")
    group.add_argument("--key", metavar="KEY", help="the API key (default: $BROKER_KEY)")
    group.add_argument("--profile", metavar="NAME", help="a profile of the config file (see below)")
    group.add_argument("--timeout", metavar="SECONDS", type=float, default=10.0,
                       help="per-request timeout (default 10; a long poll's wait is added)")
    group.add_argument("--retries", metavar="N", type=int, default=5,
                       help="retries of a request refused for the moment or unconnectable (default 5)")
    group.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    return parent


def open_client(args: argparse.Namespace) -> Client:
    connection = resolve(args.url, args.key, args.profile)
    try:
        return Client(connection.url, connection.key, timeout=args.timeout, retries=args.retries)
    except ValueError as exc:
        raise CliError(str(exc), status=2) from None


def client_command(action: Callable[[argparse.Namespace, Client], int]) -> Callable[[argparse.Namespace], int]:
    """A command handler that gets a client, and reports the server's errors as the contract names them."""

    @functools.wraps(action)
    def handler(args: argparse.Namespace) -> int:
        client = open_client(args)
        try:
            return action(args, client)
        except BrokerError as exc:
            return report(args, exc)
        finally:
            client.close()

    return handler


def report(args: argparse.Namespace, exc: BrokerError) -> int:
    """Print a server error (``broker: error: CODE: message``, or the contract's error JSON with ``--json``)."""
    if getattr(args, "json", False):
        body = {"code": exc.code, "message": exc.message, "status": exc.status, "request_id": exc.request_id}
        if exc.field:
            body["field"] = exc.field
        sys.stderr.write(_encode({"error": body}).decode() + "\n")
    else:
        print(f"broker: error: {exc}", file=sys.stderr, flush=True)
    return 1


def print_json(value: Any) -> None:
    """One JSON document (a Struct, a list of them, a dict...) on stdout."""
    sys.stdout.write(_encode(value).decode() + "\n")
    sys.stdout.flush()


#: Columns whose values may be long and are folded; the others are never wrapped.
FOLDED = frozenset({"payload", "last_error", "url"})


def console() -> Console:
    """Where tables go: stdout, as wide as the terminal (200 columns when it is not one, e.g. a pipe)."""
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    return _encode(value).decode() if isinstance(value, dict | list) else str(value)


def table(rows: Iterable[Any], columns: Sequence[str], title: str | None = None,
          headers: Sequence[str] | None = None) -> Table:
    """A rich table of Structs, one column per attribute named in ``columns``."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for name, header in zip(columns, headers or columns, strict=True):
        out.add_column(header.upper().replace("_", " "), overflow="fold", no_wrap=name not in FOLDED)
    for row in rows:
        out.add_row(*(cell(getattr(row, name)) for name in columns))
    return out


def record(value: msgspec.Struct, title: str | None = None) -> Table:
    """A rich two-column table of one Struct's fields."""
    out = Table(title=title, title_justify="left", show_header=False)
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    for name in value.__struct_fields__:
        out.add_row(name, cell(getattr(value, name)))
    return out


def confirm(args: argparse.Namespace, question: str) -> None:
    """Ask on a terminal unless ``--yes``; without a terminal, go ahead (scripts say what they mean)."""
    if getattr(args, "yes", False) or not sys.stdin.isatty():
        return
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("cancelled", status=1)


def usage_error(message: str) -> CliError:
    return CliError(message, status=2)
