"""What only the fault tests need. The processes they break (``Fleet``, ``RedisNode``, ``ApiServer``) are shared
with the fuzz tests and live in ``support.fleet``; they are re-exported here for ``from faultkit import ...``."""

from __future__ import annotations

import os

from support import alive, clean_env, free_port, wait_until
from support.fleet import DURABLE, ApiServer, Fleet, RedisNode, pids_alive

__all__ = ["DURABLE", "FULL", "ApiServer", "Fleet", "RedisNode", "alive", "clean_env", "free_port", "pids_alive",
           "wait_until"]

#: ``BROKER_FAULTS_FULL=1``: the full-size fault run (see docs/reliability.md) instead of the reduced one.
FULL = os.environ.get("BROKER_FAULTS_FULL", "").strip().lower() in ("1", "true", "yes", "on")
