"""Select the container image's requirements from pyproject.toml.

The image installs only the distributions named in deploy/image-packages.txt, with the version
specifiers that pyproject.toml gives them, so versions live in one place and the image stays slim.
Runs inside the Docker build with nothing but the standard library:

    python image_requirements.py pyproject.toml image-packages.txt > requirements.txt

A name that pyproject.toml does not declare is an error (exit 2, with file and line), never skipped.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class ImageRequirementsError(ValueError):
    """The package list or pyproject.toml is wrong; the message says where."""


@dataclass(frozen=True)
class PackageName:
    name: str
    line: int  # 1-based line in the package list, for error messages


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution name of a PEP 508 requirement string (extras and versions stripped)."""
    match = _NAME.match(requirement)
    if not match:
        raise ImageRequirementsError(f"not a requirement: {requirement!r}")
    return normalize(match.group(1))


def parse_package_list(text: str, source: str = "image-packages.txt") -> list[PackageName]:
    """One distribution name per line; `#` starts a comment. Duplicates and specifiers are errors."""
    names: list[PackageName] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", line):
            raise ImageRequirementsError(
                f"{source}:{number}: {line!r} is not a bare distribution name "
                "(versions belong in pyproject.toml)"
            )
        key = normalize(line)
        if key in seen:
            raise ImageRequirementsError(f"{source}:{number}: {line!r} repeats line {seen[key]}")
        seen[key] = number
        names.append(PackageName(key, number))
    if not names:
        raise ImageRequirementsError(f"{source}: lists no package")
    return names


def select(pyproject_text: str, package_list_text: str, list_source: str = "image-packages.txt") -> list[str]:
    """The pyproject.toml requirement strings of the listed distributions, in list order."""
    try:
        project = tomllib.loads(pyproject_text)["project"]
        declared: list[str] = list(project["dependencies"])
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ImageRequirementsError(f"pyproject.toml: cannot read [project].dependencies ({exc})") from exc
    by_name = {requirement_name(req): req for req in declared}
    selected: list[str] = []
    for package in parse_package_list(package_list_text, list_source):
        if package.name not in by_name:
            raise ImageRequirementsError(
                f"{list_source}:{package.line}: {package.name!r} is not in pyproject.toml "
                "[project].dependencies; add it there first"
            )
        selected.append(by_name[package.name])
    return selected


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: image_requirements.py PYPROJECT_TOML PACKAGE_LIST", file=sys.stderr)
        return 2
    pyproject, package_list = (Path(arg) for arg in argv)
    try:
        lines = select(pyproject.read_text(), package_list.read_text(), str(package_list))
    except (OSError, ImageRequirementsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
