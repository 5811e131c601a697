"""The table "Targets of the performance issue" (``targets`` in latest.json): every target figure next to its
ceiling or baseline of the same run. Each figure was measured ``repeats`` times, interleaved (``Suite.repeated``:
the sides of one figure one right after the other, then all of that again); a repeat's figure is the ratio of its
own pair, the best repeat is kept and the spread of all of them is reported. Runs recorded before repeats existed
render as one repeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: key -> (comparison, threshold, label); no comparison: an informational row.
ISSUE_TARGETS: dict[str, tuple[str | None, float | None, str]] = {
    "publish_vs_noop": (">=", 0.75, "single publish req/s / no-op req/s, API and no-op under uvicorn --workers 1, "
                        "64 conns"),
    "publish_vs_noop_w2": (">=", 0.75, "the same with 2 API processes (API and no-op under uvicorn --workers 2), "
                           "wrk 2 threads, 64 conns"),
    "work_loop_vs_bullmq_worker": (">=", 1.0, "work loop (long-poll consume 1 carrying the previous ack) msgs/s / "
                                   "BullMQ Worker alone (concurrency 50) jobs/s"),
    "work_loop_ceiling": (None, None, "work-loop ceiling: no-op req/s / BullMQ Worker jobs/s (one request per "
                          "message cannot beat the no-op)"),
    "batch_vs_bullmq": (">=", 5.0, "publish_batch of 100 msgs/s / BullMQ addBulk of 100 jobs/s"),
    "backlog_consume_prio": (">=", 0.9, "consume 100 on a 1,000,000-message backlog / on an empty queue, "
                             "priorities on: throughput, and Redis µs per call empty / backlog (both)"),
    "p99_service_ms": ("<=", 10.0, "p99 of single publish paced at half its max: the service's part (Redis with "
                       "appendfsync no) and the total (appendfsync always)"),
    "memory_overhead": ("<=", 150.0, "Redis memory per message beyond the payload, 1,000,000 messages, standard "
                        "queue, the higher of priorities off/on"),
    "push_vs_receiver": (">=", 0.5, "push delivery msgs/s / the receiver's own ceiling (wrk), the lowest of 1, 10 "
                         "and 100 subscriptions"),
    "e2e_vs_bullmq": (">=", 3.0, "end to end msgs/s / BullMQ end to end (addBulk producers + Worker) jobs/s"),
}
#: The unit of a target's threshold (the others are ratios).
UNITS = {"p99_service_ms": " ms", "memory_overhead": " B"}
#: The backlog the backlog and memory targets are about; smaller runs show their figure without a verdict.
FULL_BACKLOG = 1_000_000
Repeat = dict[str, Any]


def dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def div(a: Any, b: Any) -> float | None:
    return None if a is None or not b else float(a) / float(b)


def _side(label: str, value: Any, unit: str) -> dict[str, Any]:
    return {"label": label, "value": None if value is None else float(value), "unit": unit}


def spread(values: list[float | None]) -> dict[str, Any] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"min": round(min(present), 4), "max": round(max(present), 4),
            "values": [None if v is None else round(v, 4) for v in values]}


def verdict(op: str | None, threshold: float | None, value: float | None) -> bool | None:
    if op is None or threshold is None or value is None:
        return None
    return value >= threshold if op == ">=" else value <= threshold


def _best_index(values: list[float | None], higher: bool = True) -> int | None:
    scored = [(v, i) for i, v in enumerate(values) if v is not None]
    if not scored:
        return None
    return (max if higher else min)(scored)[1]


def _row(key: str, value: float | None, measured: dict[str, Any], baseline: dict[str, Any],
         values: list[float | None], **extra: Any) -> dict[str, Any]:
    op, threshold, label = ISSUE_TARGETS[key]
    return {"key": key, "label": label, "value": None if value is None else round(value, 4),
            "target": None if op is None else f"{op} {threshold:g}{UNITS.get(key, '')}",
            "met": verdict(op, threshold, value),
            "measured": measured, "baseline": baseline, "repeats": len(values), "spread": spread(values), **extra}


def _repeats(results: dict[str, Any], key: str, fallback: Repeat) -> list[Repeat]:
    """The repeats of ``key``; for a run recorded without them, its single figures as one repeat."""
    found = dig(results, "repeats", key)
    if found:
        return list(found)
    return [fallback] if any(v for v in fallback.values()) else []


def pair_row(key: str, repeats: list[Repeat], measured: tuple[str, str, Callable[[Repeat], Any]],
             baseline: tuple[str, str, Callable[[Repeat], Any]], **extra: Any) -> dict[str, Any]:
    """A ratio of two figures measured side by side: per repeat, the best repeat kept."""
    m_label, m_unit, m_value = measured
    b_label, b_unit, b_value = baseline
    values = [div(m_value(r), b_value(r)) for r in repeats]
    index = _best_index(values)
    kept = repeats[index] if index is not None else {}
    return _row(key, None if index is None else values[index], _side(m_label, m_value(kept), m_unit),
                _side(b_label, b_value(kept), b_unit), values, **extra)


def publish_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    ours, ceil = results.get("ours", {}), results.get("ceilings", {})
    workers = dig(results, "config", "workers") or 1
    rows = []
    for key, ours_key, ceil_key, processes in (("publish_vs_noop", "publish", "noop", workers),
                                               ("publish_vs_noop_w2", "publish_w2", "noop_w2", 2)):
        repeats = _repeats(results, key, {"publish": ours.get(ours_key), "noop": ceil.get(ceil_key)})
        rows.append(pair_row(key, repeats, ("single publish", "req/s", lambda r: dig(r, "publish", "request_rate")),
                             ("no-op ceiling", "req/s", lambda r: dig(r, "noop", "request_rate")),
                             api_processes=processes))
    return rows


def work_loop_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rounds = dig(results, "work_loop", "rounds") or []
    worker = dig(results, "peers", "bullmq", "work", "jobs_per_second")
    repeats = rounds or ([{"ackon": results["ours"]["work_loop"], "bullmq": {"msg_rate": worker}}]
                         if dig(results, "ours", "work_loop") and worker else [])
    loop = pair_row("work_loop_vs_bullmq_worker", repeats,
                    ("work loop", "msgs/s", lambda r: dig(r, "ackon", "msg_rate")),
                    ("BullMQ Worker", "jobs/s", lambda r: dig(r, "bullmq", "msg_rate")),
                    interleaved_rounds=bool(rounds))
    noops = [dig(r, "noop", "request_rate") for r in dig(results, "repeats", "publish_vs_noop") or []]
    noop = max([n for n in noops if n], default=None) or dig(results, "ceilings", "noop", "request_rate")
    workers = [dig(r, "bullmq", "msg_rate") for r in rounds]
    best_worker = max([w for w in workers if w], default=None) or worker
    ceiling = _row("work_loop_ceiling", div(noop, best_worker), _side("no-op ceiling (best repeat)", noop, "req/s"),
                   _side("BullMQ Worker (best round)", best_worker, "jobs/s"), [])
    return [loop, ceiling]


def peer_rows(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ours, bull = results.get("ours", {}), dig(results, "peers", "bullmq") or {}
    batch = _repeats(results, "batch_vs_bullmq", {"ours": ours.get("publish_batch"), "bullmq": bull.get("addBulk")})
    e2e = _repeats(results, "e2e_vs_bullmq", {"ours": ours.get("end_to_end"), "bullmq": bull.get("end_to_end")})
    return {
        "batch_vs_bullmq": pair_row("batch_vs_bullmq", batch,
                                    ("publish_batch", "msgs/s", lambda r: dig(r, "ours", "msg_rate")),
                                    ("BullMQ addBulk", "jobs/s", lambda r: dig(r, "bullmq", "jobs_per_second"))),
        "e2e_vs_bullmq": pair_row("e2e_vs_bullmq", e2e, ("end to end", "msgs/s", lambda r: dig(r, "ours", "msg_rate")),
                                  ("BullMQ end to end", "jobs/s", lambda r: dig(r, "bullmq", "jobs_per_second"))),
    }


def backlog_row(results: dict[str, Any]) -> dict[str, Any]:
    growth = dig(results, "growth", "prio_on")
    repeats = dig(results, "repeats", "backlog_consume_prio") or ([growth] if growth else [])
    throughput = [div(dig(r, "backlog", "consume", "msg_rate"), dig(r, "empty", "consume", "msg_rate"))
                  for r in repeats]
    redis = [div(dig(r, "empty", "scripts", "claim100_usec"), dig(r, "backlog", "scripts", "claim100_usec"))
             for r in repeats]
    index, redis_index = _best_index(throughput), _best_index(redis)
    kept = repeats[index] if index is not None else {}
    value = None if index is None else throughput[index]
    redis_value = None if redis_index is None else redis[redis_index]
    backlog = dig(results, "memory", "prio_on", "messages") if growth else None
    met: bool | None = None
    if value is not None and redis_value is not None and (backlog or 0) >= FULL_BACKLOG:
        met = value >= 0.9 and redis_value >= 0.9
    measured = {**_side("consume on the backlog", dig(kept, "backlog", "consume", "msg_rate"), "msgs/s"),
                "redis_usec_per_call": dig(kept, "backlog", "scripts", "claim100_usec")}
    baseline = {**_side("on the empty queue", dig(kept, "empty", "consume", "msg_rate"), "msgs/s"),
                "redis_usec_per_call": dig(kept, "empty", "scripts", "claim100_usec")}
    row = _row("backlog_consume_prio", value, measured, baseline, throughput,
               redis_ratio=None if redis_value is None else round(redis_value, 4), redis_spread=spread(redis),
               backlog_messages=backlog)
    row["met"] = met  # both ratios; none below the backlog of the target
    return row


def p99_row(results: dict[str, Any]) -> dict[str, Any]:
    repeats = _repeats(results, "p99_split", {"always": dig(results, "ours", "publish_half")})
    service = [dig(r, "no", "latency_ms", "p99") for r in repeats]
    total = [dig(r, "always", "latency_ms", "p99") for r in repeats]
    fsync = [None if s is None or t is None else t - s for s, t in zip(service, total, strict=True)]
    index = _best_index(service, higher=False)
    kept = repeats[index] if index is not None else (repeats[0] if repeats else {})
    return _row("p99_service_ms", None if index is None else service[index],
                _side("p99, appendfsync no (the service's part)", dig(kept, "no", "latency_ms", "p99"), "ms"),
                _side("p99, appendfsync always (total)", dig(kept, "always", "latency_ms", "p99"), "ms"), service,
                fsync_ms=None if index is None or fsync[index] is None else round(float(fsync[index] or 0), 3),
                paced_rate=dig(kept, "always", "target_rate"), total_spread=spread(total), fsync_spread=spread(fsync))


def memory_row(results: dict[str, Any]) -> dict[str, Any]:
    memory = results.get("memory", {})
    layouts = {kind: m for kind, m in memory.items() if m.get("overhead_bytes") is not None}
    worst = max(layouts, key=lambda kind: layouts[kind]["overhead_bytes"], default=None)
    kept = layouts.get(worst, {}) if worst else {}
    messages = min((m.get("messages") or 0 for m in layouts.values()), default=0)
    value = kept.get("overhead_bytes")
    row = _row("memory_overhead", value, _side(f"Redis memory per message ({worst or '—'})",
                                               kept.get("bytes_per_message"), "B"),
               _side("payload", kept.get("payload_bytes"), "B"), [value],
               overhead_by_layout={kind: m["overhead_bytes"] for kind, m in layouts.items()}, messages=messages)
    if messages < FULL_BACKLOG:
        row["met"] = None
    row["spread"] = None  # deterministic per load: measured once per layout
    return row


def push_row(results: dict[str, Any]) -> dict[str, Any]:
    rounds = dig(results, "push", "rounds") or []
    counts = sorted({int(r["subscriptions"]) for rnd in rounds for r in rnd.get("rows", [])})
    parts: list[dict[str, Any]] = []
    for count in counts:
        pairs = [(row, dig(rnd, "ceiling", "requests_per_s")) for rnd in rounds for row in rnd.get("rows", [])
                 if row.get("subscriptions") == count]
        values = [div(row.get("messages_per_s"), ceiling) for row, ceiling in pairs]
        index = _best_index(values)
        row, ceiling = pairs[index] if index is not None else ({}, None)
        value = None if index is None else values[index]
        parts.append({"subscriptions": count, "value": None if value is None else round(value, 4),
                      "met": verdict(">=", 0.5, value),
                      "measured": _side(f"push, {count} subscription{'s' if count != 1 else ''}",
                                        row.get("messages_per_s"), "msgs/s"),
                      "baseline": _side("receiver ceiling (wrk, HTTPS)", ceiling, "req/s"),
                      "repeats": len(values), "spread": spread(values)})
    lowest = min((p for p in parts if p["value"] is not None), key=lambda p: p["value"], default=None)
    if lowest is None:
        return _row("push_vs_receiver", None, _side("push", None, "msgs/s"), _side("receiver ceiling", None, "req/s"),
                    [], parts=parts)
    row = _row("push_vs_receiver", lowest["value"], lowest["measured"], lowest["baseline"], [], parts=parts)
    row["repeats"], row["spread"] = lowest["repeats"], lowest["spread"]
    return row


def issue_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of the table, in the issue's order."""
    publish, loop, peers = publish_rows(results), work_loop_rows(results), peer_rows(results)
    return [*publish, *loop, peers["batch_vs_bullmq"], backlog_row(results), p99_row(results), memory_row(results),
            push_row(results), peers["e2e_vs_bullmq"]]


# --- markdown ---------------------------------------------------------------------------------------
def _value(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    value = float(value)
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "B":
        return f"{value:.0f} B"
    if unit == "µs":
        return f"{value:.1f} µs"
    return f"{value:,.0f} {unit}"


def _number(value: float) -> str:
    """A ratio: 2 decimals, 3 below 0.1."""
    return f"{value:.3f}" if abs(value) < 0.1 else f"{value:.2f}"


def _figure(side: dict[str, Any]) -> str:
    return f"{side.get('label')}: {_value(side.get('value'), side.get('unit', ''))}"


def _spread(found: dict[str, Any] | None, repeats: int, unit: str = "") -> str:
    if not found:
        return "—"
    values = ", ".join("—" if v is None else _number(v) for v in found["values"])
    if repeats <= 1:
        return f"one run: {values}{unit}"
    return f"{_number(found['min'])}..{_number(found['max'])}{unit} ({values})"


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def markdown_lines(rows: list[dict[str, Any]], repeats: int) -> list[str]:
    how = (f"{repeats} times (interleaved); the best repeat is kept, the spread gives every repeat"
           if repeats > 1 else "once")
    lines = ["### Targets of the performance issue", "",
             f"Each figure against its ceiling or baseline of the same run, measured {how}. A dash: not measured "
             "in this run, or no verdict at this size.", "",
             "| target | measured | same-run ceiling or baseline | figure | target | met | spread over repeats |",
             "|---|---|---|---:|---:|---|---|"]
    for row in rows:
        key, target = row["key"], row["target"] or "(informational)"
        measured, baseline = _figure(row["measured"]), _figure(row["baseline"])
        figure = "—" if row["value"] is None else _number(row["value"])
        spread_text = _spread(row["spread"], row["repeats"])
        label = row["label"]
        if key == "publish_vs_noop" and row.get("api_processes") != 1:
            label = label.replace("--workers 1", f"--workers {row.get('api_processes')}")
        if key == "backlog_consume_prio":
            redis = row.get("redis_ratio")
            measured += f"; Redis {_value(row['measured'].get('redis_usec_per_call'), 'µs')} per claim of 100"
            baseline += f"; Redis {_value(row['baseline'].get('redis_usec_per_call'), 'µs')}"
            figure = f"{figure} / {'—' if redis is None else _number(redis)}"
            spread_text = (f"throughput {_spread(row['spread'], row['repeats'])}; "
                           f"Redis {_spread(row.get('redis_spread'), row['repeats'])}")
            if row.get("backlog_messages") is not None and row["backlog_messages"] < FULL_BACKLOG:
                label += f" (measured on {row['backlog_messages']:,})"
        elif key == "p99_service_ms":
            baseline += f"; the fsync stalls: {_value(row.get('fsync_ms'), 'ms')}"
            if row.get("paced_rate"):
                measured = f"paced at {row['paced_rate']:,.0f} req/s; {measured}"
            figure = _value(row["value"], "ms")
            spread_text = (f"service {_spread(row['spread'], row['repeats'], unit=' ms')}; total "
                           f"{_spread(row.get('total_spread'), row['repeats'], unit=' ms')}")
        elif key == "memory_overhead":
            by_layout = row.get("overhead_by_layout") or {}
            measured = ", ".join(f"{'priorities on' if k == 'prio_on' else 'priorities off'} {v:.0f} B"
                                 for k, v in sorted(by_layout.items())) or "—"
            measured = f"beyond the payload: {measured}" if by_layout else measured
            baseline = (f"{_figure(row['baseline'])}; {row.get('messages') or 0:,} messages" if by_layout else "—")
            figure = _value(row["value"], "B")
            spread_text = "measured once per layout (deterministic per load)" if by_layout else "—"
        if key == "push_vs_receiver" and row.get("parts"):
            for part in row["parts"]:
                value = part["value"]
                lowest = " (the lowest: the verdict)" if value is not None and value == row["value"] else ""
                plural = "s" if part["subscriptions"] != 1 else ""
                label = f"push delivery / receiver ceiling, {part['subscriptions']} subscription{plural}{lowest}"
                lines.append(f"| {label} "
                             f"| {_figure(part['measured'])} | {_figure(part['baseline'])} "
                             f"| {'—' if value is None else _number(value)} | {target} "
                             f"| {_met(part['met'])} | {_spread(part['spread'], part['repeats'])} |")
            continue
        lines.append(f"| {label} | {measured} | {baseline} | {figure} | {target} | {_met(row['met'])} "
                     f"| {spread_text} |")
    return lines
