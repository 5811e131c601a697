"""Fixtures of the operations tests (real processes on temporary directories and free ports)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opskit import Processes
from support import clean_env


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Starts processes for the test and stops every one of them afterwards."""
    processes = Processes(tmp_path)
    yield processes
    processes.stop_all()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    """An environment with no BROKER_* variable but the embedded store's data directory."""
    return clean_env(BROKER_DATA_DIR=str(data_dir))
