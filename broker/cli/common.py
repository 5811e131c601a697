"""What the ``broker`` commands share: settings from flags and environment, running a coroutine, a client on
the configured or embedded store, graceful stops, and one-line failures."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, TypeVar

from broker.embedded.supervisor import EmbeddedError, attach_or_start
from broker.settings import PROJECT_RE, ConfigError, Settings
from broker.store.connection import close_client, connect
from broker.store.durability import check_durability, redact_url, wait_until_ready
from broker.store.scripts import ScriptError, load_all

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
def graceful() -> Iterator[contextlib.ExitStack]:
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


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    return Settings.from_env(
        redis_url=getattr(args, "redis_url", None),
        data_dir=getattr(args, "data_dir", None),
        **overrides,
    )


def run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


# --- the store ----------------------------------------------------------------------------------------
async def with_client(url: str, action: Callable[[Any], Awaitable[T]], ready_timeout: float = 30.0) -> T:
    client = connect(url)
    try:
        try:
            await wait_until_ready(client, ready_timeout)
        except ConnectionError as exc:
            raise CliError(f"cannot reach Redis at {redact_url(url)}: {exc}") from None
        return await action(client)
    finally:
        await close_client(client)


def check_scripts() -> None:
    """Refuse (exit 2) to start from an installation whose Lua scripts are missing or unreadable, which would
    otherwise answer every queue call with 500."""
    try:
        load_all()
    except (ScriptError, OSError) as exc:
        raise CliError(f"cannot load the Lua scripts: {exc}", status=2) from None


def check_external(settings: Settings) -> None:
    """Refuse (exit 2) an external Redis that can lose acknowledged messages, unless accepted."""

    url = settings.redis_url or ""
    report = run(with_client(url, check_durability))
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


def admin(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(client)`` for a short administrative command on the configured Redis, or on the
    embedded store (the one a running ``broker serve`` owns, else one started for the command)."""

    done: list[T] = []
    with graceful() as stack:
        url = settings.redis_url or stack.enter_context(attach_or_start(settings.data_dir, settings.redis_server, say))
        done.append(run(with_client(url, action, ready_timeout=10.0)))
    if not done:
        raise CliError("interrupted", 130)
    return done[0]


def project_name(value: str) -> str:
    if not PROJECT_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a project name (letters, digits, _ and -; 1..64)")
    return value


def store_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("store")
    group.add_argument(
        "--redis-url",
        metavar="URL",
        help=(
            "the Redis to use: redis://, rediss:// (TLS), unix://, redis+cluster:// / rediss+cluster:// for a "
            "Redis Cluster, or redis+sentinel://host:port[,host:port...]/MASTER for a Sentinel-managed primary "
            "(default: $BROKER_REDIS_URL; unset: the embedded store)"
        ),
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory of the embedded store (default: $BROKER_DATA_DIR or ./data)",
    )
    return parent


def usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_parsed(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run its handler, turning the known failures into one line and an exit status."""
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        return usage(parser)

    try:
        status: int = handler(args)
    except ConfigError as exc:
        return fail(str(exc), 2)
    except CliError as exc:
        return fail(str(exc), exc.status)
    except EmbeddedError as exc:
        return fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`broker consume ... | head`): stop quietly
        with contextlib.suppress(OSError):  # nothing more may reach it, not even at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    return status


def fail(message: str, status: int) -> int:
    print(f"broker: error: {message}", file=sys.stderr, flush=True)
    return status


def module_main(add_parser: Callable[[Any], argparse.ArgumentParser], argv: list[str] | None) -> int:
    """Run one command group as its own program (``python -m broker.cli.limits limits ...``, the same as
    ``broker limits ...``)."""
    parser = argparse.ArgumentParser(prog="broker")
    add_parser(parser.add_subparsers(title="commands", metavar="COMMAND"))
    return run_parsed(parser, argv)
