"""The container image: deploy/Dockerfile is parsed (dockerfile-parse) and linted (hadolint), runs as a
fixed non-root uid from a base pinned to a patch version, holds no secret, copies only what
.dockerignore lets in, and installs exactly the distributions that the shop, the fault controller and
the load generator import (versions from pyproject.toml through deploy/image_requirements.py)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from deploy_support import REPO, require_tool
from dockerfile_parse import DockerfileParser

from deploy.image_requirements import ImageRequirementsError, normalize, requirement_name, select
from sample_shop.topology import SERVICES

DOCKERFILE = REPO / "deploy" / "Dockerfile"
PACKAGE_LIST = REPO / "deploy" / "image-packages.txt"
IMAGE_SOURCES = ("sample_shop", "load")  # the Python packages the image runs
SECRET_WORDS = re.compile(r"(secret|token|password|passwd|api[_-]?key|credential)", re.IGNORECASE)


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(fileobj=DOCKERFILE.open("rb"))
    assert parser.structure, "deploy/Dockerfile parsed to nothing"
    return parser


def test_hadolint_finds_nothing() -> None:
    hadolint = require_tool("hadolint", str(Path(sys.executable).parent / "hadolint"))
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_images_pinned_to_a_patch_version(dockerfile: DockerfileParser) -> None:
    """Both stages are FROM the BASE_IMAGE build argument, whose default is the pinned official image
    (tests/deploy/test_image_build.py builds on a debootstrap base through that argument)."""
    froms = [i["value"].split()[0] for i in dockerfile.structure if i["instruction"] == "FROM"]
    assert froms and set(froms) == {"${BASE_IMAGE}"}, f"FROM {froms}: every stage FROM ${{BASE_IMAGE}}"
    args = [i["value"] for i in dockerfile.structure if i["instruction"] == "ARG"]
    assert [a for a in args if a.startswith("BASE_IMAGE=")], "ARG BASE_IMAGE=<default> before the first FROM"
    bases = dockerfile.parent_images  # the FROMs with the ARG defaults filled in
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), (
            f"base image {base} must be python:3.11.<patch>-slim-<debian release>"
        )
    assert len(set(bases)) == 1, "build and run stages must share one base"


def test_runs_as_a_fixed_non_root_user(dockerfile: DockerfileParser) -> None:
    instructions = [i for i in dockerfile.structure if i["instruction"] != "COMMENT"]
    last_stage = max(n for n, i in enumerate(instructions) if i["instruction"] == "FROM")
    final = instructions[last_stage:]
    users = [i["value"].strip() for i in final if i["instruction"] == "USER"]
    assert users, "the run stage has no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 10000, (
        f"USER {users[-1]}: a numeric uid >= 10000 (runAsNonRoot checks it)"
    )
    assert not gid or (gid.isdigit() and int(gid) > 0)
    after_user = final[max(n for n, i in enumerate(final) if i["instruction"] == "USER") :]
    assert not [i for i in after_user if i["instruction"] in ("RUN", "COPY", "ADD")], "USER must come last"


def test_default_command_starts_a_service(dockerfile: DockerfileParser) -> None:
    cmd = [i["value"] for i in dockerfile.structure if i["instruction"] == "CMD"][-1]
    match = re.fullmatch(r'\["python", "-m", "sample_shop\.([a-z]+)"\]', cmd.strip())
    assert match and match.group(1) in SERVICES, f"CMD {cmd}"


def test_no_secrets_in_the_image_definition(dockerfile: DockerfileParser) -> None:
    for instruction in dockerfile.structure:
        if instruction["instruction"] in ("ENV", "ARG", "LABEL"):
            assert not SECRET_WORDS.search(instruction["value"]), (
                f"line {instruction['startline'] + 1}: {instruction['content']}"
            )
        if instruction["instruction"] == "ADD":
            pytest.fail(f"line {instruction['startline'] + 1}: use COPY, not ADD")


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _glob_regex(glob: str) -> str:
    """Docker's pattern syntax: `**` spans folders, `*` and `?` stay within one."""
    parts = re.split(r"(\*\*|\*|\?)", glob)
    table = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(table.get(part, re.escape(part)) for part in parts)


def _in_context(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or any of its parents."""
    included = True
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        regex = _glob_regex(glob)
        if glob == "**" or any(re.fullmatch(regex, c) for c in candidates):
            included = negate
    return included


def test_build_context_holds_what_the_image_copies_and_no_secret(dockerfile: DockerfileParser) -> None:
    patterns = _dockerignore()
    assert patterns[0] == "**", ".dockerignore must start by excluding everything (allow-list)"
    sources = []
    for instruction in dockerfile.structure:
        if instruction["instruction"] == "COPY" and "--from=" not in instruction["value"]:
            sources += instruction["value"].split()[:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert _in_context(source.rstrip("/"), patterns), f"COPY {source}: excluded by .dockerignore"
    for leaked in (
        "deploy/generated/shop/secrets/admin-token",
        ".testbed/token",
        ".venv/bin/python",
        ".git/config",
        "sample_shop/kit/__pycache__/config.cpython-311.pyc",
        "runs/latest/run.json",
        "sample_shop/.env",
    ):
        assert not _in_context(leaked, patterns), f"{leaked} would be sent to the Docker daemon"


def test_image_requirements_come_from_pyproject() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    selected = select(pyproject, PACKAGE_LIST.read_text())
    names = [requirement_name(r) for r in selected]
    assert "psycopg" in names and "locust" in names
    for heavy in ("scipy", "matplotlib", "chaostoolkit", "ipykernel"):
        assert normalize(heavy) not in names, f"{heavy} does not belong in the service image"


def test_image_requirements_errors_say_where() -> None:
    pyproject = '[project]\ndependencies = ["fastapi>=0.115"]\n'
    with pytest.raises(ImageRequirementsError, match=r"list.txt:2: 'flask' is not in pyproject"):
        select(pyproject, "fastapi\nflask\n", "list.txt")
    with pytest.raises(ImageRequirementsError, match=r"list.txt:1: 'fastapi>=1' is not a bare"):
        select(pyproject, "fastapi>=1\n", "list.txt")
    with pytest.raises(ImageRequirementsError, match=r"list.txt:2: 'FastAPI' repeats line 1"):
        select(pyproject, "fastapi\nFastAPI\n", "list.txt")
    with pytest.raises(ImageRequirementsError, match=r"pyproject\.toml"):
        select("not toml [", "fastapi\n", "list.txt")


OWN_PACKAGES = {
    "sample_shop",
    "load",
    "slo",
    "testbed",
    "chaosshop",
    "deploy",
    "dashboards",
    "bench",
    "notebooks",
}


def _imports() -> Iterator[tuple[Path, str]]:
    """(file, top-level module) for every absolute import in the packages the image ships."""
    for package in IMAGE_SOURCES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    yield from ((path, a.name.split(".")[0]) for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    yield path, node.module.split(".")[0]


def _third_party_imports() -> dict[str, str]:
    """Top-level modules imported by the image's packages that are neither stdlib nor the project's own."""
    found: dict[str, str] = {}
    for path, top in _imports():
        if top not in OWN_PACKAGES and top not in sys.stdlib_module_names:
            found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_image_code_imports_only_what_it_ships() -> None:
    """The image copies sample_shop/ and load/ only: importing the testbed or slo would fail in a pod."""
    for path, top in _imports():
        assert top not in OWN_PACKAGES - set(IMAGE_SOURCES), f"{path.relative_to(REPO)} imports {top}"


def _closure(names: list[str]) -> set[str]:
    """The listed distributions and everything they require (as installed in this venv)."""
    seen: set[str] = set()
    todo = [normalize(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req and not any(f'extra == "{e}"' in req for e in ("binary",)):
                continue
            todo.append(requirement_name(req))
    return seen


def test_image_covers_every_third_party_import() -> None:
    """An import the image cannot satisfy would crash a pod at start; this finds it before any build."""
    listed = select((REPO / "pyproject.toml").read_text(), PACKAGE_LIST.read_text())
    available = _closure([requirement_name(r) for r in listed])
    distributions = metadata.packages_distributions()
    missing = {}
    for module, where in _third_party_imports().items():
        providers = {normalize(d) for d in distributions.get(module, [])}
        if not providers & available:
            missing[module] = f"{where} (provided by {sorted(providers) or 'nothing installed'})"
    assert not missing, f"imports not installed in the image (add to deploy/image-packages.txt): {missing}"
