"""The ``broker`` command: ``serve``, ``worker`` and ``keys create|list|revoke``.

Configuration comes from the ``BROKER_*`` environment variables (docs/configuration.md); flags override
them. A configuration error prints one line, ``broker: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, TypeVar

from broker.settings import PROJECT_RE, ConfigError, Settings

T = TypeVar("T")

ENVIRONMENT_HELP = """\
environment (flags override):
  BROKER_REDIS_URL               the Redis to use; unset: the embedded store under BROKER_DATA_DIR
  BROKER_DATA_DIR                data directory of the embedded store (default ./data)
  BROKER_API_KEYS                project:key[,project:key...] accepted besides stored keys
  BROKER_ACCEPT_WEAK_DURABILITY  1: start on a Redis that can lose acknowledged messages
  BROKER_RUN_WORKERS             0: no background jobs in serve processes (like --no-workers)
  BROKER_REDIS_SERVER            redis-server binary for the embedded store
  BROKER_LOG_LEVEL               critical, error, warning, info (default) or debug
see docs/configuration.md for all of them"""


class CliError(Exception):
    """A failure to report as ``broker: error: <message>`` with exit ``status``."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


class Stopped(BaseException):
    """Raised by the SIGTERM handler so that clean-up (``finally``) runs."""


def say(message: str) -> None:
    """A status line for the operator, on stderr."""
    print(f"broker: {message}", file=sys.stderr, flush=True)


def _raise_stopped(signum: int, frame: Any) -> NoReturn:
    raise Stopped(signum)


@contextlib.contextmanager
def _graceful() -> Iterator[contextlib.ExitStack]:
    """Run a command until it ends or SIGINT/SIGTERM stops it, then run its clean-up (the returned
    ExitStack) with both signals ignored, so a second signal cannot cut the clean-up short."""
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    stack = contextlib.ExitStack()
    try:
        yield stack
    except (Stopped, KeyboardInterrupt):
        say("stopping")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stack.close()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return Settings.from_env(
        redis_url=getattr(args, "redis_url", None),
        data_dir=getattr(args, "data_dir", None),
        **overrides,
    )


def _run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


# --- the store ----------------------------------------------------------------------------------------
async def _with_client(url: str, action: Callable[[Any], Awaitable[T]], ready_timeout: float = 30.0) -> T:
    from broker.app import connect
    from broker.durability import redact_url, wait_until_ready

    client = connect(url)
    try:
        try:
            await wait_until_ready(client, ready_timeout)
        except ConnectionError as exc:
            raise CliError(f"cannot reach Redis at {redact_url(url)}: {exc}") from None
        return await action(client)
    finally:
        await client.aclose()


def _check_external(settings: Settings) -> None:
    """Refuse (exit 2) an external Redis that can lose acknowledged messages, unless accepted."""
    from broker.durability import check_durability, redact_url

    url = settings.redis_url or ""
    report = _run(_with_client(url, check_durability))
    if report.incompatible:
        raise CliError("; ".join(report.incompatible), status=2)
    for warning in report.warnings:
        say(f"warning: {warning}")
    if not report.problems:
        return
    if settings.accept_weak_durability:
        for problem in report.problems:
            say(f"warning: {problem}")
        say("warning: starting anyway because BROKER_ACCEPT_WEAK_DURABILITY=1: acknowledged messages can be lost")
        return
    lines = [f"Redis at {redact_url(url)} can lose acknowledged messages:", *report.problems]
    lines.append("(set BROKER_ACCEPT_WEAK_DURABILITY=1 to start anyway, e.g. for a throw-away test store)")
    raise CliError("\n  ".join(lines), status=2)


def _admin(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(client)`` for a short administrative command on the configured Redis, or on the
    embedded store (the one a running ``broker serve`` owns, else one started for the command)."""
    from broker.embedded import attach_or_start

    done: list[T] = []
    with _graceful() as stack:
        url = settings.redis_url or stack.enter_context(attach_or_start(settings.data_dir, settings.redis_server, say))
        done.append(_run(_with_client(url, action, ready_timeout=10.0)))
    if not done:
        raise CliError("interrupted", 130)
    return done[0]


# --- broker serve -------------------------------------------------------------------------------------
def _check_port(host: str, port: int) -> None:
    """Fail before anything starts when the address cannot be bound (in use, unknown host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _first_key(settings: Settings, url: str) -> None:
    from broker.auth import create_initial_key

    key = _run(_with_client(url, lambda client: create_initial_key(client, settings.api_keys)))
    if key:
        print(f'Created API key for project "default" (shown once): {key}', flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """``broker serve``: the HTTP API (and background jobs) on the configured or embedded store."""
    settings = _settings(
        args, host=args.host, port=args.port, workers=args.workers, run_workers=False if args.no_workers else None
    )
    import uvicorn

    from broker.durability import redact_url
    from broker.embedded import EmbeddedStore, StoreInUse

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    _check_port(settings.host, settings.port)
    with _graceful() as stack:
        if settings.redis_url:
            _check_external(settings)
            url, where = settings.redis_url, f"Redis at {redact_url(settings.redis_url)}"
        else:
            store = EmbeddedStore(settings.data_dir, binary=settings.redis_server, log=say)
            try:
                url = store.start()
            except StoreInUse as exc:
                raise CliError(
                    f"{exc}; stop it, use another --data-dir, or share a Redis of your own (BROKER_REDIS_URL)"
                ) from None
            stack.callback(say, "embedded store stopped")
            stack.callback(store.stop)
            where = store.describe()
        os.environ["BROKER_REDIS_URL"] = url  # read again by every uvicorn process (app_from_env)
        os.environ["BROKER_RUN_WORKERS"] = "1" if settings.run_workers else "0"
        _first_key(settings, url)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        say(f"store: {where}")
        say(
            f"listening on http://{host}:{settings.port} ({settings.workers} process(es), {loop}/{http}, "
            f"background jobs {'on' if settings.run_workers else 'off'})"
        )
        uvicorn.run(
            "broker.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop=loop,
            http=http,
            lifespan="on",
            log_level=settings.log_level,
            access_log=settings.log_level == "debug",
            timeout_graceful_shutdown=25,  # long polls last at most 20 s
        )
    return 0


# --- broker worker ------------------------------------------------------------------------------------
def _load_run_worker() -> Callable[[Settings], Any]:
    try:
        module = importlib.import_module("workers.main")
    except ModuleNotFoundError as exc:
        if exc.name not in ("workers", "workers.main"):
            raise
        raise CliError("broker worker is not available in this installation (workers/main.py is missing)") from None
    run_worker = getattr(module, "run_worker", None)
    if not callable(run_worker):
        raise CliError("broker worker is not available in this installation (workers.main has no run_worker)")
    return run_worker  # type: ignore[no-any-return]


def cmd_worker(args: argparse.Namespace) -> int:
    """``broker worker``: the background jobs alone, on the configured store or a running serve's."""
    from broker.embedded import owner_url

    settings = _settings(args, workers=args.workers)
    run_worker = _load_run_worker()
    status = 0
    with _graceful():
        if settings.redis_url:
            _check_external(settings)
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
            result = _run(result)
        status = result if isinstance(result, int) else 0
    return status


# --- broker keys --------------------------------------------------------------------------------------
def _project(value: str) -> str:
    if not PROJECT_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a project name (letters, digits, _ and -; 1..64)")
    return value


def cmd_keys_create(args: argparse.Namespace) -> int:
    """``broker keys create --project P``: print a new key once."""
    from broker.auth import create_key

    settings = _settings(args)
    key = _admin(settings, lambda client: create_key(client, args.project))
    print(key, flush=True)
    say(f'created an API key for project "{args.project}"; it is shown once (above), store it now')
    return 0


def _created(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def cmd_keys_list(args: argparse.Namespace) -> int:
    """``broker keys list``: prefixes, projects, source and creation time; never whole keys."""
    from broker.auth import list_keys

    settings = _settings(args)
    keys = _admin(settings, lambda client: list_keys(client, settings.api_keys))
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
    from broker.auth import SHOWN_PREFIX_LENGTH, list_keys, revoke_key

    settings = _settings(args)
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

    count = _admin(settings, revoke)
    if not count:
        raise CliError(f"no API key matches {shown!r} (see broker keys list)")
    say(f"revoked {count} key(s) matching {shown!r}; running servers refuse them within a second")
    return 0


# --- the parser ---------------------------------------------------------------------------------------
def _store_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("store")
    group.add_argument(
        "--redis-url",
        metavar="URL",
        help="the Redis to use: redis://, rediss:// or unix:// (default: $BROKER_REDIS_URL; unset: the embedded store)",
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory of the embedded store (default: $BROKER_DATA_DIR or ./data)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``broker`` command and its subcommands."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        own_version = version("broker")
    except PackageNotFoundError:
        own_version = "unknown"
    formatter = argparse.RawDescriptionHelpFormatter
    store = _store_options()
    parser = argparse.ArgumentParser(
        prog="broker",
        description="A self-hosted, SQS-style message queue over HTTP with its state in Redis.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"broker {own_version}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        parents=[store],
        help="run the HTTP API (and the background jobs)",
        description=(
            "Run the HTTP API with uvicorn and, unless --no-workers, the background jobs (lease reaping, delayed\n"
            "promotion, retention, push delivery) in the same processes. Without a Redis URL it starts the\n"
            "embedded store under the data directory and stops it on exit. On an external Redis it first checks\n"
            "that Redis keeps what it acknowledges (see docs/operations.md). On first start, when no API key\n"
            'exists, it creates one for project "default" and prints it once. Stops on SIGINT or SIGTERM.'
        ),
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
    )
    serve.add_argument("--host", metavar="HOST", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", metavar="PORT", type=int, help="TCP port to listen on, 1..65535 (default 8080)")
    serve.add_argument("--workers", metavar="N", type=int, help="number of HTTP server processes, 1..64 (default 1)")
    serve.add_argument(
        "--no-workers",
        action="store_true",
        help="do not run the background jobs in these processes (run `broker worker` for them instead)",
    )
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser(
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

    keys = commands.add_parser(
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
    create.add_argument("--project", required=True, type=_project, help="the project (tenant) the key belongs to")
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
    keys.set_defaults(handler=lambda args: _usage(keys))
    from broker import cli_limits, cli_store

    cli_limits.add_parser(commands, store)
    cli_store.add_parser(commands, store)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``broker`` console script; returns the exit status."""
    return run_parsed(build_parser(), argv)


def run_parsed(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run its handler, turning the known failures into one line and an exit status."""
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        return _usage(parser)
    from broker.embedded import EmbeddedError

    try:
        status: int = handler(args)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except CliError as exc:
        return _fail(str(exc), exc.status)
    except EmbeddedError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    return status


def _fail(message: str, status: int) -> int:
    print(f"broker: error: {message}", file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
