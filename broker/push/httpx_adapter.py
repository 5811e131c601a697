"""The private part of httpx that push delivery (broker/push/ssrf.py) relies on, in one place: the connection
pool of ``httpx.AsyncHTTPTransport``, replaced by one whose network backend checks every address it connects to.

httpx has no public parameter for the network backend. :func:`check` verifies that the installed version still
builds its transport on an httpcore pool in ``_pool``; the test suite calls it, so an upgrade that breaks this
fails loudly there instead of at run time.
"""

from __future__ import annotations

import httpcore
import httpx


def replace_pool(transport: httpx.AsyncHTTPTransport, pool: httpcore.AsyncConnectionPool) -> None:
    """Make ``transport`` send every request through ``pool``."""
    transport._pool = pool


def check() -> None:
    """Raise RuntimeError if httpx no longer keeps its httpcore pool where :func:`replace_pool` puts it."""
    pool = getattr(httpx.AsyncHTTPTransport(), "_pool", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool):
        raise RuntimeError(f"httpx {httpx.__version__}: AsyncHTTPTransport._pool is {type(pool).__name__}, "
                           "not an httpcore.AsyncConnectionPool (broker/push/httpx_adapter.py)")
