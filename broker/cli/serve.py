"""``broker serve``: the HTTP API (and the background jobs) on the configured or embedded store."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import tempfile
from typing import Any

import uvicorn

from broker.cli.common import (
    ENVIRONMENT_HELP,
    CliError,
    check_external,
    check_scripts,
    graceful,
    run,
    say,
    settings_from,
    with_client,
)
from broker.embedded.supervisor import EmbeddedStore, StoreInUse
from broker.http.lifeline import PARENT_PID_VARIABLE
from broker.settings import Settings
from broker.store.apikeys import create_initial_key, open_key_accounts
from broker.store.durability import redact_url


def _check_port(host: str, port: int) -> None:
    """Fail before anything starts when the address cannot be bound (in use, unknown host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or exc
            raise CliError(f"cannot listen on {host}:{port}: {reason} (choose another with --port)") from None


def _first_key(settings: Settings, url: str) -> None:
    async def prepare(client: Any) -> str | None:
        key = await create_initial_key(client, settings.api_keys)
        await open_key_accounts(client, settings.api_keys, stored=True)
        return key

    key = run(with_client(url, prepare))
    if key:
        print(f'Created API key for project "default" (shown once): {key}', flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """``broker serve``: the HTTP API (and background jobs) on the configured or embedded store."""
    settings = settings_from(
        args, host=args.host, port=args.port, workers=args.workers, run_workers=False if args.no_workers else None
    )

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    check_scripts()
    _check_port(settings.host, settings.port)
    with graceful() as stack:
        if settings.redis_url:
            check_external(settings)
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
        if settings.workers > 1:
            # Prometheus multiprocess mode: every process of this server counts into files of one fresh
            # directory, so a scrape answered by any of them reports all (broker/telemetry/metrics.py). One
            # process serves in this one, which has imported prometheus-client already: it counts in memory.
            metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="broker-metrics-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            os.environ[PARENT_PID_VARIABLE] = str(os.getpid())  # its HTTP processes die with it (lifeline.py)
        _first_key(settings, url)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        say(f"store: {where}")
        say(
            f"listening on http://{host}:{settings.port} ({settings.workers} process(es), {loop}/{http}, "
            f"background jobs {'on' if settings.run_workers else 'off'})"
        )
        uvicorn.run(
            "broker.http.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop=loop,
            http=f"broker.http.server:{'HttpToolsServer' if http == 'httptools' else 'H11Server'}",
            lifespan="on",
            log_level=settings.log_level,
            log_config=None,  # each process configures logging itself (broker/telemetry/logs.py)
            access_log=False,  # the service writes its own line per request
            timeout_graceful_shutdown=25,  # long polls last at most 20 s
        )
    return 0


def add_parser(commands: Any, store: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``broker`` command's subparsers."""
    formatter = argparse.RawDescriptionHelpFormatter
    serve: argparse.ArgumentParser = commands.add_parser(
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
    return serve
