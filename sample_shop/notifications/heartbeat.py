"""The notifications function's heartbeat: `python -m sample_shop.notifications.heartbeat FILE MAX_AGE_S`.

An instance has no HTTP port (it only calls out: orders' outbox, the SMTP server), so on kind its liveness
and readiness probes are this exec command. The instance touches FILE (`SHOP_NOTIFY_HEARTBEAT_FILE`) at
the start of every turn of its loop; the check exits 0 while the file is younger than MAX_AGE_S, 1 when it
is older or missing (a loop stuck beyond every timeout it has: 5 s per orders call, `SHOP_SMTP_TIMEOUT_S`
per delivery), 2 on bad arguments.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def beat(path: Path) -> None:
    """Touch `path` (created on the first beat)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def age_s(path: Path, now: float | None = None) -> float | None:
    """Seconds since the last beat, None without one."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        path, max_age = Path(args[0]), float(args[1])
        if len(args) != 2 or max_age <= 0:
            raise ValueError
    except (IndexError, ValueError):
        print("usage: python -m sample_shop.notifications.heartbeat FILE MAX_AGE_S (> 0)", file=sys.stderr)
        return 2
    age = age_s(path)
    if age is None:
        print(f"{path}: no heartbeat yet", file=sys.stderr)
        return 1
    if age > max_age:
        print(f"{path}: last heartbeat {age:.0f} s ago (more than {max_age:g} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
