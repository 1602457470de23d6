"""Binding a child's life to its parent's (Linux prctl), for every process the local stack starts.

PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so spawn from a long-lived thread
(processes.py spawns from the event loop's)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def bind_to_parent(parent_pid: int) -> None:
    """In the child: SIGKILL when the parent dies; exit at once if it died before this call."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died between fork and prctl
        os._exit(1)


def set_thread_name(name: str) -> None:
    """What `top` shows for this process (15 bytes at most)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
