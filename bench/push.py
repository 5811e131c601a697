"""Push delivery throughput: messages per second delivered to a local HTTPS receiver, against that receiver's
own ceiling measured in the same run.

One run starts a private redis-server (``bench.procs``), the receiver (``bench.push_receiver``: an HTTPS
server answering 204, with a throw-away CA and certificate made by trustme), and one ``broker worker``
process that trusts the CA through ``SSL_CERT_FILE`` and may push to loopback (``BROKER_PUSH_ALLOW_PRIVATE=1``).

1. The ceiling: wrk over HTTPS, 32 connections, POSTing a body of the size of a delivery.
2. For 1, 10 and 100 subscriptions: the messages are published first (spread evenly over the queues),
   then every queue is subscribed to the receiver (signed deliveries, as with a ``whsec_`` secret), and the
   remaining messages are counted every 20 ms until none is left. The rate is the messages acked between
   the first count that shows deliveries and the count that shows none left, over that time; CPU is that
   of the worker process (user + system) over the same window.

``python -m bench.push [--quick] [--profile N] [--compare COMMIT] [--clients]`` prints a table and writes
``bench/results/push.json``; ``--profile N`` records the worker with py-spy during the N-subscription row and
prints where its time goes; ``--compare COMMIT`` measures the worker of that commit too, against the same
ceiling; ``--clients`` measures httpx and aiohttp side by side against the receiver (CPU per request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis

from bench import machine, procs
from bench.procs import REPO, RESULTS_DIR, BenchError, RedisServer, free_port, redis_server, require_tool

if TYPE_CHECKING:
    from bench.suite import Suite

PROJECT = "pushbench"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: A typical small event (the payload of the main suite); a delivery body is about 300 bytes.
PAYLOAD = b'{"event":"order.created","order_id":"ord_7Hq2xZ81","customer_id":"cus_4711","amount_cents":1299,' \
          b'"currency":"EUR","items":[{"sku":"SKU-1234","qty":2}],"express":false}'
DELIVERY_BODY = (b'{"message_id":"18c2f0a1b2c00000001","payload":' + PAYLOAD
                 + b',"priority":0,"group_id":null,"attempts":1,"enqueued_at":"2026-11-30T08:00:00.000Z",'
                 b'"lease_expires_at":"2026-11-30T08:00:30.000Z"}')
CEILING_CONNECTIONS = 32
POLL_S = 0.02
STALL_S = 30.0
#: Other processes busy on more cores than this during a row: it is disturbed, measured again (``retries``), and
#: the least disturbed attempt is kept.
DISTURBED_CORES = 0.25


@dataclass(frozen=True)
class Config:
    quick: bool = False
    seconds: int = 10  # the wrk ceiling
    messages: int = 40_000  # per row
    subscriptions: tuple[int, ...] = (1, 10, 100)
    profile: int = 0  # py-spy on the row with this many subscriptions (0: none)
    compare: str = ""  # also measure the worker of this commit, in the same run
    clients: bool = False  # also measure httpx and aiohttp side by side against the receiver
    retries: int = 2  # a row that other processes disturbed (DISTURBED_CORES) is measured again, this often

    @classmethod
    def make(cls, quick: bool, profile: int) -> Config:
        if quick:
            return cls(quick=True, seconds=5, messages=10_000, profile=profile)
        return cls(profile=profile)


def max_concurrency_for(subscriptions: int) -> int:
    """The subscriptions' ``max_concurrency``: the largest allowed for a lone subscription, the default otherwise
    (10 subscriptions x 10 and 100 x 10 ask for 100 and 1000 deliveries at once to one endpoint)."""
    return 100 if subscriptions == 1 else 10


# --- processes --------------------------------------------------------------------------------------
@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> Tls:
    import trustme

    ca = trustme.CA(organization_name="push bench")
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    tls = Tls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(tls.ca))
    tls.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(tls.key))
    return tls


def _stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


@contextlib.contextmanager
def receiver(tls: Tls) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.push_receiver", str(port), str(tls.cert), str(tls.key)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            raise BenchError(f"the receiver did not start: {line}{proc.stdout.read() if proc.stdout else ''}")
        yield port, proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def worker(redis_url: str, tls: Tls, log: Path, code: Path = REPO) -> Iterator[subprocess.Popen[bytes]]:
    """One ``broker worker`` process (push delivery, arq's maintenance cron), importing the service from
    ``code`` (the repository, or another commit's copy for ``--compare``)."""
    env = {**os.environ, "BROKER_REDIS_URL": redis_url, "BROKER_PUSH_ALLOW_PRIVATE": "1",
           "SSL_CERT_FILE": str(tls.ca), "BROKER_LOG_LEVEL": "warning"}
    command = [sys.executable, "-c", "import sys; from broker.cli.main import main; sys.exit(main())", "worker"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=code, stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise BenchError(f"broker worker exited with {proc.returncode}: {log.read_text()[-2000:]}")
        yield proc
    finally:
        _stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (and its waited-for children), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# --- the ceiling ------------------------------------------------------------------------------------
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["content-type"] = "application/json"
wrk.headers["webhook-id"] = "18c2f0a1b2c00000001"
wrk.headers["webhook-timestamp"] = "1764489600"
wrk.headers["webhook-signature"] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
"""


def _rate(text: str) -> float:
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not match:
        raise BenchError(f"wrk printed no rate:\n{text[-1500:]}")
    return float(match.group(1))


def ceiling(port: int, receiver_pid: int, seconds: int, directory: Path) -> dict[str, Any]:
    binary = require_tool("wrk", "install it (apt-get install -y wrk)")
    script = directory / "push_ceiling.lua"
    script.write_text(WRK_SCRIPT.format(body=DELIVERY_BODY.decode()))
    args = [binary, "-t1", f"-c{CEILING_CONNECTIONS}", f"-d{seconds}s", "-s", str(script),
            f"https://127.0.0.1:{port}/hook"]
    subprocess.run([*args[:3], "-d1s", *args[4:]], capture_output=True, check=False, timeout=60)  # warm-up
    cpu0, wall0, meter = cpu_seconds(receiver_pid), time.monotonic(), machine.CpuMeter()
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=seconds + 60)
    cpu = (cpu_seconds(receiver_pid) - cpu0) / (time.monotonic() - wall0)
    others = meter.stop().get("other_cores", 0.0)
    errors = re.search(r"Socket errors: (.*)", done.stdout)
    return {"requests_per_s": round(_rate(done.stdout), 1), "connections": CEILING_CONNECTIONS,
            "receiver_cores": round(cpu, 2), "other_cores": others,
            "socket_errors": errors.group(1) if errors else None}


# --- one row ----------------------------------------------------------------------------------------
def _queue_names(subscriptions: int) -> list[str]:
    return [f"s{subscriptions}-q{i}" for i in range(subscriptions)]


async def _prepare(redis_url: str, queues: list[str], messages: int, url: str, concurrency: int) -> None:
    from broker.schemas import CreateQueueRequest
    from broker.services import open_services
    from broker.settings import Settings
    from broker.store.queues import OutgoingMessage
    from broker.store.subscriptions import SubscribeArgs, SubscriptionStore

    async with open_services(Settings.from_env({"BROKER_REDIS_URL": redis_url})) as services:
        store = services.store
        for name in queues:
            await store.create_queue(PROJECT, CreateQueueRequest(name=name))
        batch = [OutgoingMessage(payload=PAYLOAD)] * 100
        jobs = []
        for i, name in enumerate(queues):
            share = messages // len(queues) + (1 if i < messages % len(queues) else 0)
            for start in range(0, share, 100):
                jobs.append(store.publish(PROJECT, name, batch[: min(100, share - start)], batch=True))
        for start in range(0, len(jobs), 50):
            await asyncio.gather(*jobs[start : start + 50])
        subs = SubscriptionStore(store)
        for name in queues:
            args = SubscribeArgs(url=f"{url}/{name}", secret=SECRET, max_retries=None, visibility_s=30,
                                 dead_letter_queue=None, max_concurrency=concurrency)
            await subs.subscribe(PROJECT, name, args, new_id=f"sub_{name}")


async def _cleanup(redis_url: str, queues: list[str]) -> None:
    from broker.services import open_services
    from broker.settings import Settings

    async with open_services(Settings.from_env({"BROKER_REDIS_URL": redis_url})) as services:
        for name in queues:
            await services.store.delete_queue(PROJECT, name)


def _remaining(client: redis.Redis, queues: list[str]) -> int:
    from broker.store.keys import ProjectKeys

    keys = ProjectKeys(PROJECT)
    with client.pipeline(transaction=False) as pipe:
        for name in queues:
            pipe.hlen(keys.queue(name).msgs)
        return sum(int(n) for n in pipe.execute())


def _failures(client: redis.Redis, queues: list[str]) -> tuple[int, str]:
    from broker.store.keys import ProjectKeys

    keys = ProjectKeys(PROJECT)
    failures, last = 0, ""
    for name in queues:
        found = cast(dict[bytes, bytes], client.hgetall(keys.queue(name).subst))
        state = {k.decode(): v.decode() for k, v in found.items()}
        failures += int(state.get("consecutive_failures") or 0)
        last = state.get("last_error") or last
    return failures, last


def push_row(server: RedisServer, port: int, worker_pid: int, receiver_pid: int, redis_pid: int, subscriptions: int,
             config: Config, directory: Path, log: Any) -> dict[str, Any]:
    queues = _queue_names(subscriptions)
    concurrency = max_concurrency_for(subscriptions)
    asyncio.run(_prepare(server.url, queues, config.messages, f"https://127.0.0.1:{port}/hook", concurrency))
    client = server.client()
    total = _remaining(client, queues)
    start: tuple[float, int, dict[int, float]] | None = None
    pids = (worker_pid, receiver_pid, redis_pid)
    last_change, last_left = time.monotonic(), total
    spy: subprocess.Popen[str] | None = None
    spy_out = directory / f"push-{subscriptions}.collapsed"
    try:
        while True:
            left = _remaining(client, queues)
            now = time.monotonic()
            if start is None and left < total:
                start = (now, left, {pid: cpu_seconds(pid) for pid in pids})
                meter = machine.CpuMeter()
                if config.profile == subscriptions:
                    spy = start_pyspy(worker_pid, spy_out, seconds=3)
            if left != last_left:
                last_change, last_left = now, left
            if left == 0:
                break
            if now - last_change > STALL_S:
                failures, error = _failures(client, queues)
                raise BenchError(f"{subscriptions} subscriptions: no progress for {STALL_S:.0f} s with {left} "
                                 f"left ({failures} failures; last error: {error or 'none'})")
            time.sleep(POLL_S)
        end = time.monotonic()
        assert start is not None
        cpu = {pid: (cpu_seconds(pid) - start[2][pid]) / (end - start[0]) for pid in pids}
        others = meter.stop().get("other_cores", 0.0)
    finally:
        if spy is not None:
            spy.wait(60)
            if os.environ.get("PUSH_BENCH_KEEP_PROFILE"):
                shutil.copy(spy_out, os.environ["PUSH_BENCH_KEEP_PROFILE"])
        client.close()
        asyncio.run(_cleanup(server.url, queues))
    window = end - start[0]
    delivered = start[1]
    row: dict[str, Any] = {
        "subscriptions": subscriptions, "max_concurrency": concurrency, "messages": delivered,
        "seconds": round(window, 3), "messages_per_s": round(delivered / window, 1),
        "worker_cores": round(cpu[worker_pid], 2), "receiver_cores": round(cpu[receiver_pid], 2),
        "redis_cores": round(cpu[redis_pid], 2), "other_cores": others}
    if spy is not None and spy_out.exists():
        row["profile"] = profile_summary(spy_out)
    return row


# --- profile ----------------------------------------------------------------------------------------
def start_pyspy(pid: int, out: Path, seconds: int) -> subprocess.Popen[str]:
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        raise BenchError("py-spy is not installed (pip install -e '.[bench]')")
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
                             "--format", "raw", "--nonblocking", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


_PACKAGES = ("httpx", "httpcore", "anyio", "aiohttp", "yarl", "multidict", "h11", "ssl", "redis", "msgspec",
             "prometheus_client", "opentelemetry", "importlib", "arq", "uvloop", "asyncio", "broker", "hmac",
             "logging")


def _package(frame: str) -> str | None:
    match = re.search(r"\(([^()]*?)(?::\d+)?\)$", frame)
    path = match.group(1) if match else frame
    for name in _PACKAGES:
        if (path.startswith((f"{name}/", f"{name}.py")) or f"/{name}/" in path or path.endswith(f"/{name}.py")
                or f"<frozen {name}" in path):
            if name == "broker":
                sub = re.search(r"broker/(\w+/\w+)\.py", path)
                return f"broker/{sub.group(1)}" if sub else "broker"
            return name
    return None


def profile_summary(path: Path) -> dict[str, Any]:
    """Shares of the samples: by the innermost frame's package (self), and with a package anywhere on the
    stack (inclusive)."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        head, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = head.split(";")
        packages = [p for p in (_package(f) for f in frames) if p]
        own[packages[-1] if packages else "other"] += n
        for package in set(packages):
            anywhere[package] += n
    total = total or 1
    return {"samples": total,
            "self": {k: round(100 * v / total, 1) for k, v in own.most_common(14)},
            "inclusive": {k: round(100 * v / total, 1) for k, v in anywhere.most_common(14)}}


# --- the run ----------------------------------------------------------------------------------------
def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else "?"

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_changes": len(git("status", "--porcelain", "--", "broker").splitlines())}


def measured_row(server: RedisServer, port: int, worker_pid: int, receiver_pid: int, subscriptions: int,
                 config: Config, directory: Path, log: Any) -> dict[str, Any]:
    """One row, measured again while other processes disturbed it (up to ``retries`` times); the least
    disturbed attempt."""
    row = push_row(server, port, worker_pid, receiver_pid, server.proc.pid, subscriptions, config, directory, log)
    for _ in range(config.retries):
        if row["other_cores"] <= DISTURBED_CORES:
            break
        log(f"  disturbed (other processes at {row['other_cores']:.2f} cores); measuring again")
        again = push_row(server, port, worker_pid, receiver_pid, server.proc.pid, subscriptions, config, directory,
                         log)
        row = again if again["other_cores"] < row["other_cores"] else row
    return row


# --- the HTTP clients, side by side -------------------------------------------------------------------
CLIENT_REQUESTS = 3000
CLIENT_CONCURRENCY = 100


async def _client_run(name: str, url: str, context: Any) -> dict[str, float]:
    """``CLIENT_REQUESTS`` POSTs of a delivery body, ``CLIENT_CONCURRENCY`` at once, over kept-alive
    connections (after a warm-up that opens them); wall time and CPU of this process."""
    import aiohttp
    import httpx

    limit = asyncio.Semaphore(CLIENT_CONCURRENCY)
    headers = {"content-type": "application/json"}
    if name == "httpx":
        hx = httpx.AsyncClient(verify=context, trust_env=False, limits=httpx.Limits(
            max_connections=CLIENT_CONCURRENCY, max_keepalive_connections=CLIENT_CONCURRENCY))

        async def post() -> int:
            return (await hx.post(url, content=DELIVERY_BODY, headers=headers)).status_code

        close: Any = hx.aclose
    else:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit_per_host=CLIENT_CONCURRENCY),
                                        trust_env=False)

        async def post() -> int:
            async with session.post(url, data=DELIVERY_BODY, headers=headers, allow_redirects=False) as answer:
                await answer.read()
                return answer.status

        close = session.close

    async def one() -> None:
        async with limit:
            if await post() != 204:
                raise BenchError(f"{name}: the receiver did not answer 204")

    try:
        await asyncio.gather(*(one() for _ in range(2 * CLIENT_CONCURRENCY)))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(CLIENT_REQUESTS)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        await close()
    return {"requests_per_s": round(CLIENT_REQUESTS / wall, 1),
            "cpu_us_per_request": round(1e6 * cpu / CLIENT_REQUESTS)}


def clients(port: int, tls: Tls) -> dict[str, Any]:
    """httpx and aiohttp against the receiver, each on uvloop (when installed) and on asyncio's loop."""
    import ssl

    context = ssl.create_default_context(cafile=str(tls.ca))
    url = f"https://127.0.0.1:{port}/hook"
    found: dict[str, Any] = {"requests": CLIENT_REQUESTS, "concurrency": CLIENT_CONCURRENCY}
    for name in ("httpx", "aiohttp"):
        found[f"{name}, asyncio"] = asyncio.run(_client_run(name, url, context))
        with contextlib.suppress(ImportError):
            import uvloop

            found[f"{name}, uvloop"] = uvloop.run(_client_run(name, url, context))
    return found


def checkout(commit: str, target: Path) -> Path:
    """The service code (``broker/``) of ``commit``, unpacked into ``target``."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "broker"], cwd=REPO, capture_output=True, check=False)
    if archive.returncode != 0:
        raise BenchError(f"git archive {commit}: {archive.stderr.decode()[-500:]}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def run(config: Config, log: Any = print) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-push-"))
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **_commit(),
                               "config": asdict(config), "machine": machine.facts(), "rows": []}
    try:
        tls = make_tls(directory)
        with redis_server("push") as server, receiver(tls) as (port, recv):
            log(f"receiver ceiling: wrk, {CEILING_CONNECTIONS} connections, {config.seconds} s ...")
            results["ceiling"] = ceiling(port, recv.pid, config.seconds, directory)
            log(f"  {results['ceiling']['requests_per_s']:,.0f} requests/s")
            if config.clients:
                log("HTTP clients side by side ...")
                results["clients"] = clients(port, tls)
            variants = [("this", procs.CODE_DIR)]  # the suite's snapshot of the service during a suite run
            if config.compare:
                variants.append((config.compare, checkout(config.compare, directory / "compare")))
            for code_name, code in variants:
                with worker(server.url, tls, directory / f"worker-{code_name}.log", code) as proc:
                    for n in config.subscriptions:
                        log(f"push ({code_name} code), {n} subscription(s), {config.messages:,} messages ...")
                        row = {"code": code_name, **measured_row(server, port, proc.pid, recv.pid, n, config,
                                                                 directory, log)}
                        row["ratio"] = round(row["messages_per_s"] / results["ceiling"]["requests_per_s"], 3)
                        results["rows"].append(row)
                        log(f"  {row['messages_per_s']:,.0f} messages/s (ratio {row['ratio']:.3f}), worker at "
                            f"{row['worker_cores']:.2f} cores, other processes at {row['other_cores']:.2f}")
                        if "profile" in row:
                            log(json.dumps(row["profile"], indent=1))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return results


def section(suite: Suite) -> None:
    """Push delivery from the main suite (``push`` in its results): this module's whole run (receiver ceiling,
    then 1, 10 and 100 subscriptions), ``repeats`` times in a row, so that the measurements of one row are
    never back to back; each round's ratios are against that round's own ceiling. ``--quick`` uses the quick
    sizes; the full run measures the ceiling for the suite's ``seconds``."""
    c = suite.config
    config = Config.make(c.quick, 0)
    config = Config(**{**asdict(config), "retries": c.retries, **({} if c.quick else {"seconds": c.seconds})})
    rounds: list[dict[str, Any]] = []
    suite.results["push"] = {"config": asdict(config), "rounds": rounds}
    count = max(1, c.repeats)
    for number in range(1, count + 1):
        suite.log(f"push delivery: receiver ceiling, then {', '.join(map(str, config.subscriptions))} subscriptions, "
                  f"{config.messages:,} messages each" + (f" (repeat {number}/{count})" if count > 1 else ""))
        try:
            found = run(config, log=lambda text: suite.log("  " + text))
        except (BenchError, ImportError, OSError) as exc:
            suite.note(f"push delivery not measured: {exc}")
            return
        rounds.append({key: found[key] for key in ("date", "ceiling", "rows")})


def table(results: dict[str, Any]) -> str:
    c = results["ceiling"]
    lines = [f"push delivery, {results['date']}, commit {results['commit']}"
             f"{' (+ uncommitted changes)' if results['uncommitted_changes'] else ''}, "
             f"{'quick' if results['config']['quick'] else 'full'} run",
             f"receiver ceiling (wrk, {c['connections']} connections, HTTPS): {c['requests_per_s']:,.0f} requests/s "
             f"(receiver at {c['receiver_cores']:.2f} cores; other processes at {c['other_cores']:.2f} cores)",
             "",
             "| code | subscriptions | max_concurrency | messages | messages/s | / ceiling | worker cores "
             "| receiver cores | redis cores | other processes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    found = results.get("clients", {})
    lines[2:2] = [f"client {label} ({found['concurrency']} at once): {figures['requests_per_s']:,.0f} requests/s, "
                  f"{figures['cpu_us_per_request']} us CPU per request"
                  for label, figures in found.items() if isinstance(figures, dict)]
    for r in results["rows"]:
        lines.append(f"| {r['code']} | {r['subscriptions']} | {r['max_concurrency']} | {r['messages']:,} "
                     f"| {r['messages_per_s']:,.0f} | {r['ratio']:.3f} | {r['worker_cores']:.2f} "
                     f"| {r['receiver_cores']:.2f} | {r['redis_cores']:.2f} | {r['other_cores']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, a shorter ceiling")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="record the worker with py-spy during the row with N subscriptions")
    parser.add_argument("--compare", metavar="COMMIT", default="",
                        help="also measure the worker of COMMIT (its broker/ from git), in the same run")
    parser.add_argument("--clients", action="store_true",
                        help="also measure httpx and aiohttp side by side against the receiver")
    parser.add_argument("--subscriptions", type=str, default="1,10,100", help="rows to run (default 1,10,100)")
    args = parser.parse_args(argv)
    config = Config.make(args.quick, args.profile)
    config = Config(**{**asdict(config), "subscriptions": tuple(int(n) for n in args.subscriptions.split(",")),
                       "compare": args.compare, "clients": args.clients})
    try:
        results = run(config, log=lambda text: print(text, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"bench.push: {exc}", file=sys.stderr)
        return 1
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "push.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
