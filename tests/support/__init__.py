"""Helpers every test folder shares, one copy each: the test Redis and a project's keys (``redisdb``), free
ports (``ports``), waiting for an observable condition with a deadline (``polling``), a snapshot of what a
project owns in Redis (``snapshots``), a driven clock (``clock``), test TLS certificates (``certs``), and
real ``broker`` and ``redis-server`` processes (``processes``, ``fleet``).

Tests import it as ``support``: pytest puts ``tests/`` on ``sys.path`` for the root ``conftest.py`` (as it puts
each folder there for that folder's kit, ``apikit``, ``opskit``...). Nothing here is collected as a test."""

from __future__ import annotations

from .certs import TLSFiles, make_tls
from .clock import Clock
from .polling import eventually, wait_until
from .ports import free_port
from .processes import alive, broker_command, clean_env, redis_ready, stop_process, wait_until_serving
from .redisdb import REDIS_URL, delete_project, project_keys, project_pattern
from .snapshots import changed_keys, project_snapshot

__all__ = [
    "REDIS_URL",
    "Clock",
    "TLSFiles",
    "alive",
    "broker_command",
    "changed_keys",
    "clean_env",
    "delete_project",
    "eventually",
    "free_port",
    "make_tls",
    "project_keys",
    "project_pattern",
    "project_snapshot",
    "redis_ready",
    "stop_process",
    "wait_until",
    "wait_until_serving",
]
