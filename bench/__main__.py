"""``python -m bench [--quick]``: run the benchmark suite and write bench/results/ (see docs/performance.md)."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import RESULTS_DIR, BenchError, snapshot_code
from bench.report import chart, evaluate, markdown


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke run for CI: 2 s per figure, no backlog, peers only if installed")
    parser.add_argument("--seconds", type=int, help="duration of each measurement (default 10, quick 2)")
    parser.add_argument("--backlog", type=int, help="messages in the growth backlog (default 1,000,000)")
    parser.add_argument("--no-growth", action="store_true", help="skip the backlog comparison")
    parser.add_argument("--peers", choices=("auto", "on", "off"), default="auto",
                        help="auto: install and run BullMQ in the full run, only run it if installed with --quick")
    parser.add_argument("--profile", action="store_true", help="also profile single publish with py-spy")
    parser.add_argument("--workers", type=int, help="uvicorn workers for the API and the no-op ceiling (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (default bench/results)")
    parser.add_argument("--quiet-wait", type=int, metavar="SECONDS",
                        help="before each measurement, wait up to this long for other processes to leave the CPU "
                        "alone (default 60, quick 0)")
    parser.add_argument("--retries", type=int, metavar="N",
                        help="measure again, up to N times, when other processes used the CPU meanwhile, keeping "
                        "the least disturbed attempt (default 2, quick 0)")
    parser.add_argument("--no-observability", action="store_true",
                        help="skip the costs of the counters, the request log and GET /metrics")
    parser.add_argument("--no-cli-publish", action="store_true", help="skip broker publish --file")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="interleaved rounds of the with/without comparisons (default 4, quick 1)")
    parser.add_argument("--scrape-queues", type=int, metavar="N",
                        help="queues in the store GET /metrics reads (default 10,000, quick 1,000)")
    parser.add_argument("--cli-lines", type=int, metavar="N",
                        help="lines of the file broker publish --file sends (default 1,000,000, quick 50,000)")
    parser.add_argument("--no-work-loop", action="store_true",
                        help="skip the interleaved work loop vs BullMQ Worker rounds (bench/work_loop.py)")
    parser.add_argument("--only-work-loop", action="store_true",
                        help="run only the interleaved work loop vs BullMQ Worker rounds (installs BullMQ if needed)")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help="measure every target figure N times, interleaved, keeping the best and reporting the "
                        "spread (default 2, quick 1; the 1,000,000-message backlog is loaded once)")
    parser.add_argument("--only-targets", action="store_true",
                        help="measure only what the table of the targets needs (no observability, CLI, RabbitMQ, "
                        "Redis ceilings, BullMQ add)")
    parser.add_argument("--no-push", action="store_true", help="skip push delivery (bench/push.py)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """Config fields: the mode's defaults, then the flags given."""
    if args.quick:
        values: dict[str, Any] = {"quick": True, "seconds": 2, "growth": False, "memory_messages": 20_000,
                                  "ab_rounds": 1, "scrape_queues": 1_000, "scrape_with_messages": 100,
                                  "scrape_runs": 3, "cli_lines": 50_000, "repeats": 1}
    else:
        values = {"quiet_wait": 60, "retries": 2}
    overrides = {
        "seconds": args.seconds, "backlog": args.backlog, "workers": args.workers,
        "growth": False if args.no_growth else None, "peers": args.peers, "profile": args.profile or None,
        "quiet_wait": args.quiet_wait, "retries": args.retries,
        "observability": False if args.no_observability else None,
        "cli_publish": False if args.no_cli_publish else None, "ab_rounds": args.rounds,
        "scrape_queues": args.scrape_queues, "cli_lines": args.cli_lines,
        "work_loop": False if args.no_work_loop else None, "only_work_loop": args.only_work_loop or None,
        "repeats": args.repeats, "only_targets": args.only_targets or None, "push": False if args.no_push else None,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the context managers: every started process is stopped


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background by a shell
        signal.signal(signal.SIGINT, _stop)
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    code_dir = Path(tempfile.mkdtemp(prefix="bench-code-"))
    try:
        code = snapshot_code(code_dir)
        from bench.suite import Config, Suite  # imports the service: after the snapshot

        suite = Suite(Config(**config_values(args)), log)
        suite.results_dir = out
        suite.results["code"] = code
        results = suite.run()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)
    evaluate(results)
    table = markdown(results)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "latest.md").write_text(table)
    drawn = chart(results, out / "throughput.png")
    print(table)
    print(f"results: {out / 'latest.json'}, {out / 'latest.md'}"
          + (f", {out / 'throughput.png'}" if drawn else " (no chart: matplotlib is not installed)"))
    print(f"elapsed: {results.get('elapsed_seconds')} s")
    if args.strict and any(row["met"] is False for row in results["targets"] + results["observability_targets"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
