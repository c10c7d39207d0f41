"""Children of ``maie up`` that do not outlive it: the signal a child gets when its parent dies.

Children run in their own session, so that Ctrl-C in a terminal reaches only the supervisor,
which stops them in order (workers, the API, then Redis and PostgreSQL). ``prctl(PR_SET_PDEATHSIG)``
keeps them from outliving a supervisor that is killed outright (Linux; elsewhere a no-op).
The functions run in the child between fork and exec, where nothing may load a library or take
a lock: ``prctl`` is looked up once, in the parent, when this module is imported.
"""

from __future__ import annotations

import ctypes
import signal
import sys

__all__ = ["PR_SET_PDEATHSIG", "die_with_parent", "fast_shutdown_with_parent"]

#: prctl option: the signal a child gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In a child about to exec: get SIGTERM when the parent dies, even by SIGKILL."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def fast_shutdown_with_parent() -> None:
    """In PostgreSQL about to exec: get SIGINT (its *fast* shutdown) when the parent dies.

    SIGTERM would be a *smart* shutdown, which waits for every client to leave. It runs after
    Popen's setuid (the server runs as another user when MAIE runs as root), which would
    otherwise clear the setting.
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGINT)
