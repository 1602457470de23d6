"""The declared system packages (scripts/system-packages.txt): which are present, at which version, and how
to install the missing ones. `testbed doctor` prints it; `make setup` asks `python -m testbed.sysdeps
--apt-missing` which Debian packages to install. Standard library only: setup runs it before anything else
works. Parsing and judging are pure; `probe` runs `BINARY --version`."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PACKAGES_FILE = Path(__file__).resolve().parents[1] / "scripts" / "system-packages.txt"
_VERSION = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?:\.(\d+))?")


class PackagesFileError(ValueError):
    """scripts/system-packages.txt is malformed (the message names the line)."""


@dataclass(frozen=True)
class Part:
    name: str
    apt_package: str
    minimum: tuple[int, ...]
    binaries: tuple[tuple[str, ...], ...]  # each entry: alternatives, any one of which will do
    purpose: str

    @property
    def minimum_text(self) -> str:
        return ".".join(map(str, self.minimum))


@dataclass
class PartStatus:
    name: str
    apt_package: str
    minimum: str
    purpose: str
    present: bool
    version: str | None = None
    binaries: dict[str, str] = field(default_factory=dict)  # binary -> path
    problem: str = ""  # why it is not usable: a binary missing, or a version below the minimum
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_version(text: str) -> tuple[int, ...] | None:
    match = _VERSION.search(text)
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def parse_packages(text: str, where: str = "scripts/system-packages.txt") -> list[Part]:
    parts = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split(None, 4)
        if len(fields) < 5:
            raise PackagesFileError(
                f"{where}:{number}: expected part, package, minimum version, binaries, purpose; got {line!r}"
            )
        name, package, minimum, binaries, purpose = fields
        version = parse_version(minimum)
        if version is None:
            raise PackagesFileError(f"{where}:{number}: minimum version {minimum!r} is not like 1.2 or 1.2.3")
        parts.append(
            Part(name, package, version, tuple(tuple(b.split("|")) for b in binaries.split(",")), purpose)
        )
    if not parts:
        raise PackagesFileError(f"{where}: declares no package")
    return parts


def load_parts(path: Path = PACKAGES_FILE) -> list[Part]:
    return parse_packages(path.read_text(encoding="utf-8"), str(path))


def advice_for(part: Part, have_apt: bool) -> str:
    if have_apt:
        return f"run `make setup`, or: sudo apt-get install -y --no-install-recommends {part.apt_package}"
    return (
        f"install {part.name} >= {part.minimum_text} with your system's package manager "
        f"(Debian/Ubuntu: {part.apt_package}) so that {' and '.join(a[0] for a in part.binaries)} are on PATH"
    )


def judge(
    part: Part,
    which: Callable[[str], str | None],
    version_of: Callable[[str], str],
    have_apt: bool,
) -> PartStatus:
    """Is this part usable: every binary (one of its alternatives) on PATH, the first at the minimum?"""
    status = PartStatus(part.name, part.apt_package, part.minimum_text, part.purpose, present=False)
    for alternatives in part.binaries:
        found = next(((b, p) for b in alternatives if (p := which(b))), None)
        if found is None:
            status.problem = f"{' or '.join(alternatives)} not on PATH"
            status.advice = advice_for(part, have_apt)
            return status
        status.binaries[found[0]] = found[1]
    first = next(iter(status.binaries.values()))
    version = parse_version(version_of(first))
    status.version = ".".join(map(str, version)) if version else None
    if version is None:
        status.problem = f"`{first} --version` printed no version number"
    elif version < part.minimum:
        status.problem = f"version {status.version} is older than the minimum {part.minimum_text}"
    status.present = not status.problem
    if status.problem:
        status.advice = advice_for(part, have_apt)
    return status


def version_output(binary: str) -> str:
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    # chromium's wrapper script prints shell noise before the version; the regex skips it
    return done.stdout + "\n" + done.stderr


def probe(parts: Sequence[Part] | None = None) -> list[PartStatus]:
    have_apt = shutil.which("apt-get") is not None
    return [judge(p, shutil.which, version_output, have_apt) for p in (parts or load_parts())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.sysdeps", description=__doc__)
    parser.add_argument(
        "--apt-missing",
        action="store_true",
        help="print the missing parts' Debian packages, one a line",
    )
    args = parser.parse_args(argv)
    try:
        statuses = probe()
    except PackagesFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.apt_missing:
        for s in statuses:
            if not s.present:
                print(s.apt_package)
        return 0
    for s in statuses:
        print(f"{s.name}\t{'ok ' + str(s.version) if s.present else 'MISSING: ' + s.problem}")
    return 0 if all(s.present for s in statuses) else 2


if __name__ == "__main__":
    sys.exit(main())
