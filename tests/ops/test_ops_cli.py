"""The ``broker`` command line: help on every command, one-line configuration errors with exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opskit import Processes
from support import broker_command, clean_env, wait_until

import broker.cli.worker
from broker.cli.main import main
from broker.settings import Settings

COMMANDS = [[], ["serve"], ["worker"], ["keys"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "broker")
def test_help_of_every_command(command: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: broker {' '.join(command)}".rstrip())
    assert len(out.splitlines()) > 5


def test_help_through_the_console_script(procs: Processes) -> None:
    result = procs.run("--help", env=clean_env())
    assert result.returncode == 0, result.stderr
    for command in ("serve", "worker", "keys"):
        assert command in result.stdout


def test_no_command_prints_usage(capsys: Any) -> None:
    assert main([]) == 2
    assert "usage: broker" in capsys.readouterr().err


CONFIG_ERRORS = [
    ({"BROKER_MAX_LONG_POLLS": "lots"}, [], "BROKER_MAX_LONG_POLLS"),
    ({"BROKER_REDIS_URL": "http://localhost"}, [], "BROKER_REDIS_URL"),
    ({"BROKER_API_KEYS": "no-separator"}, [], "BROKER_API_KEYS"),
    ({"BROKER_LOG_LEVEL": "loud"}, [], "BROKER_LOG_LEVEL"),
    ({"BROKER_RUN_WORKERS": "maybe"}, [], "BROKER_RUN_WORKERS"),
    ({"BROKER_ACCEPT_WEAK_DURABILITY": "2"}, [], "BROKER_ACCEPT_WEAK_DURABILITY"),
    ({}, ["--port", "70000"], "--port"),
    ({}, ["--workers", "0"], "--workers"),
    ({}, ["--redis-url", "localhost:6379"], "BROKER_REDIS_URL"),
]


@pytest.mark.parametrize(
    ("variables", "flags", "named"),
    CONFIG_ERRORS,
    ids=[f"{c[2]}-{i}" for i, c in enumerate(CONFIG_ERRORS)],
)
def test_configuration_error_is_one_line_and_exit_2(
    procs: Processes, tmp_path: Path, variables: dict[str, str], flags: list[str], named: str
) -> None:
    env = clean_env(BROKER_DATA_DIR=str(tmp_path / "data"), **variables)
    result = procs.run("serve", *flags, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("broker: error: ")
    assert named in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists(), "nothing starts on a configuration error"


def test_keys_commands_report_configuration_errors_too(procs: Processes) -> None:
    result = procs.run("keys", "list", env=clean_env(BROKER_API_KEYS="p:short"))
    assert result.returncode == 2
    assert result.stderr.startswith("broker: error: BROKER_API_KEYS")
    assert len(result.stderr.strip().splitlines()) == 1


def test_invalid_project_name_is_a_usage_error(procs: Processes, tmp_path: Path) -> None:
    result = procs.run("keys", "create", "--project", "no spaces", env=clean_env(BROKER_DATA_DIR=str(tmp_path)))
    assert result.returncode == 2
    assert "is not a project name" in result.stderr


def test_run_workers_variable() -> None:
    assert Settings.from_env({}).run_workers is True
    assert Settings.from_env({"BROKER_RUN_WORKERS": "0"}).run_workers is False
    assert Settings.from_env({"BROKER_RUN_WORKERS": ""}).run_workers is True
    assert Settings.from_env({"BROKER_RUN_WORKERS": "1"}, run_workers=False).run_workers is False


def test_worker_without_a_store_explains_itself(procs: Processes, env: dict[str, str]) -> None:
    result = procs.run("worker", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("broker: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("coroutine", [False, True], ids=["sync", "async"])
def test_worker_calls_run_worker_with_the_settings(
    procs: Processes, monkeypatch: pytest.MonkeyPatch, coroutine: bool
) -> None:
    _, port = procs.redis_server("--appendonly", "yes")
    url = f"redis://127.0.0.1:{port}/0"
    calls: list[Settings] = []

    def run_worker(settings: Settings) -> None:
        calls.append(settings)

    async def run_worker_async(settings: Settings) -> None:
        calls.append(settings)

    monkeypatch.setattr(broker.cli.worker, "run_worker", run_worker_async if coroutine else run_worker)
    for name in [k for k in os.environ if k.startswith("BROKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BROKER_REDIS_URL", "redis://127.0.0.1:1/0")  # overridden by the flag
    assert main(["worker", "--redis-url", url]) == 0
    [settings] = calls
    assert settings.redis_url == url
    assert os.environ["BROKER_REDIS_URL"] == url


def test_worker_runs_on_an_external_redis_and_stops_on_sigterm(procs: Processes, tmp_path: Path) -> None:
    pytest.importorskip("broker.jobs.arq_worker")
    _, port = procs.redis_server("--appendonly", "yes", "--appendfsync", "always")
    out = tmp_path / "worker.out"
    with open(out, "wb") as sink:
        worker = subprocess.Popen(
            broker_command("worker", "--redis-url", f"redis://127.0.0.1:{port}/0"),
            env=clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    procs.started.append(worker)
    wait_until(lambda: "Starting worker" in out.read_text() or worker.poll() is not None, 20,
               what=lambda: f"the worker starting\n{out.read_text()}")
    assert worker.poll() is None, out.read_text()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0, out.read_text()
    assert "Traceback" not in out.read_text()
