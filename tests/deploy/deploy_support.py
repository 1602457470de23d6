"""Static checks of the kind deployment: shared fixtures.

Nothing here needs a cluster (this machine cannot run Docker or kind). The fixtures do what
`make deploy` does up to the apply: copy deploy/ to a temporary folder, run the real
`deploy.assemble` into it (secrets, SLO rules from slo/specs, Grafana provisioning from dashboards/),
and render every overlay with the real `kubectl kustomize`. Each overlay is rendered once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
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


def dashboards_delivered() -> bool:
    """dashboards/ holds the Grafana provisioning that the kind deployment consumes (issue 7)."""
    return (REPO / "dashboards" / "provisioning").is_dir()


@pytest.fixture(scope="session")
def deploy_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, AssemblyReport]]:
    """A copy of deploy/ with deploy/generated assembled from the repository's real inputs."""
    root = tmp_path_factory.mktemp("deploy-tree")
    tree = root / "deploy"
    shutil.copytree(REPO / "deploy", tree, ignore=shutil.ignore_patterns("generated", "__pycache__", "*.pyc"))
    # Until dashboards/ has its provisioning files, a minimal stand-in keeps the rest checkable;
    # the dashboard consistency tests skip themselves in that case and say so.
    dashboards = REPO / "dashboards" if dashboards_delivered() else FIXTURES / "dashboards"
    report = assemble(tree / "generated", dashboards)
    yield tree, report


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl")
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


_rendered: dict[str, list[dict[str, Any]]] = {}


@pytest.fixture(scope="session")
def render(deploy_tree: tuple[Path, AssemblyReport]) -> Any:
    """render(overlay) -> the overlay's objects, rendered once per session."""
    tree, _ = deploy_tree

    def _render(overlay: str) -> list[dict[str, Any]]:
        if overlay not in _rendered:
            _rendered[overlay] = kustomize(tree / "overlays" / overlay)
        return _rendered[overlay]

    return _render


@pytest.fixture(scope="session")
def kind_objects(render: Any) -> list[dict[str, Any]]:
    return render("kind")


@pytest.fixture(scope="session")
def all_objects(render: Any) -> list[dict[str, Any]]:
    """Every object of every overlay (the kind-load Job included)."""
    return [obj for overlay in OVERLAYS for obj in render(overlay)]
