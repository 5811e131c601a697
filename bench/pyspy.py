"""Profiling the API worker under load with py-spy, and reading the samples by where the time goes.

``record`` attaches py-spy to the uvicorn worker for a while and writes collapsed stacks (one line per
distinct stack: ``frame;frame;... count``). ``summarize`` attributes every sample to one category:
the innermost frame that a rule recognises wins (a sample inside ``hashlib`` called from the auth code
counts as auth). ``inclusive`` gives, for a few entry points, the share of samples with that frame
anywhere on the stack.

Run ``python -m bench.pyspy <file.collapsed>`` to print the summary of a recorded file, ``python -m bench.pyspy
--top <file.collapsed>`` for the functions with the most samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

_FRAME_RE = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# (category, test on (function, file)). A sample belongs to the category of its innermost frame that a
# rule recognises; "asyncio" frames only count when nothing above them is recognised (a socket write in
# asyncio's streams called by redis-py is redis-py's time). System calls (native profiles) count for
# the component that made them, and are also summed on their own by ``syscalls``.
Rule = tuple[str, Callable[[str, str], bool]]
RULES: list[Rule] = [
    ("JSON decode of the body (msgspec)", lambda fn, f: f.endswith("broker/http/edge.py") and fn == "decode"),
    ("JSON encode of the answer (msgspec) + Response",
     lambda fn, f: (f.endswith("broker/http/edge.py") and fn.startswith("JSON.")) or "starlette/responses.py" in f),
    ("auth and admission (key hash, cache, rate limit)", lambda fn, f: f.endswith("broker/store/apikeys.py")
        or f.endswith("broker/store/ratelimit.py") or (f.endswith("broker/http/context.py") and fn.endswith("admit"))),
    ("request id", lambda fn, f: f.endswith("uuid.py") or fn in ("assign_request_id", "take_request_id")
        or fn.startswith("RequestIds.")),
    ("pipelined connection: packing, writes, replies (broker/store/pipeline.py)",
     lambda fn, f: f.endswith("broker/store/pipeline.py")),
    ("redis-py: command packing and send", lambda fn, f: "redis/" in f and (
        "pack" in fn.lower() or "send" in fn.lower() or "encode" in fn.lower())),
    ("redis-py: reply reading and parsing", lambda fn, f: "redis/_parsers" in f or (
        "redis/" in f and ("read" in fn.lower() or "parse" in fn.lower()))),
    ("redis-py: client, pool, connection", lambda fn, f: "redis/" in f),
    ("store and scripts (argument building)", lambda fn, f: any(
        f.endswith(p) for p in ("broker/store/queues.py", "broker/store/scripts.py", "broker/store/keys.py"))),
    ("route handler", lambda fn, f: "broker/http/routes/" in f or f.endswith("broker/http/context.py")),
    ("request body streaming", lambda fn, f: (f.endswith("broker/http/edge.py") and fn in ("read_body", "read_limited"))
        or (f.endswith("broker/http/fastpath.py") and fn == "_chunks")),
    ("lean ASGI path (broker/http/fastpath.py)", lambda fn, f: f.endswith("broker/http/fastpath.py")),
    ("Starlette routing", lambda fn, f: "starlette/routing.py" in f),
    ("middleware (Starlette's and RequestContext)", lambda fn, f: "starlette/middleware" in f
        or "starlette/_exception_handler.py" in f or "starlette/applications.py" in f
        or (f.endswith("broker/http/app.py") and fn == "BrokerApp.__call__")
        or "uvicorn/middleware" in f or (f.endswith("broker/http/edge.py") and "RequestContext" in fn)),
    ("Starlette Request object", lambda fn, f: "starlette/" in f),
    ("uvicorn HTTP protocol (parse, response write)", lambda fn, f: "uvicorn/protocols" in f or "httptools" in f),
    ("bench no-op handler", lambda fn, f: f.endswith("bench/noop_app.py")),
]
PASS_THROUGH: Rule = ("asyncio streams and tasks", lambda fn, f: "asyncio/" in f)
GC = "GC (CPython cyclic collector)"
IDLE = "event loop wait (epoll: idle)"
SYSCALLS = {"write": "write", "writev": "write", "send": "write", "sendmsg": "write", "sendto": "write",
            "read": "read", "recv": "read", "recvmsg": "read", "recvfrom": "read", "getrandom": "getrandom",
            "getpid": "getpid"}
LOOP = "event loop, C code (uvloop; no Python frame below the loop)"
OTHER = "other"

ENTRY_POINTS = {
    "FastPath.serve (whole request on the lean path)": "FastPath.serve",
    "ScriptPipe._flush (one write per loop turn)": "ScriptPipe._flush",
    "ScriptPipe._read (replies to their callers)": "ScriptPipe._read",
    "Store.publish (incl. redis-py)": "Store.publish",
    "Scripts.call (incl. redis-py)": "Scripts.call",
    "KeyRing.project_for": "KeyRing.project_for",
    "Context.admit (auth, rate limit)": "Context.admit",
    "Context.body (read + decode)": "Context.body",
    "Router.__call__": "Router.__call__",
    "RequestContext middleware (whole request)": "RequestContext.__call__",
    "HTTP response send path": "RequestResponseCycle.send",
}


def parse_frame(frame: str) -> tuple[str, str]:
    match = _FRAME_RE.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match.group("function"), match.group("file")


def read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        head, _, count = line.rpartition(" ")
        if head and count.isdigit():
            stacks.append((head.split(";"), int(count)))
    return stacks


def categorize(frames: list[str]) -> str:
    if frames:
        leaf, _ = parse_frame(frames[-1])
        if leaf.startswith("gc_collect") or leaf == "collect_with_callback":
            return GC
        if leaf.startswith("epoll") or leaf.startswith("uv__io_poll"):
            return IDLE
    weak = None
    for frame in reversed(frames):
        function, file = parse_frame(frame)
        for category, test in RULES:
            if test(function, file):
                return category
        if weak is None and PASS_THROUGH[1](function, file):
            weak = PASS_THROUGH[0]
    if weak is not None and not any("asyncio/runners.py" in parse_frame(f)[1] for f in frames[-1:]):
        return weak
    if frames and ("asyncio/runners.py" in frames[-1] or "Runner.run" in frames[-1] or "uvloop" in frames[-1]
                   or "loop.c" in frames[-1]):
        return LOOP
    return OTHER


def syscalls(path: Path) -> dict[str, float]:
    """Share of samples (percent) spent in each system call, native profiles only."""
    counts: Counter[str] = Counter()
    total = 0
    for frames, n in read(path):
        total += n
        leaf, _ = parse_frame(frames[-1]) if frames else ("", "")
        if leaf in SYSCALLS:
            counts[f"{SYSCALLS[leaf]} <- {categorize(frames)}"] += n
    total = total or 1
    return {k: round(100 * v / total, 1) for k, v in counts.most_common()}


def summarize(path: Path) -> dict[str, float]:
    """Share of samples (percent) per category, biggest first."""
    counts: Counter[str] = Counter()
    for frames, n in read(path):
        counts[categorize(frames)] += n
    total = sum(counts.values()) or 1
    return {k: round(100 * v / total, 1) for k, v in counts.most_common()}


def inclusive(path: Path) -> dict[str, float]:
    """Share of samples (percent) with each entry point anywhere on the stack."""
    stacks = read(path)
    total = sum(n for _, n in stacks) or 1
    shares = {}
    for label, function in ENTRY_POINTS.items():
        hits = sum(n for frames, n in stacks if any(parse_frame(f)[0] == function for f in frames))
        shares[label] = round(100 * hits / total, 1)
    return shares


def hot_functions(path: Path, top: int = 25) -> list[tuple[str, float, float]]:
    """The ``top`` functions by inclusive share (percent of samples with the function on the stack), each with
    its self share (samples where it is the innermost frame), as ``(function (file), inclusive, self)``."""
    stacks = read(path)
    total = sum(n for _, n in stacks) or 1
    inclusive_counts: Counter[str] = Counter()
    self_counts: Counter[str] = Counter()
    for frames, n in stacks:
        names = []
        for frame in frames:
            function, file = parse_frame(frame)
            names.append(f"{function} ({'/'.join(file.split('/')[-2:])})")
        for name in set(names):
            inclusive_counts[name] += n
        if names:
            self_counts[names[-1]] += n
    return [(name, round(100 * n / total, 1), round(100 * self_counts[name] / total, 1))
            for name, n in inclusive_counts.most_common(top)]


def record(pid: int, seconds: float, out: Path, native: bool = False, rate: int = 250) -> Path:
    """Sample ``pid`` for ``seconds``. Python frames only by default, without pausing the process
    (``--nonblocking``); ``native`` adds C frames but must pause the process at each sample, which
    roughly halves its throughput (so only its shares are meaningful)."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        raise FileNotFoundError("py-spy is not installed (pip install -e '.[bench]')")
    args = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
            "--format", "raw", "--idle", "-o", str(out)]
    args += ["--native"] if native else ["--nonblocking"]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed: {done.stderr[-1500:]}")
    return out


def main() -> None:
    if sys.argv[1:2] == ["--top"]:
        for name in sys.argv[2:]:
            print(f"{name}: inclusive% self% function")
            for function, share, own in hot_functions(Path(name), 40):
                print(f"  {share:5.1f} {own:5.1f}  {function}")
        return
    for name in sys.argv[1:]:
        path = Path(name)
        print(f"{path}: where the samples are")
        for category, share in summarize(path).items():
            print(f"  {share:5.1f}%  {category}")
        calls = syscalls(path)
        if calls:
            print("  system calls (by the component that made them):")
            for label, share in calls.items():
                print(f"  {share:5.1f}%  {label}")
        print("  entry points (inclusive):")
        for label, share in inclusive(path).items():
            print(f"  {share:5.1f}%  {label}")


if __name__ == "__main__":
    main()
