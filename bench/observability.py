"""What observability costs, each against a baseline or ceiling measured in the same run:

- **counters**: single publish with the ``broker_messages_*_total`` counters the scripts keep in Redis, against
  a snapshot of the code whose counters' own writes (the functions of ``COUNTER_FUNCTIONS`` in
  ``broker/store/lua/include/lifecycle.lua``) do nothing: the baseline keeps the per-minute history of
  ``queue.history``, a feature of its own. A third snapshot, whose ``flush_tallies()`` does nothing (neither
  counters nor history), shows what the two cost together. Also the Redis CPU per publish script call every
  way (during the HTTP runs, and pipelined alone);
- **request log**: single publish with one ``broker.access`` line per request (``BROKER_LOG_LEVEL=info``, the
  console and the JSON format; the server's output goes to a file) against the log off (``warning``);
- **scrape**: ``GET /metrics`` on a store of 10,000 queues, against the store reads alone
  (``Store.queue_metrics`` of every project, as the route does) called directly in Python.

The two single-publish comparisons run their stacks side by side (a Redis and an API each, the idle ones cost
nothing) and measure them in interleaved rounds, the order reversed every other round, so that a change in
what else runs on the machine hits every side alike; a side's figure is the median of its rounds, a ratio the
median of the per-round ratios."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench import procs
from bench.backlog import settle_aof
from bench.load import run_wrk
from bench.procs import BenchError, HttpServer, RedisServer, api_env, http_server, redis_server
from bench.redis_side import ScriptCalls, evalsha_usec, pipelined

if TYPE_CHECKING:
    from bench.suite import Api, Suite

#: The functions the counters comparison empties in the copied lifecycle.lua (each definition, whole): what
#: the counters write beyond the history. ``flush_tallies`` emptied removes the history too.
COUNTER_FUNCTIONS = ("write_counters", "fold_minute")
LIFECYCLE = Path("broker", "store", "lua", "include", "lifecycle.lua")


def function_pattern(name: str) -> re.Pattern[str]:
    """A top-level ``local function name(...)`` of a Lua file, up to its ``end`` at column 0."""
    return re.compile(rf"^local function {name}\((?P<params>[^)]*)\)\n.*?^end\n", re.MULTILINE | re.DOTALL)

def section(suite: Suite) -> None:
    out: dict[str, Any] = {}
    suite.results["observability"] = out
    out["counters"] = counters(suite)
    out["request_log"] = request_log(suite)
    out["scrape"] = scrape(suite)


# --- stacks -----------------------------------------------------------------------------------------------
@dataclass
class Stack:
    redis: RedisServer
    server: HttpServer
    api: Api


@contextlib.contextmanager
def code_dir(path: Path | None) -> Iterator[None]:
    """Start processes from the code snapshot at ``path`` (the run's own snapshot when None)."""
    previous = procs.CODE_DIR
    if path is not None:
        procs.CODE_DIR = path
    try:
        yield
    finally:
        procs.CODE_DIR = previous


@contextlib.contextmanager
def stacks(suite: Suite, specs: dict[str, tuple[dict[str, str], Path | None]]) -> Iterator[dict[str, Stack]]:
    """One private Redis and one API per label of ``specs``: (environment beyond ``api_env``, code snapshot),
    all running at once; each gets the queue ``publish``."""
    from bench.suite import API_FACTORY, API_KEY, PROJECT, Api

    with contextlib.ExitStack() as exit_stack:
        started: dict[str, Stack] = {}
        for label, (extra_env, code) in specs.items():
            redis = exit_stack.enter_context(redis_server(label))
            env = {**api_env(redis.url, PROJECT, API_KEY), **extra_env}
            with code_dir(code):
                server = exit_stack.enter_context(http_server(API_FACTORY, env, suite.config.workers))
            api = Api(server)
            exit_stack.callback(api.client.close)
            api.create_queue("publish")
            started[label] = Stack(redis, server, api)
        yield started


def rounds_order(labels: list[str], index: int) -> list[str]:
    return labels if index % 2 == 0 else labels[::-1]


def median(values: list[float], digits: int = 3) -> float | None:
    return round(statistics.median(values), digits) if values else None


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` so far, from /proc (0.0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def redis_cpu_seconds(client: Any) -> float:
    """CPU time (user + system, every thread) the redis-server has used so far (INFO cpu)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def single_publish(suite: Suite, name: str, by_label: dict[str, Stack],
                   after: Callable[[str, Stack], dict[str, Any]] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Single publish (``publish.lua``, the connections of the main figure) on every stack, in interleaved
    rounds after a one-second warm-up each. Each result adds the Redis CPU per EVALSHA during the run (INFO
    commandstats of the stack's own Redis) and what ``after`` returns (``after`` also runs once after the
    warm-up, its answer dropped)."""
    c = suite.config
    labels = list(by_label)
    for label, stack in by_label.items():
        run_wrk(stack.api.url, "publish.lua", suite.args("publish"), c.connections, 1, c.wrk_threads)
        if after is not None:
            after(label, stack)
    out: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    for index in range(c.ab_rounds):
        for label in rounds_order(labels, index):
            stack = by_label[label]

            def once(stack: Stack = stack, label: str = label) -> dict[str, Any]:
                pid = stack.server.proc.pid
                with stack.redis.client() as client:
                    calls_before, usec_before = evalsha_usec(client)
                    cpu_before = redis_cpu_seconds(client), process_cpu_seconds(pid)
                    result = run_wrk(stack.api.url, "publish.lua", suite.args("publish"), c.connections,
                                     c.seconds, c.wrk_threads)
                    cpu_after = redis_cpu_seconds(client), process_cpu_seconds(pid)
                    calls_after, usec_after = evalsha_usec(client)
                calls = calls_after - calls_before
                requests = max(1, result.summary()["requests"])
                redis_cpu, api_cpu = (1e6 * (b - a) for a, b in zip(cpu_before, cpu_after, strict=True))
                return {**result.summary(), "script_calls": calls,
                        "redis_usec_per_call": round((usec_after - usec_before) / max(1, calls), 2),
                        "redis_cpu_usec_per_call": round(redis_cpu / max(1, calls), 2),
                        "api_cpu_usec_per_request": round(api_cpu / requests, 2),
                        "cpu_usec_per_request": round((redis_cpu + api_cpu) / requests, 2),
                        **(after(label, stack) if after else {})}

            result = suite.measure(f"{name}.{label}.{index + 1}", once,
                                   settle=functools.partial(settle_aof, stack.redis))
            if result["bad_status"] or sum(result["errors"].values()):
                suite.note(f"{name}.{label}: failed requests (status {result['bad_status']}, socket "
                           f"{result['errors']})")
            out[label].append(result)
    return out


def per_round_ratio(rounds: dict[str, list[dict[str, Any]]], label: str, baseline: str,
                    key: str = "request_rate") -> float | None:
    pairs = zip(rounds[label], rounds[baseline], strict=True)
    return median([a[key] / b[key] for a, b in pairs if b.get(key)])


def side(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"request_rate": median([r["request_rate"] for r in results]),
            "redis_usec_per_call": median([r["redis_usec_per_call"] for r in results]),
            "redis_cpu_usec_per_call": median([r["redis_cpu_usec_per_call"] for r in results]),
            "cpu_usec_per_request": median([r["cpu_usec_per_request"] for r in results]),
            "p99_ms": median([r["latency_ms"].get("p99", 0.0) for r in results]), "rounds": results}


# --- counters -----------------------------------------------------------------------------------------------
def snapshot_emptied(source: Path, target: Path, functions: tuple[str, ...]) -> Path:
    """A copy of the code snapshot at ``source`` whose ``functions`` of lifecycle.lua do nothing (the scripts
    still add up their counts with ``tally()``). Stops the run when a substitution finds nothing."""
    shutil.copytree(source / "broker", target / "broker", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    path = target / LIFECYCLE
    text = path.read_text()
    for name in functions:
        text, count = function_pattern(name).subn(rf"local function {name}(\g<params>)\nend\n", text)
        if count != 1:
            raise BenchError(f"counters: `local function {name}(...)` ... `end` found {count} times in {LIFECYCLE} "
                             "(expected once): update COUNTER_FUNCTIONS in bench/observability.py")
    path.write_text(text)
    return target


def publish_script(code: Path) -> tuple[str, str]:
    """(sha, source) of the publish script as the service at ``code`` loads it (its own loader, in a process
    importing that code)."""
    program = ("import json; from broker.store.scripts import Library; s = Library.load().publish; "
               "print(json.dumps([s.sha, s.source]))")
    done = procs.run([sys.executable, "-c", program], timeout=60, cwd=code)
    if done.returncode != 0:
        raise BenchError(f"counters: loading the scripts of {code} failed:\n{done.stderr[-1500:]}")
    sha, source = json.loads(done.stdout)
    return str(sha), str(source)


def counters(suite: Suite, compare: tuple[str, Path] | None = None) -> dict[str, Any]:
    """The counters comparison; ``compare`` (a commit and its code) adds that code as it is as a fourth side
    (HTTP rounds only: its publish script may take other arguments)."""
    from bench.suite import PROJECT

    c = suite.config
    snapshots = {"without": snapshot_emptied(procs.CODE_DIR, suite.tmp / "code-without-counters", COUNTER_FUNCTIONS),
                 "neither": snapshot_emptied(procs.CODE_DIR, suite.tmp / "code-without-tallies", ("flush_tallies",))}
    calls = ScriptCalls(PROJECT)
    original = calls.scripts.lua.publish
    scripts = {label: publish_script(code) for label, code in snapshots.items()}
    if len({original.sha, *(sha for sha, _ in scripts.values())}) != 3:
        raise BenchError("counters: a patched publish script is the original one: the comparison would measure "
                         "nothing")
    suite.log(f"counters: single publish with counters and history, with the history alone, with neither; "
              f"{c.ab_rounds} interleaved rounds of {c.seconds} s, {c.connections} connections")
    out: dict[str, Any] = {"patched": {"without": f"{', '.join(COUNTER_FUNCTIONS)} emptied in {LIFECYCLE.as_posix()}",
                                       "neither": f"flush_tallies emptied in {LIFECYCLE.as_posix()}"},
                           "connections": c.connections, "seconds": c.seconds}
    specs: dict[str, tuple[dict[str, str], Path | None]] = {
        "with": ({}, None), "without": ({}, snapshots["without"]), "neither": ({}, snapshots["neither"])}
    if compare is not None:
        specs["compare"] = ({}, compare[1])
        out["compare"] = compare[0]
    with stacks(suite, specs) as by_label:
        rounds = single_publish(suite, "counters", by_label)
        out["stored"] = stored = {label: stored_counts(stack.redis, PROJECT) for label, stack in by_label.items()}
        if not stored["with"]["published"] or stored["without"]["ctr_fields"] or not stored["without"]["hist_fields"] \
                or stored["neither"]["hist_fields"] or ("compare" in stored and not stored["compare"]["ctr_fields"]):
            raise BenchError(f"counters: what the stacks stored does not match their snapshots: {stored}")

        suite.log("counters: the publish script alone, pipelined, every way")
        redis = by_label["with"].redis
        by_label["with"].api.create_queue("raw")
        one = calls.publish("raw", [suite.payload])
        variants = {"with": one, **{label: (one[0], sha, *one[2:]) for label, (sha, _) in scripts.items()}}
        with redis.client() as client:
            calls.load(client)
            for label, (sha, source) in scripts.items():
                if client.script_load(source) != sha:
                    raise BenchError(f"counters: Redis computed another SHA for the {label} publish script")
            alone = suite.measure("counters.alone", lambda: alternating(client, variants, c.connections,
                                                                        3 * c.ab_rounds * min(c.seconds, 3)),
                                  settle=functools.partial(settle_aof, redis))
    for label in by_label:
        out[label] = side(rounds[label])
        out[label]["redis_alone"] = alone.get(label)
        out[label]["round_ratios"] = round_ratios(rounds, label, "without")
    if compare is not None:
        out["ratio_compare"] = per_round_ratio(rounds, "compare", "without")
        out["cpu_per_request_ratio_compare"] = per_round_ratio(rounds, "compare", "without", "cpu_usec_per_request")
        out["cpu_per_request_ratios_compare"] = round_ratios(rounds, "compare", "without", "cpu_usec_per_request")
    out["ratio"] = per_round_ratio(rounds, "with", "without")
    out["ratio_spread"] = spread(out["with"]["round_ratios"])
    out["ratio_with_neither"] = per_round_ratio(rounds, "with", "neither")
    out["redis_usec_ratio"] = per_round_ratio(rounds, "with", "without", "redis_usec_per_call")
    out["redis_cpu_ratio"] = per_round_ratio(rounds, "with", "without", "redis_cpu_usec_per_call")
    out["cpu_per_request_ratio"] = per_round_ratio(rounds, "with", "without", "cpu_usec_per_request")
    out["cpu_per_request_ratios"] = round_ratios(rounds, "with", "without", "cpu_usec_per_request")
    for label in ("with", "neither"):
        suffix = "" if label == "with" else "_neither"
        for measure, key in (("redis_usec_per_call", "redis_alone_usec_ratio"),
                             ("redis_cpu_usec_per_call", "redis_alone_cpu_ratio")):
            base = alone["without"][measure]
            out[key + suffix] = round(alone[label][measure] / base, 3) if base else None
    return out


def stored_counts(redis: RedisServer, project: str) -> dict[str, Any]:
    """What a stack stored for its queue ``publish``: the counter as /metrics reads it (queue_metrics), and the
    fields of its "ctr" and "hist" hashes."""
    from broker.store.keys import ProjectKeys

    calls = ScriptCalls(project)
    keys = ProjectKeys(project)
    script = calls.scripts.lua.queue_metrics
    with redis.client() as client:
        reply = client.evalsha(script.sha, 1, keys.queues, keys.tag, int(time.time() * 1000), "", 100) \
            if client.script_exists(script.sha)[0] else client.eval(script.source, 1, keys.queues, keys.tag,
                                                                       int(time.time() * 1000), "", 100)
        rows = {row[0].decode(): row for row in reply[1:]}
        queue = keys.queue("publish")
        return {"published": int(rows["publish"][6]) if "publish" in rows else None,
                "ctr_fields": client.hlen(queue.ctr), "hist_fields": client.hlen(queue.hist)}


def round_ratios(rounds: dict[str, list[dict[str, Any]]], label: str, baseline: str,
                 key: str = "request_rate") -> list[float]:
    return [round(a[key] / b[key], 3) for a, b in zip(rounds[label], rounds[baseline], strict=True) if b.get(key)]


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "max": max(values),
            "stdev": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0}


def alternating(client: Any, variants: dict[str, tuple[Any, ...]], depth: int, seconds: float,
                block: int = 1000) -> dict[str, dict[str, Any]]:
    """Each variant's call pipelined ``depth`` deep, in alternating blocks of ``block`` calls for ``seconds``
    in all (so that whatever else slows Redis meanwhile slows every variant alike): calls per second and Redis
    CPU per call (INFO commandstats) of each."""
    totals = {label: [0, 0.0, 0.0, 0.0] for label in variants}  # calls, seconds, Redis usec, Redis CPU seconds
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline or index < 2:
        for label in rounds_order(list(variants), index):
            cpu_before = redis_cpu_seconds(client)
            run, _ = pipelined(client, [variants[label]] * block, depth)
            total = totals[label]
            total[3] += redis_cpu_seconds(client) - cpu_before
            total[0] += run.calls
            total[1] += run.seconds
            total[2] += run.redis_usec_per_call * run.calls
        index += 1
    return {label: {"calls": int(calls), "calls_per_second": round(calls / secs, 1) if secs else None,
                    "redis_usec_per_call": round(usec / calls, 2) if calls else None,
                    "redis_cpu_usec_per_call": round(1e6 * cpu / calls, 2) if calls else None, "blocks": index}
            for label, (calls, secs, usec, cpu) in totals.items()}


# --- request log --------------------------------------------------------------------------------------------
LOG_SPECS = {"off": {"BROKER_LOG_LEVEL": "warning"},
             "console": {"BROKER_LOG_LEVEL": "info", "BROKER_LOG_FORMAT": "console"},
             "json": {"BROKER_LOG_LEVEL": "info", "BROKER_LOG_FORMAT": "json"}}


def request_log(suite: Suite) -> dict[str, Any]:
    c = suite.config
    suite.log(f"request log: single publish with the log off, on (console), on (JSON); {c.ab_rounds} interleaved "
              f"rounds of {c.seconds} s")
    read_to: dict[str, int] = {}

    def lines(label: str, stack: Stack) -> dict[str, Any]:
        """``broker.access`` lines the server wrote (to its log file) since the last look."""
        with stack.server.log.open("rb") as log:
            log.seek(read_to.get(label, 0))
            text = log.read()
            read_to[label] = log.tell()
        return {"access_lines": sum(1 for line in text.splitlines() if b"broker.access" in line),
                "log_bytes": len(text)}

    with stacks(suite, {label: (env, None) for label, env in LOG_SPECS.items()}) as by_label:
        rounds = single_publish(suite, "request_log", by_label, after=lines)
    out: dict[str, Any] = {"connections": c.connections, "seconds": c.seconds,
                           "environment": LOG_SPECS, "ratio": {}}
    for label in LOG_SPECS:
        out[label] = side(rounds[label])
        requests = sum(r["requests"] for r in rounds[label])
        written = sum(r["access_lines"] for r in rounds[label])
        out[label]["access_lines_per_request"] = round(written / requests, 3) if requests else None
        out[label]["log_bytes_per_request"] = round(sum(r["log_bytes"] for r in rounds[label]) / max(1, requests), 1)
        if label != "off":
            out["ratio"][label] = per_round_ratio(rounds, label, "off")
            if written < 0.95 * requests:
                suite.note(f"request log ({label}): {written} access lines for {requests} requests")
    if out["off"]["access_lines_per_request"]:
        suite.note("request log (off): the server wrote access lines with BROKER_LOG_LEVEL=warning")
    return out


# --- scrape -------------------------------------------------------------------------------------------------
def queue_names(count: int) -> list[str]:
    return [f"q{i:05d}" for i in range(count)]


async def _fill_store(redis_url: str, queues: list[str], with_messages: int, each: int, payload: bytes) -> None:
    """Create ``queues`` through the service's own Store (its create script, calls pipelined by its pipe) and
    publish ``each`` messages to the first ``with_messages`` of them."""
    import redis.asyncio as aioredis

    from bench.suite import PROJECT
    from broker.schemas import CreateQueueRequest
    from broker.store.queues import OutgoingMessage, Store

    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=32)
    client = aioredis.Redis(connection_pool=pool)
    store = Store(client)
    try:
        for start in range(0, len(queues), 500):
            await asyncio.gather(*(store.create_queue(PROJECT, CreateQueueRequest(name=name))
                                   for name in queues[start:start + 500]))
        messages = [OutgoingMessage(payload)] * each
        await asyncio.gather(*(store.publish(PROJECT, name, messages, batch=True) for name in queues[:with_messages]))
    finally:
        await store.scripts.close()
        await client.aclose()


async def _store_reads(redis_url: str, runs: int) -> dict[str, Any]:
    """Time ``store_metrics`` (what GET /metrics reads) ``runs`` times, then the text rendering of its answer."""
    import redis.asyncio as aioredis

    from broker.http.routes.metrics import store_metrics
    from broker.store.queues import Store
    from broker.telemetry.metrics import exposition, render_store

    client = aioredis.Redis.from_url(redis_url)
    store = Store(client)
    seconds: list[float] = []
    render: list[float] = []
    found: list[Any] = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            found, up = await store_metrics(store)
            seconds.append(time.perf_counter() - started)
            if not up:
                raise BenchError("scrape: the store did not answer the metrics reads")
        for _ in range(runs):
            started = time.perf_counter()
            exposition(render_store(found, True, store.clock()))
            render.append(time.perf_counter() - started)
    finally:
        await store.scripts.close()
        await client.aclose()
    return {"seconds": [round(s, 4) for s in seconds], "median_s": median(seconds, 4), "max_s": round(max(seconds), 4),
            "queues": len(found), "render_seconds": [round(s, 4) for s in render], "render_median_s": median(render, 4)}


def scrape(suite: Suite) -> dict[str, Any]:
    from bench.suite import api_stack

    c = suite.config
    names = queue_names(c.scrape_queues)
    with_messages = min(c.scrape_with_messages, len(names))
    each = 20
    out: dict[str, Any] = {"queues": len(names), "queues_with_messages": with_messages, "messages_each": each,
                           "runs": c.scrape_runs}
    with api_stack(c, "scrape") as (redis, api):
        suite.log(f"scrape: creating {len(names):,} queues, {with_messages} of them with {each} messages")
        started = time.perf_counter()
        asyncio.run(_fill_store(redis.url, names, with_messages, each, suite.payload))
        out["fill_seconds"] = round(time.perf_counter() - started, 2)
        settle = functools.partial(settle_aof, redis)

        def over_http() -> dict[str, Any]:
            seconds: list[float] = []
            body = b""
            with httpx.Client(base_url=api.url, timeout=120) as client:
                for _ in range(c.scrape_runs):
                    started = time.perf_counter()
                    answer = client.get("/metrics")
                    seconds.append(time.perf_counter() - started)
                    if answer.status_code != 200:
                        raise BenchError(f"scrape: GET /metrics answered {answer.status_code}: {answer.text[:500]}")
                    body = answer.content
            lines = body.decode().splitlines()
            samples = [line for line in lines if line and not line.startswith("#")]
            return {"seconds": [round(s, 4) for s in seconds], "median_s": median(seconds, 4),
                    "max_s": round(max(seconds), 4), "samples": len(samples), "bytes": len(body),
                    "queues_seen": sum(1 for line in samples if line.startswith("broker_messages_published_total{"))}

        suite.log(f"scrape: GET /metrics x {c.scrape_runs}, then the store reads alone x {c.scrape_runs}")
        out["http"] = suite.measure("scrape.http", over_http, settle=settle)
        out["store_reads"] = suite.measure("scrape.store_reads",
                                           lambda: asyncio.run(_store_reads(redis.url, c.scrape_runs)), settle=settle)
    if out["http"]["queues_seen"] != len(names) or out["store_reads"]["queues"] != len(names):
        suite.note(f"scrape: {out['http']['queues_seen']} queues in GET /metrics and {out['store_reads']['queues']} "
                   f"in the store reads, of {len(names)}")
    return out


# --- on its own -----------------------------------------------------------------------------------------------
SECTIONS: dict[str, Callable[[Suite], dict[str, Any]]] = {"counters": counters, "request_log": request_log,
                                                           "scrape": scrape}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.observability [--only counters] [--rounds N] ...``: these sections alone, without the
    main section (no ceiling of its own: each comparison has its baseline in the same run)."""
    import argparse
    import tempfile

    from bench.__main__ import log
    from bench.procs import RESULTS_DIR, snapshot_code

    parser = argparse.ArgumentParser(prog="bench.observability", description=main.__doc__)
    parser.add_argument("--only", choices=tuple(SECTIONS), action="append", help="run only this section (repeatable)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each measurement (default 10)")
    parser.add_argument("--quiet-wait", type=int, default=30, help="wait up to this long for a quiet machine")
    parser.add_argument("--retries", type=int, default=1, help="measure a disturbed round again up to N times")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "observability.json", help="results file")
    parser.add_argument("--compare", metavar="COMMIT", default="",
                        help="counters: also measure the code of this commit as it is, in the same rounds")
    args = parser.parse_args(argv)
    code_dir = Path(tempfile.mkdtemp(prefix="bench-code-"))
    try:
        code = snapshot_code(code_dir)
        if args.compare:
            from bench.push import checkout

            compare = (args.compare, checkout(args.compare, code_dir / "compare"))
            SECTIONS["counters"] = functools.partial(counters, compare=compare)
        from bench.suite import Config, Suite

        suite = Suite(Config(seconds=args.seconds, ab_rounds=args.rounds, quiet_wait=args.quiet_wait,
                             retries=args.retries), log)
        suite.results["code"] = code
        started = time.monotonic()
        found: dict[str, Any] = {}
        suite.results["observability"] = found
        for name in args.only or list(SECTIONS):
            found[name] = SECTIONS[name](suite)
        suite.results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(suite.results, indent=2) + "\n")
    summary = {name: {k: v for k, v in value.items() if "ratio" in k or k == "stored"} for name, value in found.items()}
    print(json.dumps({"summary": summary, "cpu": suite.results["cpu"], "notes": suite.results["notes"]}, indent=2))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
