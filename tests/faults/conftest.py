"""Fixtures of the fault tests: every process a test starts is stopped at its end (``fleet``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fleet import Fleet, pids_alive


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop_all()
        left = pids_alive(fleet)
        assert not left, f"processes left running: {left}"
