"""Diagnostic factory for ``--profile``: the API exactly as ``broker.http.app:app_from_env`` builds it, plus a
``gc.callbacks`` hook that times every collection of CPython's cyclic garbage collector. With
``BENCH_GC_FREEZE=1`` it first runs ``gc.freeze()`` (what the service could do at start-up), to measure
what that changes. Statistics go to the JSON file ``BENCH_GC_OUT``, rewritten after every collection of
the older generations and every 20th of the youngest (uvicorn ends on a re-raised signal: no atexit).
SIGUSR1 forgets the collections so far (the harness sends it after warming the worker up).

    uvicorn --factory bench.gcprobe:create
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from typing import Any

from starlette.applications import Starlette

_pauses: dict[int, list[float]] = {}
_started: list[float] = [0.0]


def _dump() -> None:
    path = os.environ.get("BENCH_GC_OUT")
    if not path:
        return
    stats = {
        str(generation): {"collections": len(ms), "max_ms": round(max(ms), 3), "total_ms": round(sum(ms), 3),
                          "mean_ms": round(sum(ms) / len(ms), 3)}
        for generation, ms in sorted(_pauses.items())
    }
    with open(path, "w") as f:
        json.dump({"frozen": gc.get_freeze_count(), "pauses": stats}, f)


def _callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    generation = int(info["generation"])
    pauses = _pauses.setdefault(generation, [])
    pauses.append((time.perf_counter() - _started[0]) * 1000)
    if generation > 0 or len(pauses) % 20 == 0:
        _dump()


def _forget(_signum: int, _frame: object) -> None:
    _pauses.clear()
    _dump()


def create() -> Starlette:
    from broker.http.app import app_from_env

    app = app_from_env()
    if os.environ.get("BENCH_GC_FREEZE") == "1":
        gc.collect()
        gc.freeze()
    gc.callbacks.append(_callback)
    signal.signal(signal.SIGUSR1, _forget)
    return app
