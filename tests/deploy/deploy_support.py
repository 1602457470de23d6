"""Static checks of the kind deployment: shared inputs, rendered once per session.

Plain cached functions rather than conftest fixtures: a conftest.py here would be imported as the
module `conftest` and shadow the suite's root conftest for the directories collected after it.

Nothing here needs a cluster (this machine cannot run kind; the image itself is built and run by
test_image_build.py with docker_support.py). The fixtures do what
`make deploy` does up to the apply: copy deploy/ to a temporary folder, run the real
`deploy.assemble` into it (secrets, SLO rules from slo/specs, Grafana provisioning from dashboards/),
and render every overlay with the real `kubectl kustomize`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `deploy` is run as `python -m deploy.assemble` from the repository root
    sys.path.insert(0, str(REPO))

from deploy.assemble import AssemblyReport, assemble  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
OVERLAYS = sorted(p.name for p in (REPO / "deploy" / "overlays").iterdir() if p.is_dir())


def require_tool(name: str, *candidates: str) -> str:
    """Path of an external tool. Missing: a skip on a developer's machine, a failure in CI (CI=true)."""
    found = shutil.which(name) or next((c for c in candidates if Path(c).exists()), None)
    if found:
        return found
    message = f"`{name}` is not installed; the deploy checks need it"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must have it)")
    pytest.skip(message)


_TREE: tuple[Path, AssemblyReport] | None = None
_RENDERED: dict[str, list[dict[str, Any]]] = {}


def deploy_tree() -> tuple[Path, AssemblyReport]:
    """A copy of deploy/ with deploy/generated assembled from the repository's real inputs (once)."""
    global _TREE
    if _TREE is None:
        root = Path(tempfile.mkdtemp(prefix="deploy-tree-"))
        atexit.register(shutil.rmtree, root, True)
        tree = root / "deploy"
        shutil.copytree(
            REPO / "deploy", tree, ignore=shutil.ignore_patterns("generated", "__pycache__", "*.pyc")
        )
        _TREE = (tree, assemble(tree / "generated", REPO / "dashboards"))
    return _TREE


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl")
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def render(overlay: str) -> list[dict[str, Any]]:
    """The overlay's objects, rendered once per test session."""
    if overlay not in _RENDERED:
        _RENDERED[overlay] = kustomize(deploy_tree()[0] / "overlays" / overlay)
    return _RENDERED[overlay]


def kind_objects() -> list[dict[str, Any]]:
    return render("kind")


def all_objects() -> list[dict[str, Any]]:
    """Every object of every overlay (the kind-load Job included)."""
    return [obj for overlay in OVERLAYS for obj in render(overlay)]
