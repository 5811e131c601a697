"""The service as a deployment installs it: a wheel built from a clean clone, installed into a fresh virtualenv
in a directory with no source tree, serving the contract on a real Redis.

The clone (``git clone --no-local``) holds only committed files, so a script, module or package-data rule that
exists only in a developer's working tree cannot make this test pass. ``BROKER_TEST_WHEEL_SOURCE=worktree``
builds instead from the clone plus the working tree's uncommitted changes and new (not ignored) files, to check
packaging before a commit; ignored files (``build/``, ``*.egg-info``, ``.venv``) never take part.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port, redis_ready, stop_process, wait_until, wait_until_serving

from broker.embedded.supervisor import find_redis_server

REPO_ROOT = Path(__file__).resolve().parents[2]
#: setuptools' warnings about the licence metadata (a TOML table, classifiers), which the build must not print.
LICENCE_WARNING = re.compile(r"\w*Warning\b.*licen[cs]e", re.IGNORECASE)


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to its end; fail the test with its output if it fails."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited with {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def outside_env() -> dict[str, str]:
    """The environment of a process on a machine with no source tree: no BROKER_* variable, no virtualenv or
    Python path of the test run."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
    return {k: v for k, v in os.environ.items() if not k.startswith("BROKER_") and k not in dropped}


def git_lines(*args: str) -> list[str]:
    listed = subprocess.run(["git", *args, "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
    return [p for p in listed.stdout.decode().split("\0") if p]


def source_tree(dest: Path, env: dict[str, str]) -> Path:
    """A clone of the repository's committed tree, with the working tree's changes if asked for."""
    run(["git", "clone", "--quiet", "--no-local", str(REPO_ROOT), str(dest)], cwd=dest.parent, env=env)
    source = os.environ.get("BROKER_TEST_WHEEL_SOURCE", "head")
    if source == "worktree":
        changed = git_lines("diff", "--name-only", "HEAD") + git_lines("ls-files", "--others", "--exclude-standard")
        for rel in changed:
            if (REPO_ROOT / rel).is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO_ROOT / rel, dest / rel)
            else:
                (dest / rel).unlink(missing_ok=True)
    elif source != "head":
        pytest.fail(f"BROKER_TEST_WHEEL_SOURCE must be 'head' or 'worktree', not {source!r}")
    return dest


@dataclass
class Installed:
    """The wheel and the virtualenv it is installed in; ``workdir`` has no source tree in it or above it."""

    wheel: Path
    source: Path
    venv: Path
    workdir: Path
    env: dict[str, str]

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def lua_dir(self) -> Path:
        found = list(self.venv.glob("lib/python*/site-packages/broker/store/lua"))
        assert len(found) == 1, found
        return found[0]

    def broker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the installed ``broker`` command to its end (whatever its status)."""
        return subprocess.run(
            [self.bin("broker"), *args], cwd=self.workdir, env=self.env, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: the wheel is built from a clone of the repository")
    base = tmp_path_factory.mktemp("wheel")
    env = outside_env()
    source = source_tree(base / "source", env)

    built = run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", "dist", "."], cwd=source, env=env)
    warnings = [line.strip() for line in (built.stdout + built.stderr).splitlines() if LICENCE_WARNING.search(line)]
    assert not warnings, "the build warns about the licence metadata:\n" + "\n".join(warnings)
    (wheel,) = (source / "dist").glob("*.whl")

    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=base, env=env)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=base, env=env, timeout=300)
    workdir = base / "run"
    workdir.mkdir()
    return Installed(wheel, source, venv, workdir, env)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A throw-away redis-server that keeps what it acknowledges (so the start-up durability check passes)."""
    port = free_port()
    proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
         "--appendonly", "yes", "--appendfsync", "always"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: redis_ready(port), 10, what="the test redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


def test_the_wheel_holds_one_package_with_its_scripts(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    top_level = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"broker"}, f"the wheel installs more than the broker package: {sorted(top_level)}"

    lua = installed.source / "broker" / "store" / "lua"
    sources = {path.relative_to(installed.source).as_posix() for path in lua.rglob("*.lua")}
    assert sources, "no Lua scripts in the source tree"
    packaged = {name for name in names if name.endswith(".lua")}
    assert packaged == sources
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)

    # The installed package is the one imported, not a source tree.
    where = run([installed.bin("python"), "-c", "import broker; print(broker.__file__)"], installed.workdir,
                installed.env).stdout.strip()
    assert Path(where).is_relative_to(installed.venv), where
    version = tomllib.loads((installed.source / "pyproject.toml").read_text())["project"]["version"]
    assert installed.broker("--version").stdout.strip() == f"broker {version}"


def test_serve_from_the_wheel_publishes_consumes_and_acks(installed: Installed, private_redis: str) -> None:
    created = installed.broker("keys", "create", "--project", "smoke", "--redis-url", private_redis)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("bk_"), created.stdout

    port = free_port()
    out, err = installed.workdir / "serve.out", installed.workdir / "serve.err"
    with open(out, "wb") as out_file, open(err, "wb") as err_file:
        serve = subprocess.Popen(
            [installed.bin("broker"), "serve", "--port", str(port), "--redis-url", private_redis],
            cwd=installed.workdir, env=installed.env, stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(serve, base, 30, lambda: err.read_text(errors="replace"))
        with httpx.Client(base_url=f"{base}/v1/queue", headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            def post(path: str, body: dict[str, Any]) -> Any:
                answer = api.post(path, json=body)
                assert answer.status_code == 200, (path, answer.status_code, answer.text)
                return answer.json()

            queue = post("/create", {"name": "smoke", "enable_priority": True})
            assert queue["queue"] == "smoke" and queue["enable_priority"] is True
            published = post("/publish", {"queue": "smoke", "payload": {"n": 1}, "priority": 3})
            message_id = published["message_id"]
            consumed = post("/consume", {"queue": "smoke", "max_messages": 10, "wait_seconds": 1})
            messages = consumed["messages"]
            assert isinstance(messages, list) and len(messages) == 1, consumed
            (message,) = messages
            assert message["message_id"] == message_id and message["payload"] == {"n": 1}
            assert message["priority"] == 3 and message["attempts"] == 1
            acked = post("/ack", {"queue": "smoke", "message_id": message_id, "receipt": message["receipt"]})
            assert acked == {"message_id": message_id, "acked": True}
            stats = api.get("/stats/smoke").json()
            assert (stats["available"], stats["in_flight"], stats["dlq"]) == (0, 0, 0), stats
            unknown = api.get("/stats/nowhere")
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "QUEUE_NOT_FOUND"
        # The dashboard's files are package data too: served from the wheel as they are in the source.
        for path, name in (("/ui", "index.html"), *((f"/ui/assets/{n}", n) for n in ("ui.js", "dom.js", "ui.css"))):
            served = httpx.get(base + path, timeout=10)
            assert served.status_code == 200, (path, served.status_code)
            assert served.content == (installed.source / "broker" / "http" / "ui" / name).read_bytes(), path
    finally:
        status = stop_process(serve, timeout=40)  # SIGTERM: a clean stop exits 0
    assert status == 0, err.read_text()


@pytest.mark.parametrize(
    ("command", "script", "named"),
    [("serve", "ack.lua", "ack.lua"), ("worker", "ack.lua", "ack.lua"), ("serve", "include/message.lua", "message")],
)
def test_a_missing_script_stops_start_up_with_one_line(
    installed: Installed, private_redis: str, tmp_path: Path, command: str, script: str, named: str
) -> None:
    path = installed.lua_dir() / script
    aside = tmp_path / path.name
    shutil.move(path, aside)
    try:
        args = [command, "--redis-url", private_redis]
        if command == "serve":
            args += ["--port", str(free_port())]
        done = installed.broker(*args)
    finally:
        shutil.move(aside, path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1 and "Traceback" not in done.stdout + done.stderr, done.stderr
    assert lines[0].startswith("broker: error: ") and named in lines[0], lines[0]
