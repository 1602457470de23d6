"""Small file helpers of the runtime: secrets, log tails (atomic writes: sample_shop.basics)."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

LOG_TAIL_LINES = 25


def write_private(path: Path, text: str) -> None:
    """Write a secret readable by this user only (0600 from the start, not chmod-ed after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an older file keeps its mode through O_TRUNC


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, since: int = 0) -> str:
    """The last lines written at or after byte offset `since` (logs are appended to across runs)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(since, f.tell() - 64_000))
            return "\n".join(deque(f.read().decode("utf-8", "replace").splitlines(), maxlen=lines))
    except FileNotFoundError:
        return ""


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
