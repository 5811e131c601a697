"""Fixtures of the high-availability tests: every process a test starts is stopped at its end (``fleet``). The
failover runs use the fault suite's workload and queue checker (tests/faults/loadgen.py), one copy of it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fleet import Fleet, pids_alive

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop_all()
        left = pids_alive(fleet)
        assert not left, f"processes left running: {left}"
