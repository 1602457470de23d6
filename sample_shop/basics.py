"""Small helpers every room may import: times, durations, atomic file writes. Standard library only.

This is the lowest layer of the house, beside `topology.py`: the shop, the load, the experiments, the SLO
code and the testbed all use these, so that a time is spelt one way, a duration a user types has one
grammar everywhere, and no reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

# --------------------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------------------

TimeSpec = Literal["seconds", "milliseconds"]


def utc_iso(epoch_s: float, timespec: TimeSpec = "milliseconds") -> str:
    """Unix seconds -> ISO 8601 UTC with a Z: 0.0 -> '1970-01-01T00:00:00.000Z'."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """ISO 8601 (a naive time is UTC) -> unix seconds; ValueError when it is not a time."""
    dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


# --------------------------------------------------------------------------------------------------
# Durations: one grammar wherever a user types one
# --------------------------------------------------------------------------------------------------

DURATION_UNITS_S: dict[str, float] = {
    "w": 604800.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
DURATION_FORMS = "a number of seconds or e.g. 500ms, 90s, 5m, 1h30m, 7d, 2w"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class DurationError(ValueError):
    """A duration that does not parse or is out of range; the message says which forms are accepted."""


def parse_duration(
    value: str | float | int, *, allow_zero: bool = False, max_s: float | None = None
) -> float:
    """'90', 90, '90s', '1.5s', '500ms', '5m', '1h30m', '7d', '2w' -> seconds.

    Units may be combined largest first or in any order ('1h30m', '30m1h' are both 5400 s); a bare number
    is seconds. Durations must be finite and positive (or zero with `allow_zero`), and at most `max_s`."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration ({DURATION_FORMS}), got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if _PLAIN_NUMBER.fullmatch(text):
            seconds = float(text)
        elif text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * DURATION_UNITS_S[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise DurationError(f"cannot parse duration {value!r}; write {DURATION_FORMS}")
    else:
        raise DurationError(f"expected a duration ({DURATION_FORMS}), got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "at least 0" if allow_zero else "greater than 0"
        raise DurationError(f"must be {bound}, got {value!r}")
    if max_s is not None and seconds > max_s:
        raise DurationError(f"must be at most {format_duration(max_s)}, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds -> the grammar above, for people: 5400 -> '1h30m', 90 -> '1m30s', 1.5 -> '1.5s', 0 -> '0s'."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite and not negative, got {seconds}")
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n) or "0s"


def prom_duration(seconds: float) -> str:
    """Seconds -> Prometheus duration syntax in one unit, the largest exact one: 3600 -> '1h',
    120 -> '2m', 514 -> '514s', 0.5 -> '500ms'. Prometheus accepts any of these in a range selector."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a Prometheus duration must be positive, got {seconds}")
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms"
    whole = ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


# --------------------------------------------------------------------------------------------------
# Files: a reader never sees half a file
# --------------------------------------------------------------------------------------------------


def write_text_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`. `mode` (e.g. 0o600)
    is set on the temporary file before any byte is written, so a secret is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_json_atomic(
    path: Path, data: Any, *, sort_keys: bool = False, mode: int | None = None, allow_nan: bool = True
) -> None:
    """JSON (indented, newline-terminated; values it cannot encode are written as text) written atomically."""
    text = json.dumps(data, indent=2, sort_keys=sort_keys, default=str, allow_nan=allow_nan) + "\n"
    write_text_atomic(path, text, mode=mode)
