"""Turning a run's results into the markdown tables, the ratios against the targets, and the chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.targets import dig, div, issue_targets, markdown_lines

#: The targets of the "Observability and CLI" table (bench/observability.py, bench/cli_publish.py).
OBSERVABILITY_TARGETS = {
    "counters_ratio": (">=", 0.97, "single publish with the message counters / with the history alone (req/s)"),
    "scrape_seconds": ("<=", 1.0, "GET /metrics of a store with 10,000 queues, median (s)"),
    "cli_vs_batch": (">=", 0.5, "broker publish --file msgs/s / publish_batch msgs/s"),
    "cli_rss_ratio": ("<=", 1.5, "broker publish --file peak RSS, the whole file / a tenth of it"),
}
#: The store size the scrape target is about (a quick run measures a smaller one: no verdict).
SCRAPE_TARGET_QUEUES = 10_000


def rate(value: Any, unit: str = "msgs/s") -> str:
    if value is None:
        return "—"
    return f"{float(value):,.0f} {unit}"


def ms(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def number(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"


def percent(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}%"


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Every ratio of the report; ``growth`` holds each growth ratio."""
    ours, ceil, peers = results.get("ours", {}), results.get("ceilings", {}), results.get("peers", {})
    out: dict[str, Any] = {
        "publish_vs_noop": div(dig(ours, "publish", "request_rate"), dig(ceil, "noop", "request_rate")),
        "batch_vs_bullmq": div(dig(ours, "publish_batch", "msg_rate"),
                                  dig(peers, "bullmq", "addBulk", "jobs_per_second")),
        "e2e_vs_bullmq": div(dig(ours, "end_to_end", "msg_rate"),
                                dig(peers, "bullmq", "end_to_end", "jobs_per_second")),
        "e2e_vs_bullmq_worker": div(dig(ours, "end_to_end", "msg_rate"),
                                       dig(peers, "bullmq", "work", "jobs_per_second")),
        # The interleaved rounds when they ran (bench/work_loop.py), else the main section's figures.
        "work_loop_vs_bullmq_worker": dig(results, "work_loop", "ratio") or div(
            dig(ours, "work_loop", "msg_rate"), dig(peers, "bullmq", "work", "jobs_per_second")),
        "work_loop_separate_vs_bullmq_worker": div(dig(ours, "work_loop_separate", "msg_rate"),
                                                      dig(peers, "bullmq", "work", "jobs_per_second")),
        "work_loop_vs_noop": div(dig(ours, "work_loop", "msg_rate"), dig(ceil, "noop", "request_rate")),
        "e2e_vs_rabbitmq": div(dig(ours, "end_to_end", "msg_rate"),
                                  dig(peers, "rabbitmq", "end_to_end", "consume", "rate")),
        "publish_vs_bullmq_add": div(dig(ours, "publish", "request_rate"),
                                        dig(peers, "bullmq", "add", "jobs_per_second")),
        "publish_vs_rabbitmq": div(dig(ours, "publish", "request_rate"),
                                      dig(peers, "rabbitmq", "publish", "produce", "rate")),
        "publish_vs_redis": div(dig(ours, "publish", "request_rate"), dig(ceil, "redis", "publish", "msg_rate")),
        "p99_half_ms": dig(ours, "publish_half", "latency_ms", "p99"),
        "growth": {},
    }
    growth_values = []
    for kind, cases in results.get("growth", {}).items():
        for op in ("publish", "consume", "ack"):
            key = "request_rate" if op == "publish" else "msg_rate"
            value = div(dig(cases, "backlog", op, key), dig(cases, "empty", op, key))
            script = {"publish": "publish_usec", "consume": "claim100_usec", "ack": "ack100_usec"}[op]
            # Redis time per call: empty / backlog, so that below 1 means slower with the backlog.
            redis_ratio = div(dig(cases, "empty", "scripts", script), dig(cases, "backlog", "scripts", script))
            out["growth"][f"{kind}.{op}"] = {"http": value, "redis_cpu": redis_ratio}
            if value is not None:
                growth_values.append(value)
    out["growth_min"] = min(growth_values) if growth_values else None
    overheads = [m.get("overhead_bytes") for m in results.get("memory", {}).values() if m.get("overhead_bytes")]
    out["memory_overhead"] = max(overheads) if overheads else None
    out.update(observability_ratios(results))
    return out


def observability_ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The ratios of the "Observability and CLI" table; the with/without ones come from the run (medians of
    the per-round ratios)."""
    obs, cli = results.get("observability", {}), results.get("cli_publish_file", {})
    scrape = obs.get("scrape", {})
    http_median = dig(scrape, "http", "median_s")
    return {
        "counters_ratio": dig(obs, "counters", "ratio"),
        "counters_redis_usec_ratio": dig(obs, "counters", "redis_usec_ratio"),
        "counters_redis_alone_usec_ratio": dig(obs, "counters", "redis_alone_usec_ratio"),
        "log_console_ratio": dig(obs, "request_log", "ratio", "console"),
        "log_json_ratio": dig(obs, "request_log", "ratio", "json"),
        "scrape_seconds": http_median if (scrape.get("queues") or 0) >= SCRAPE_TARGET_QUEUES else None,
        "scrape_vs_reads": div(http_median, dig(scrape, "store_reads", "median_s")),
        "cli_vs_batch": div(dig(cli, "full", "msg_rate"), dig(results, "ours", "publish_batch", "msg_rate")),
        "cli_rss_ratio": div(dig(cli, "full", "peak_rss_kib"), dig(cli, "tenth", "peak_rss_kib")),
    }


def evaluate(results: dict[str, Any]) -> None:
    """Adds ``ratios``, ``targets`` (the performance issue's, ``bench.targets``) and ``observability_targets`` to
    ``results``; the ratios of the issue's targets are the figures kept there (the best repeat)."""
    computed = ratios(results)
    rows = issue_targets(results)
    computed.update({row["key"]: row["value"] for row in rows})
    results["ratios"], results["targets"] = computed, rows
    results["observability_targets"] = targets(computed)


def targets(computed: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the "Observability and CLI" table."""
    rows = []
    for key, (op, threshold, label) in OBSERVABILITY_TARGETS.items():
        value = computed.get(key)
        met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        rows.append({"key": key, "label": label, "value": value, "target": f"{op} {threshold:g}", "met": met})
    return rows


def throughput_rows(results: dict[str, Any]) -> list[tuple[str, str, str, Any, Any, Any, str]]:
    """(group, operation, unit, value, p50 ms, p99 ms, notes) for every throughput figure."""
    c = results.get("config", {})
    ours, ceil, peers = results.get("ours", {}), results.get("ceilings", {}), results.get("peers", {})
    rows: list[tuple[str, str, str, Any, Any, Any, str]] = []

    def wrk_row(group: str, label: str, data: Any, key: str, unit: str, notes: str = "") -> None:
        if data:
            lat = data.get("latency_ms", {})
            extra = " (ran dry; rate over the active time)" if data.get("ran_dry") else ""
            rows.append((group, label, unit, data.get(key), lat.get("p50"), lat.get("p99"), notes + extra))

    wrk_row("ceiling", f"no-op JSON endpoint, same stack, {c.get('connections')} conns", ceil.get("noop"),
            "request_rate", "req/s")
    wrk_row("ceiling", f"no-op JSON endpoint, 2 processes (uvicorn --workers 2), {c.get('connections')} conns, "
            "wrk 2 threads", ceil.get("noop_w2"), "request_rate", "req/s")
    redis = ceil.get("redis", {})
    for op, label in (("publish", "publish script, 1 msg/call"), ("publish_batch", "publish script, 100 msgs/call"),
                      ("claim", "claim script, 100 msgs/call"), ("ack", "ack script, 100 msgs/call")):
        if op in redis:
            r = redis[op]
            rows.append(("ceiling", f"Redis alone: {label}, pipelined {r.get('depth')} deep", "msgs/s",
                         r.get("msg_rate"), None, None, f"{r.get('redis_usec_per_call')} µs Redis CPU per call"))
    wrk_row("ours", f"publish, 1 msg/request, {c.get('connections')} conns", ours.get("publish"), "request_rate",
            "req/s")
    wrk_row("ours", f"publish, 1 msg/request, 2 API processes, {c.get('connections')} conns, wrk 2 threads",
            ours.get("publish_w2"), "request_rate", "req/s")
    half = ours.get("publish_half")
    if half:
        wrk_row("ours", f"publish paced at half max ({half.get('target_rate'):,.0f} req/s target)", half,
                "request_rate", "req/s", "Redis appendfsync always")
    nofsync = ours.get("publish_half_nofsync")
    if nofsync:
        wrk_row("ours", f"publish paced at half max ({nofsync.get('target_rate'):,.0f} req/s target)", nofsync,
                "request_rate", "req/s", "Redis appendfsync no (AOF on): the service's part of the latency")
    wrk_row("ours", f"publish_batch of 100, {c.get('batch_connections')} conns", ours.get("publish_batch"),
            "msg_rate", "msgs/s", "latency per batch")
    wrk_row("ours", f"consume 100 + ack_batch 100, {c.get('consume_connections')} conns", ours.get("consume_ack"),
            "msg_rate", "msgs/s", "latency of consume and ack requests together")
    e2e = ours.get("end_to_end")
    if e2e:
        rows.append(("ours", f"end to end: {c.get('e2e_producers')} publish_batch + {c.get('e2e_consumers')} "
                     "consume/ack conns", "msgs/s", e2e.get("msg_rate"), None, None,
                     f"acked; published {rate(e2e.get('published_rate'))}, backlog left {e2e.get('backlog_after')}"))
    wrk_row("ours", f"work loop: long-poll consume 1 + ack 1 on the next consume, {c.get('connections')} conns",
            ours.get("work_loop"), "msg_rate", "msgs/s", "one request per message")
    wrk_row("ours", f"work loop: long-poll consume 1 + ack 1 as its own request, {c.get('connections')} conns",
            ours.get("work_loop_separate"), "msg_rate", "msgs/s", "latency of consume and ack requests together")
    bull = peers.get("bullmq")
    if bull:
        rows.append(("BullMQ", f"addBulk of 100, {c.get('batch_connections')} in flight", "jobs/s",
                     dig(bull, "addBulk", "jobs_per_second"), dig(bull, "addBulk", "p50_ms"),
                     dig(bull, "addBulk", "p99_ms"), "latency per batch"))
        rows.append(("BullMQ", f"add, {c.get('add_inflight')} in flight", "jobs/s",
                     dig(bull, "add", "jobs_per_second"), dig(bull, "add", "p50_ms"),
                     dig(bull, "add", "p99_ms"), ""))
        rows.append(("BullMQ", f"Worker, concurrency {c.get('worker_concurrency')}, no-op processor", "jobs/s",
                     dig(bull, "work", "jobs_per_second"), None, None, "removeOnComplete"))
        rows.append(("BullMQ", "end to end: addBulk producers + Worker", "jobs/s",
                     dig(bull, "end_to_end", "jobs_per_second"), None, None,
                     f"completed; added {rate(dig(bull, 'end_to_end', 'added_per_second'), 'jobs/s')}"))
    rabbit = peers.get("rabbitmq")
    if rabbit:
        rows.append(("RabbitMQ", f"publish, persistent + confirms, {c.get('connections')} in flight", "msgs/s",
                     dig(rabbit, "publish", "produce", "rate"), dig(rabbit, "publish", "produce", "p50_ms"),
                     dig(rabbit, "publish", "produce", "p99_ms"), "aio-pika client"))
        rows.append(("RabbitMQ", "end to end: publisher + consumer (prefetch 100, ack each)", "msgs/s",
                     dig(rabbit, "end_to_end", "consume", "rate"), None, None,
                     f"acked; published {rate(dig(rabbit, 'end_to_end', 'produce', 'rate'))}"))
    return rows


def markdown(results: dict[str, Any]) -> str:
    evaluate(results)
    computed = results["ratios"]
    repeats = int(dig(results, "config", "repeats") or 1)
    lines = [*markdown_lines(results["targets"], repeats), "", "### Throughput and latency", "",
             "| | operation | throughput | p50 | p99 | notes |", "|---|---|---:|---:|---:|---|"]
    for group, label, unit, value, p50, p99, remark in throughput_rows(results):
        lines.append(f"| {group} | {label} | {rate(value, unit)} | {ms(p50)} | {ms(p99)} | {remark} |")
    growth = results.get("growth", {})
    if growth:
        lines += ["", "### Growth: a queue holding the backlog vs an empty one", "",
                  "| priorities | operation | empty | backlog | backlog / empty | Redis µs/call empty | backlog "
                  "| Redis ratio |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for kind, cases in growth.items():
            for op, key, unit, script in (("publish", "request_rate", "req/s", "publish_usec"),
                                          ("consume", "msg_rate", "msgs/s", "claim100_usec"),
                                          ("ack", "msg_rate", "msgs/s", "ack100_usec")):
                g = computed["growth"].get(f"{kind}.{op}", {})
                lines.append(
                    f"| {'on' if kind == 'prio_on' else 'off'} | {op} | {rate(dig(cases, 'empty', op, key), unit)} "
                    f"| {rate(dig(cases, 'backlog', op, key), unit)} | {number(g.get('http'))} "
                    f"| {number(dig(cases, 'empty', 'scripts', script), 1)} "
                    f"| {number(dig(cases, 'backlog', 'scripts', script), 1)} | {number(g.get('redis_cpu'))} |")
    memory = results.get("memory", {})
    if memory:
        lines += ["", "### Redis memory per message", "",
                  "| priorities | messages | bytes/message | payload | beyond the payload |",
                  "|---|---:|---:|---:|---:|"]
        for kind, m in memory.items():
            lines.append(f"| {'on' if kind == 'prio_on' else 'off'} | {m['messages']:,} | {m['bytes_per_message']:.0f} "
                         f"| {m['payload_bytes']} | {m['overhead_bytes']:.0f} |")
    lines += ["", "### Other ratios (no target)", "", "| ratio | measured |", "|---|---:|"]
    for key, label in (("growth_min", "1M backlog / empty, the lowest of publish, consume, ack (prio off and on)"),
                       ("p99_half_ms", "p99 of single publish at half its max, appendfsync always (ms)"),
                       ("publish_vs_bullmq_add", "single publish req/s / BullMQ add jobs/s"),
                       ("publish_vs_rabbitmq", "single publish req/s / RabbitMQ publish msgs/s"),
                       ("e2e_vs_bullmq_worker", "end to end / BullMQ Worker alone (no producers)"),
                       ("work_loop_separate_vs_bullmq_worker",
                        "work loop with the ack as its own request / BullMQ Worker alone"),
                       ("work_loop_vs_noop", "work loop msgs/s / no-op req/s (one request per message)"),
                       ("e2e_vs_rabbitmq", "end to end / RabbitMQ end to end"),
                       ("publish_vs_redis", "single publish req/s / Redis-alone publish script calls/s")):
        if computed.get(key) is not None:
            lines.append(f"| {label} | {number(computed[key])} |")
    lines += work_loop_lines(results)
    lines += observability_lines(results, computed)
    lines += profile_lines(results)
    notes: list[str] = results.get("notes") or []
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def work_loop_lines(results: dict[str, Any]) -> list[str]:
    """The interleaved rounds of the work loop against BullMQ's Worker (bench/work_loop.py)."""
    wl = results.get("work_loop") or {}
    rounds = wl.get("rounds") or []
    if not rounds:
        return []
    lines = ["", f"### Work loop vs BullMQ Worker, {len(rounds)} interleaved rounds of {wl.get('seconds')} s", "",
             f"| round | ours: consume 1 carrying the previous ack, {wl.get('connections')} conns "
             "| ours: consume 1, then ack 1 | BullMQ Worker, concurrency "
             f"{wl.get('concurrency')} | ours (ack on consume) / BullMQ | others' cores (max) |",
             "|---|---:|---:|---:|---:|---:|"]
    cpu = results.get("cpu", {})
    for i, r in enumerate(rounds, 1):
        others = max((cpu.get(f"work_loop.{side}.{i}", {}).get("other_cores", 0) for side in r), default=0)
        lines.append(f"| {i} | {rate(dig(r, 'ackon', 'msg_rate'))} | {rate(dig(r, 'separate', 'msg_rate'))} "
                     f"| {rate(dig(r, 'bullmq', 'msg_rate'), 'jobs/s')} "
                     f"| {number(div(dig(r, 'ackon', 'msg_rate'), dig(r, 'bullmq', 'msg_rate')))} "
                     f"| {others:.2f} |")
    lines.append(f"| median | {rate(dig(wl, 'ackon', 'msg_rate'))} | {rate(dig(wl, 'separate', 'msg_rate'))} "
                 f"| {rate(dig(wl, 'bullmq', 'msg_rate'), 'jobs/s')} | {number(wl.get('ratio'))} | |")
    lines.append(f"\nAck on the next consume / ack as its own request (median of the rounds): "
                 f"{number(wl.get('ackon_vs_separate'))}.")
    return lines


def usec(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f} µs"


def seconds(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f} s"


def mib(kib: Any) -> str:
    return "—" if kib is None else f"{float(kib) / 1024:.0f} MiB"


def observability_lines(results: dict[str, Any], computed: dict[str, Any]) -> list[str]:
    """The table "Observability and CLI": each figure next to its baseline or ceiling of the same run."""
    obs, cli = results.get("observability", {}), results.get("cli_publish_file", {})
    if not obs and not cli:
        return []
    verdicts = {row["key"]: row for row in targets(computed)}

    def verdict(key: str) -> tuple[str, str]:
        row = verdicts.get(key)
        if row is None:
            return "", ""
        return row["target"], "—" if row["met"] is None else ("yes" if row["met"] else "**no**")

    rows: list[tuple[str, str, str, str, str, str]] = []  # figure, measured, baseline, ratio, key, notes
    counters = obs.get("counters")
    if counters:
        rounds = len(dig(counters, "with", "rounds") or [])
        rows.append((f"single publish, message counters on ({counters.get('connections')} conns, median of {rounds} "
                     f"round{'s' if rounds != 1 else ''})", rate(dig(counters, "with", "request_rate"), "req/s"),
                     "history alone (the counters' writes emptied): "
                     f"{rate(dig(counters, 'without', 'request_rate'), 'req/s')}",
                     number(computed.get("counters_ratio")), "counters_ratio",
                     f"median of the per-round ratios {dig(counters, 'with', 'round_ratios')}"))
        if dig(counters, "neither", "request_rate"):
            rows.append(("single publish, counters and history on",
                         rate(dig(counters, "with", "request_rate"), "req/s"),
                         "neither (flush_tallies emptied): "
                         f"{rate(dig(counters, 'neither', 'request_rate'), 'req/s')}",
                         number(dig(counters, "ratio_with_neither")), "", "median of the per-round ratios"))
        rows.append(("CPU time per request during those runs (API process + Redis), counters on",
                     usec(dig(counters, "with", "cpu_usec_per_request")),
                     f"history alone: {usec(dig(counters, 'without', 'cpu_usec_per_request'))}",
                     number(dig(counters, "cpu_per_request_ratio")), "",
                     f"median of the per-round ratios {dig(counters, 'cpu_per_request_ratios')}"))
        rows.append(("Redis CPU per publish script call during those runs, counters on",
                     usec(dig(counters, "with", "redis_usec_per_call")),
                     f"history alone: {usec(dig(counters, 'without', 'redis_usec_per_call'))}",
                     number(computed.get("counters_redis_usec_ratio")), "", "INFO commandstats"))
        alone = dig(counters, "with", "redis_alone") or {}
        rows.append((f"Redis CPU per publish script call, the script alone pipelined ({alone.get('calls', 0):,} calls "
                     "each way)", usec(alone.get("redis_usec_per_call")),
                     f"history alone: {usec(dig(counters, 'without', 'redis_alone', 'redis_usec_per_call'))}",
                     number(computed.get("counters_redis_alone_usec_ratio")), "",
                     "alternating blocks of 1,000 calls"))
    log = obs.get("request_log")
    if log:
        for label, key in (("console", "log_console_ratio"), ("json", "log_json_ratio")):
            rows.append((f"single publish, request log on ({label}, BROKER_LOG_LEVEL=info)",
                         rate(dig(log, label, "request_rate"), "req/s"),
                         f"log off (warning): {rate(dig(log, 'off', 'request_rate'), 'req/s')}",
                         number(computed.get(key)), key,
                         f"{dig(log, label, 'access_lines_per_request')} access lines and "
                         f"{dig(log, label, 'log_bytes_per_request')} B per request"))
    scrape = obs.get("scrape")
    if scrape:
        http = scrape.get("http", {})
        reads = scrape.get("store_reads", {})
        rows.append((f"GET /metrics, {scrape.get('queues', 0):,} queues ({scrape.get('queues_with_messages')} with "
                     f"messages), median of {scrape.get('runs')}",
                     seconds(http.get("median_s")),
                     f"store reads alone (Store.queue_metrics): {seconds(reads.get('median_s'))}",
                     number(computed.get("scrape_vs_reads")), "scrape_seconds",
                     f"max {seconds(http.get('max_s'))}; {http.get('samples', 0):,} samples, "
                     f"{http.get('bytes', 0) / 1e6:.1f} MB; rendering alone {seconds(reads.get('render_median_s'))}"))
    full, tenth = cli.get("full"), cli.get("tenth")
    if full:
        rows.append((f"broker publish --file, {full.get('lines', 0):,} lines (wall clock of the process)",
                     rate(full.get("msg_rate")),
                     f"publish_batch of 100: {rate(dig(results, 'ours', 'publish_batch', 'msg_rate'))}",
                     number(computed.get("cli_vs_batch")), "cli_vs_batch",
                     f"{rate(full.get('cli_rate'))} by the CLI's own clock; queue holds "
                     f"{full.get('queue_available'):,} ({'exact' if full.get('exact') else '**not exact**'})"))
    if full and tenth:
        extra = (full["peak_rss_kib"] - tenth["peak_rss_kib"]) * 1024 / max(1, full["lines"] - tenth["lines"])
        rows.append((f"broker publish --file, peak RSS, {full.get('lines', 0):,} lines", mib(full.get("peak_rss_kib")),
                     f"{tenth.get('lines', 0):,} lines: {mib(tenth.get('peak_rss_kib'))}",
                     number(computed.get("cli_rss_ratio")), "cli_rss_ratio",
                     f"{extra:.0f} B per extra line (a line is {cli.get('line_bytes')} B); queue holds "
                     f"{tenth.get('queue_available'):,} ({'exact' if tenth.get('exact') else '**not exact**'})"))
    lines = ["", "### Observability and CLI", "",
             "| figure | measured | baseline or ceiling (same run) | ratio | target | met | notes |",
             "|---|---:|---|---:|---:|---|---|"]
    for figure, measured, baseline, ratio_text, key, notes in rows:
        target, met = verdict(key) if key else ("", "")
        if key == "scrape_seconds":  # a target on the time itself, at the full store size
            target = f"{target} s (at {SCRAPE_TARGET_QUEUES:,} queues)"
        lines.append(f"| {figure} | {measured} | {baseline} | {ratio_text} | {target} | {met} | {notes} |")
    return lines


def profile_lines(results: dict[str, Any]) -> list[str]:
    profile = results.get("profile")
    if not profile:
        return []
    lines = ["", "### Profile (py-spy on the worker, share of samples)", ""]
    python, native, batch = profile.get("python", {}), profile.get("native", {}), profile.get("batch_python", {})
    loop = profile.get("work_loop_python", {})
    sources = (python, native, batch, loop)
    lines += ["| where | publish, Python frames | publish, Python + C frames | publish_batch, Python frames "
              "| work loop, Python frames |", "|---|---:|---:|---:|---:|"]
    categories: list[str] = []
    for source in sources:
        categories += [k for k in source.get("categories", {}) if k not in categories]
    for category in categories:
        lines.append(f"| {category} | " + " | ".join(percent(s.get("categories", {}).get(category)) for s in sources)
                     + " |")
    lines.append("| (requests/s while sampled) | "
                 + " | ".join(rate(s.get("request_rate_while_profiled"), "") for s in sources) + " |")
    for label, share in native.get("syscalls", {}).items():
        lines.append(f"| system call: {label} | | {share:.1f}% | | |")
    gc = profile.get("gc")
    if gc:
        lines += ["", f"GC pauses during single publish paced at {gc.get('rate', 0):,.0f} req/s:", "",
                  "| | p50 | p99 | gen 2 collections | gen 2 max | gen 1 max | gen 0 max |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for label, title in (("as_is", "as the service runs now"), ("freeze", "with gc.freeze() after start-up")):
            data = gc.get(label)
            if not data:
                continue
            pauses = data.get("gc", {}).get("pauses", {})
            lines.append(
                f"| {title} | {ms(dig(data, 'latency_ms', 'p50'))} | {ms(dig(data, 'latency_ms', 'p99'))} "
                f"| {dig(pauses, '2', 'collections') or 0} | {ms(dig(pauses, '2', 'max_ms'))} "
                f"| {ms(dig(pauses, '1', 'max_ms'))} | {ms(dig(pauses, '0', 'max_ms'))} |")
    return lines


COLORS = {"ceiling": "#9e9e9e", "ours": "#1f6feb", "BullMQ": "#d9480f", "RabbitMQ": "#2b8a3e"}


def chart_groups(results: dict[str, Any]) -> list[tuple[str, list[tuple[str, str, Any]]]]:
    """(operation, [(system, label, per second)]) in the order of the chart."""
    ours, ceil, peers = results.get("ours", {}), results.get("ceilings", {}), results.get("peers", {})
    return [
        ("single publish", [
            ("ceiling", "no-op endpoint, same stack (req/s)", dig(ceil, "noop", "request_rate")),
            ("ceiling", "Redis alone, publish script", dig(ceil, "redis", "publish", "msg_rate")),
            ("ours", "publish (req/s)", dig(ours, "publish", "request_rate")),
            ("BullMQ", "add, 50 in flight", dig(peers, "bullmq", "add", "jobs_per_second")),
            ("RabbitMQ", "publish, confirms", dig(peers, "rabbitmq", "publish", "produce", "rate")),
        ]),
        ("batch publish (100)", [
            ("ceiling", "Redis alone, publish script x100", dig(ceil, "redis", "publish_batch", "msg_rate")),
            ("ours", "publish_batch", dig(ours, "publish_batch", "msg_rate")),
            ("BullMQ", "addBulk", dig(peers, "bullmq", "addBulk", "jobs_per_second")),
        ]),
        ("consume + ack", [
            ("ceiling", "Redis alone, claim script x100", dig(ceil, "redis", "claim", "msg_rate")),
            ("ceiling", "Redis alone, ack script x100", dig(ceil, "redis", "ack", "msg_rate")),
            ("ours", "consume 100 + ack_batch", dig(ours, "consume_ack", "msg_rate")),
            ("ours", "work loop, consume 1 + ack 1", dig(ours, "work_loop", "msg_rate")),
            ("BullMQ", "Worker, concurrency 50", dig(peers, "bullmq", "work", "jobs_per_second")),
        ]),
        ("end to end", [
            ("ours", "publish_batch + consume/ack", dig(ours, "end_to_end", "msg_rate")),
            ("BullMQ", "addBulk + Worker", dig(peers, "bullmq", "end_to_end", "jobs_per_second")),
            ("RabbitMQ", "publish + consume", dig(peers, "rabbitmq", "end_to_end", "consume", "rate")),
        ]),
    ]


def chart(results: dict[str, Any], path: Path) -> bool:
    """Horizontal bars of messages (jobs, requests) per second, grouped by operation, coloured by system:
    ours, the peers, the ceilings (log scale). False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return False
    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    separators: list[tuple[float, str]] = []
    for operation, bars in chart_groups(results):
        present = [b for b in bars if b[2]]
        if not present:
            continue
        separators.append((len(labels) - 0.5, operation))
        for system, label, value in present:
            labels.append(label if system in ("ours", "ceiling") else f"{system}: {label}")
            values.append(float(value))
            colors.append(COLORS[system])
    if not values:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.36 * len(values) + 0.5 * len(separators) + 1.4))
    y = list(range(len(values)))
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(left=10 ** math.floor(math.log10(max(1.0, min(values)))), right=max(values) * 5)
    for yi, value in zip(y, values, strict=True):
        ax.text(value * 1.06, yi, f"{value:,.0f}/s", va="center", fontsize=7)
    for position, operation in separators:
        if position > 0:
            ax.axhline(position, color="#333333", linewidth=0.6)
        ax.text(ax.get_xlim()[1] / 1.08, position + 0.55, operation, ha="right", va="center", fontsize=8,
                fontweight="bold")
    machine = results.get("machine", {})
    ax.set_title(f"Throughput by operation: ours, peers, ceilings ({machine.get('nproc')} cores, "
                 f"{machine.get('cpu')}; {results.get('config', {}).get('seconds')} s per figure)", fontsize=9)
    ax.set_xlabel("messages, jobs or requests per second (log scale)")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(handles=[Patch(color=c, label=k) for k, c in COLORS.items()], fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main() -> None:
    """``python -m bench.report results.json``: render the tables and the chart of a saved run again."""
    import json
    import sys

    path = Path(sys.argv[1])
    results = json.loads(path.read_text())
    evaluate(results)
    table = markdown(results)
    path.with_suffix(".md").write_text(table)
    chart(results, path.with_name("throughput.png"))
    print(table)


if __name__ == "__main__":
    main()
