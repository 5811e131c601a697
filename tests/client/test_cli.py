"""The ``broker`` command as a client of a real server: queue, publish (one message, a file, stdin), consume,
dlq; JSON for scripts and tables for people; the contract's errors; where the server and key come from;
shell completion."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clientkit import Server, run_broker
from support import broker_command, clean_env

from broker.client import Client


def ok(*args: str, env: dict[str, str], input: bytes | None = None) -> str:
    done = run_broker(*args, env=env, input=input)
    assert done.returncode == 0, (args, done.stdout.decode(), done.stderr.decode())
    return done.stdout.decode()


def as_json(*args: str, env: dict[str, str]) -> Any:
    return json.loads(ok(*args, "--json", env=env))


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_queue_commands(server: Server, make_queue: Callable[..., str], client: Client) -> None:
    env = server.env()
    dlq = make_queue("cli-dlq")
    name = f"cli-{os.urandom(4).hex()}"
    created = as_json("queue", "create", name, "--max-retries", "2", "--visibility-timeout", "7", "--priority",
                      "--dead-letter-queue", dlq, env=env)
    assert (created["queue"], created["max_retries"], created["visibility_timeout_default"],
            created["enable_priority"], created["dead_letter_queue"]) == (name, 2, 7, True, dlq)
    try:
        assert name in [q["queue"] for q in as_json("queue", "list", "--page-size", "1", env=env)]
        listing = ok("queue", "list", env=env)
        assert name in listing and "QUEUE" in listing and "RETRIES" in listing
        assert as_json("queue", "get", name, env=env)["max_retries"] == 2
        updated = as_json("queue", "update", name, "--max-retries", "4", "--no-dead-letter-queue", "--no-priority",
                          env=env)
        assert (updated["max_retries"], updated["dead_letter_queue"], updated["enable_priority"]) == (4, None, False)
        client.publish(name, payload=1)
        assert as_json("queue", "stats", name, env=env)["available"] == 1
        table = ok("queue", "stats", name, dlq, env=env)
        assert "AVAILABLE" in table and name in table and dlq in table
        assert as_json("queue", "purge", name, env=env)["purged"] == 1
        assert "purged 0 message(s)" in ok("queue", "purge", name, "--yes", env=env)
    finally:
        assert as_json("queue", "delete", name, env=env) == {"queue": name, "deleted": True}
    assert f"no queue {name}" in ok("queue", "delete", name, env=env)


def test_publish_consume_ack_and_dead_letters(server: Server, make_queue: Callable[..., str],
                                              client: Client) -> None:
    env = server.env()
    queue = make_queue(max_retries=0, enable_priority=True)
    first = ok("publish", queue, '{"order_id": "o_1"}', env=env).strip()
    second = as_json("publish", queue, "[1, 2]", "--priority", "9", env=env)["message_id"]
    consumed = json_lines(ok("consume", queue, "--max", "5", "--json", env=env))
    assert [m["message_id"] for m in consumed] == [second, first]  # priority 9 first
    assert consumed[1]["payload"] == {"order_id": "o_1"} and consumed[0]["receipt"]
    assert client.stats(queue).in_flight == 2  # not acked without --ack
    client.nack(queue, message_id=second, requeue=False)
    client.ack(queue, message_id=first)
    ok("publish", queue, '"three"', env=env)
    table = ok("consume", queue, "--ack", env=env)
    assert "three" in table and "PAYLOAD" in table
    assert client.stats(queue).in_flight == 0
    letters = json_lines(ok("dlq", "list", queue, "--json", env=env))
    assert [(d["message_id"], d["reason"]) for d in letters] == [(second, "nack")]
    assert second in ok("dlq", "list", queue, "--all", env=env)
    assert as_json("dlq", "redrive", queue, env=env)["redriven"] == 1
    assert [m["payload"] for m in json_lines(ok("consume", queue, "--ack", "--json", env=env))] == [[1, 2]]
    empty = run_broker("consume", queue, env=env)
    assert empty.returncode == 0 and b"no message available" in empty.stderr


def test_consume_follow_stops_after_max(server: Server, queue: str, client: Client) -> None:
    client.publish_batch(queue, messages=[{"payload": n} for n in range(3)])
    command = broker_command("consume", queue, "--follow", "--ack", "--json", "--max", "5", "--wait", "2")
    with subprocess.Popen(command, env=server.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        got = [json.loads(proc.stdout.readline()) for _ in range(3)]
        client.publish_batch(queue, messages=[{"payload": n} for n in range(3, 6)])
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    got += json_lines(out.decode())
    assert [m["payload"] for m in got] == [0, 1, 2, 3, 4]
    assert client.stats(queue).available == 1 and client.stats(queue).in_flight == 0


def test_errors_print_the_contracts_code_and_exit_non_zero(server: Server, queue: str) -> None:
    env = server.env()
    missing = run_broker("queue", "get", "absent-queue", env=env)
    assert missing.returncode == 1
    assert missing.stderr.decode().startswith("broker: error: QUEUE_NOT_FOUND: ") and not missing.stdout
    as_script = run_broker("queue", "get", "absent-queue", "--json", env=env)
    error = json.loads(as_script.stderr)["error"]
    assert as_script.returncode == 1 and error["code"] == "QUEUE_NOT_FOUND" and error["status"] == 404
    assert error["request_id"]
    bad = run_broker("publish", queue, '{"a": 1}', "--priority", "12", env=env)
    assert bad.returncode == 1 and b"VALIDATION_ERROR" in bad.stderr and b"priority" in bad.stderr
    not_json = run_broker("publish", queue, "{nope", env=env)
    assert not_json.returncode == 1 and b"the message: not JSON" in not_json.stderr
    refused = run_broker("queue", "list", env=server.env(BROKER_KEY="wrong-key"))
    assert refused.returncode == 1 and b"UNAUTHORIZED" in refused.stderr
    nowhere = run_broker("queue", "list", env=clean_env(HOME="/nonexistent", BROKER_CONFIG="/nonexistent/c.toml"))
    assert nowhere.returncode == 2 and b"no server URL" in nowhere.stderr
    assert b"Traceback" not in missing.stderr + bad.stderr + nowhere.stderr


def write_lines(path: Path, count: int, start: int = 0) -> Path:
    with path.open("w") as out:
        for n in range(start, start + count):
            out.write(json.dumps({"n": n, "pad": "x" * 100}) + "\n")
    return path


def test_publish_file_and_stdin(server: Server, make_queue: Callable[..., str], client: Client,
                                tmp_path: Path) -> None:
    env = server.env()
    queue = make_queue()
    path = write_lines(tmp_path / "in.jsonl", 2500)
    with path.open("a") as out:
        out.write("\n   \n")  # blank lines are skipped
    summary = as_json("publish", queue, "--file", str(path), "--batch-size", "1000", env=env)
    assert summary["published"] == 2500 and summary["queue"] == queue and summary["rate"] > 0
    assert client.stats(queue).available == 2500
    piped = ok("publish", queue, "-", "--delay", "60", "--json", env=env, input=b'{"from": "stdin"}\n[1]\n')
    assert json.loads(piped)["published"] == 2
    assert client.stats(queue).delayed == 2
    people = run_broker("publish", queue, "--file", str(path), "--progress", env=env)
    assert people.returncode == 0
    assert b"msgs/s" in people.stderr and b"published 2,500 message(s)" in people.stderr


def test_publish_file_keeps_the_file_order_on_a_fifo_queue(server: Server, make_queue: Callable[..., str],
                                                           client: Client, tmp_path: Path) -> None:
    queue = make_queue(type="fifo")
    path = write_lines(tmp_path / "fifo.jsonl", 1200)
    ok("publish", queue, "--file", str(path), "--batch-size", "100", env=server.env())
    seen: list[int] = []
    while len(seen) < 1200:
        messages = client.consume(queue, max_messages=100).messages
        seen += [m.payload["n"] for m in messages]
        client.ack_batch(queue, messages=messages)
    assert seen == list(range(1200))


def test_a_bad_line_stops_the_file_and_a_rerun_publishes_the_rest_once(
        server: Server, make_queue: Callable[..., str], client: Client, tmp_path: Path) -> None:
    env = server.env()
    queue = make_queue()
    path = write_lines(tmp_path / "bad.jsonl", 250)
    lines = path.read_text().splitlines()
    lines[173] = '{"n": 173, broken'
    path.write_text("\n".join(lines) + "\n")
    failed = run_broker("publish", queue, "--file", str(path), "--batch-size", "50", "--concurrency", "1", env=env)
    assert failed.returncode == 1
    message = failed.stderr.decode()
    assert "line 174: not JSON" in message and "--idempotency-key" in message
    prefix = message.split("--idempotency-key ", 1)[1].split()[0]
    assert client.stats(queue).available == 150  # the batches before the bad line's
    lines[173] = '{"n": 173, "pad": "fixed"}'
    path.write_text("\n".join(lines) + "\n")
    again = as_json("publish", queue, "--file", str(path), "--batch-size", "50", "--idempotency-key", prefix, env=env)
    assert again["published"] == 250
    assert client.stats(queue).available == 250  # the 150 already stored were not stored again
    # A line the server refuses is named by its number too.
    lines[10] = '{"n": 10, "big": 1e400}'
    path.write_text("\n".join(lines[:20]) + "\n")
    refused = run_broker("publish", queue, "--file", str(path), env=env)
    assert refused.returncode == 1 and b"line 11" in refused.stderr and b"VALIDATION_ERROR" in refused.stderr


def _peak_rss_kib(args: list[str], env: dict[str, str]) -> int:
    proc = subprocess.Popen(broker_command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    return usage.ru_maxrss


@pytest.mark.slow
def test_publish_file_memory_stays_flat(server: Server, make_queue: Callable[..., str], tmp_path: Path) -> None:
    env = server.env()
    small, large = write_lines(tmp_path / "small.jsonl", 20_000), write_lines(tmp_path / "large.jsonl", 200_000)
    assert large.stat().st_size > 20 * 1024 * 1024
    rss = [_peak_rss_kib(["publish", make_queue(), "--file", str(path), "--json"], env) for path in (small, large)]
    # Ten times the lines, and more than 20 MiB more input: the peak grows by less than 10 MiB.
    assert rss[1] - rss[0] < 10 * 1024, rss


def test_server_and_key_from_flags_env_and_profiles(server: Server, queue: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'default = "good"\n\n[profiles.good]\nurl = "{server.url}"\nkey = "{server.key}"\n\n'
                      f'[profiles.bad]\nurl = "{server.url}"\nkey = "wrong-key"\n')
    config.chmod(0o600)
    base = clean_env(BROKER_CONFIG=str(config))
    assert as_json("queue", "get", queue, env=base)["queue"] == queue  # the file's default profile
    assert b"UNAUTHORIZED" in run_broker("queue", "get", queue, "--profile", "bad", env=base).stderr
    bad_by_env = {**base, "BROKER_PROFILE": "bad"}
    assert b"UNAUTHORIZED" in run_broker("queue", "get", queue, env=bad_by_env).stderr
    assert as_json("queue", "get", queue, "--key", server.key, env=bad_by_env)["queue"] == queue  # flag first
    assert as_json("queue", "get", queue, env={**bad_by_env, "BROKER_KEY": server.key})["queue"] == queue
    assert as_json("queue", "get", queue, "--url", server.url, "--key", server.key,
                   env=clean_env(BROKER_CONFIG=str(tmp_path / "none.toml")))["queue"] == queue
    unknown = run_broker("queue", "get", queue, "--profile", "nope", env=base)
    assert unknown.returncode == 2 and b"no profile 'nope'" in unknown.stderr and b"bad, good" in unknown.stderr
    config.chmod(0o644)
    warned = run_broker("queue", "get", queue, env=base)
    assert warned.returncode == 0 and b"other users can read it" in warned.stderr
    config.write_text("not = [toml")
    broken = run_broker("queue", "get", queue, env=base)
    assert broken.returncode == 2 and b"is not valid TOML" in broken.stderr


def test_help_and_shell_completion(tmp_path: Path) -> None:
    env = clean_env()
    for command in (["queue"], ["queue", "create"], ["publish"], ["consume"], ["dlq", "list"], ["dlq", "redrive"],
                    ["completion"]):
        text = ok(*command, "--help", env=env)
        assert "usage: broker " + " ".join(command) in text
    assert "BROKER_URL" in ok("publish", "--help", env=env)
    script = tmp_path / "broker.bash"
    script.write_text(ok("completion", "bash", env=env))
    probe = ('source "$1"; COMP_WORDS=(broker queue cr); COMP_CWORD=2; _shtab_broker; echo "${COMPREPLY[@]}"; '
             'COMP_WORDS=(broker publish q --con); COMP_CWORD=3; _shtab_broker; echo "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", probe, "probe", str(script)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["create", "--concurrency"]
    assert "#compdef broker" in ok("completion", "zsh", env=env)


def test_a_reader_that_goes_away_ends_the_command_quietly(server: Server, queue: str, client: Client) -> None:
    client.publish(queue, payload=0)
    with subprocess.Popen(broker_command("consume", queue, "--follow", "--json", "--wait", "1"), env=server.env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert json.loads(proc.stdout.readline())["payload"] == 0
        proc.stdout.close()  # as `| head -1` does; what it prints next has no reader
        client.publish_batch(queue, messages=[{"payload": n} for n in range(1, 4)])
        assert proc.wait(30) == 141
        assert proc.stderr.read() == b""
