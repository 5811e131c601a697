"""The fault-injection run (suite.py) under load, with the queue checker over its whole history.

The normal test run uses a reduced size (each fault kind once). ``BROKER_FAULTS_FULL=1`` runs the full size
(at least 20 faults over at least 100,000 operations) and prints its figures; see docs/reliability.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from faultkit import FULL
from suite import SuiteConfig, run_suite
from support.fleet import Fleet

REDUCED = SuiteConfig(min_cycles=5, min_ops=0, calm_seconds=2.0)
FULL_SIZE = SuiteConfig(min_cycles=int(os.environ.get("BROKER_FAULTS_CYCLES", "25")),
                        min_ops=int(os.environ.get("BROKER_FAULTS_OPS", "100000")),
                        calm_seconds=4.0, publishers=4, consumers=6)


@pytest.mark.timeout(3600 if FULL else 170)
async def test_nothing_acknowledged_is_lost_under_faults(fleet: Fleet) -> None:
    config = FULL_SIZE if FULL else REDUCED
    result = await run_suite(fleet, config)
    print("\n" + result.table())
    for fault in result.faults:
        print(f"  {fault.at:>7.1f} s  {fault.kind:<24} outage {fault.outage_s:5.2f} s  recovery "
              f"{fault.recovery_s:5.2f} s  {fault.notes}")
    report = os.environ.get("BROKER_FAULTS_REPORT")
    if report:
        Path(report).write_text(json.dumps(result.figures(), indent=2) + "\n")
    verdict = result.verdict
    assert not verdict.lost, f"acknowledged but never processed: {verdict.lost[:20]}"
    assert not verdict.never_delivered, f"acknowledged but never delivered: {verdict.never_delivered[:20]}"
    assert not verdict.unexpected, f"delivered but never published: {verdict.unexpected[:20]}"
    assert not verdict.corrupted, f"payload changed: {verdict.corrupted[:20]}"
    assert not verdict.double_stored, f"one publish stored twice: {verdict.double_stored[:20]}"
    assert not verdict.orphans_not_redelivered, f"leases of a killed consumer never redelivered: " \
                                                f"{verdict.orphans_not_redelivered[:20]}"
    assert not result.history.server_errors, result.history.server_errors[:20]
    assert not result.history.hangs, result.history.hangs[:20]
    assert not result.problems, result.problems
    assert {f.kind for f in result.faults} == set(config.kinds)
    assert len(result.faults) >= config.min_cycles
    assert result.history.ops >= config.min_ops
    assert verdict.acknowledged > 0 and verdict.orphaned_leases > 0
    assert max(f.recovery_s for f in result.faults) < 20
