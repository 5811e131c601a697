"""The HTTP processes of ``broker serve --workers N`` die with the process that started them.

uvicorn's supervisor starts the N server processes and stops them when it is stopped, but when it is killed
(SIGKILL, the OOM killer) nothing tells them: they would go on serving on the shared socket, with nobody to
restart or stop them. So ``broker serve`` puts its own pid in ``BROKER_SERVE_PID`` before it starts them,
and each of them, on start-up (:func:`follow_parent`), asks the kernel for a SIGTERM when its parent dies
(``prctl(PR_SET_PDEATHSIG)``, Linux) and then checks that the parent is still the one named, in case it
died before the request. SIGTERM is uvicorn's graceful stop: the listening socket is closed at once, and
the requests in flight are finished. On other systems, or without a C library to call, a thread polls
``os.getppid()`` every second instead and sends the same SIGTERM. Either way that thread then gives the
graceful stop ``ORPHAN_GRACE_SECONDS`` and ends the process if it is still there (long polls and busy
keep-alive connections can hold a graceful stop far longer): every state change is one atomic script, so a
request cut off then is one whose answer the client did not get, and retries as after any lost answer.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger("broker.http.lifeline")

PARENT_PID_VARIABLE = "BROKER_SERVE_PID"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 1.0
ORPHAN_GRACE_SECONDS = 10.0


def follow_parent(environ: dict[str, str] | None = None) -> bool:
    """In a server process started by ``broker serve --workers N``: be stopped when that process dies.
    Returns whether there is a parent to follow (False in a process started otherwise)."""
    value = (os.environ if environ is None else environ).get(PARENT_PID_VARIABLE, "")
    if not value.isdigit() or int(value) == os.getpid():
        return False
    parent = int(value)
    signalled = _ask_the_kernel() and os.getppid() == parent  # else it died before we asked: no signal comes
    threading.Thread(target=_watch, args=(parent, signalled), name="lifeline", daemon=True).start()
    return True


def _ask_the_kernel() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0:
            return True
    return False


def _watch(parent: int, signalled: bool) -> None:
    """Wait for the parent to be gone; stop (unless the kernel's SIGTERM did), and end after the grace."""
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    log.warning("the serving process %d is gone; stopping", parent)
    if not signalled:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(ORPHAN_GRACE_SECONDS)
    log.warning("still running %.0f s after the serving process %d went; exiting", ORPHAN_GRACE_SECONDS, parent)
    logging.shutdown()
    os._exit(1)
