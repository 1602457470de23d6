"""The notebooks themselves: stored without outputs, executed headless (`make notebooks`, nbclient) against
a real run folder without an error, and against a missing or partial folder with a clear message in the
first cell instead of a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from notebooks.execute import execute, stored_notebooks

# every case starts a Jupyter kernel: seconds of CPU each, so out of `make test-fast`
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = stored_notebooks()


def _outputs(nb: nbformat.NotebookNode) -> list[tuple[int, dict[str, Any]]]:
    return [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.get("outputs", [])]


def _text(output: dict[str, Any]) -> str:
    if output["output_type"] == "stream":
        return str(output["text"])
    if output["output_type"] == "error":
        return "\n".join(output.get("traceback", []))
    return str(output.get("data", {}).get("text/plain", ""))


def _first_cell_text(nb: nbformat.NotebookNode) -> str:
    """Output of the first cell that runs anything: the one right after the parameters cell."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    return "".join(_text(o) for o in nb.cells[index + 1].outputs)


def _assert_no_traceback(nb: nbformat.NotebookNode, name: str) -> None:
    for i, output in _outputs(nb):
        assert output["output_type"] != "error", f"{name} cell {i}: {_text(output)[-2000:]}"
        assert "Traceback" not in _text(output), f"{name} cell {i}: {_text(output)[-2000:]}"


def _kernels_left() -> list[int]:
    """Kernel processes started by this test process that are still running."""
    return [p.pid for p in psutil.Process().children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for _, o in _outputs(nb))


# --------------------------------------------------------------------------------------------------
# Stored notebooks (no stack needed)
# --------------------------------------------------------------------------------------------------


def test_there_are_the_four_notebooks() -> None:
    assert [p.stem for p in NOTEBOOKS] == ["01-overview", "02-compare", "03-traces-logs", "04-slo-whatif"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_notebooks_have_no_outputs_and_a_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [], f"{path.name}: a cell has outputs; clear them before committing"
        assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], (
        f"{path.name}: the first code cell is the parameters cell"
    )
    assert "RUN = None" in tagged[0].source
    assert "open_run(RUN)" in code[1].source and "run.show()" in code[1].source
    assert nb.metadata["kernelspec"]["name"] == "python3"


# --------------------------------------------------------------------------------------------------
# Executed against a real run folder
# --------------------------------------------------------------------------------------------------


@pytest.mark.stack
@pytest.mark.timeout(600)
def test_make_notebooks_executes_every_notebook(real_run: Path) -> None:
    env = {**os.environ, "TESTBED_RUN": str(real_run)}
    done = subprocess.run(
        ["make", "notebooks"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    progress = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == len(NOTEBOOKS) and all(" ok in " in line for line in progress), done.stdout
    report = json.loads((real_run / "slo" / "report.json").read_text())
    for path in NOTEBOOKS:
        executed = nbformat.read(real_run / "notebooks" / path.name, as_version=4)
        _assert_no_traceback(executed, path.name)
        warnings = [_text(o) for _, o in _outputs(executed) if o.get("name") == "stderr"]
        assert warnings == [], f"{path.name} wrote to stderr: {warnings}"
        assert _images(executed) >= 2, f"{path.name}: its plots are missing"
        assert real_run.name in _first_cell_text(executed)
        text = "".join(_text(o) for _, o in _outputs(executed))
        assert "Cannot analyse" not in text
    overview = nbformat.read(real_run / "notebooks" / "01-overview.ipynb", as_version=4)
    overview_text = "".join(_text(o) for _, o in _outputs(overview))
    assert all(s["name"] in overview_text for s in report["slos"])
    # the stored notebooks stay clean
    assert all(c.get("outputs", []) == [] for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells)


@pytest.mark.stack
@pytest.mark.timeout(600)
def test_parameters_are_injected_and_a_run_compares_with_another(real_run: Path, tmp_path: Path) -> None:
    """The run against itself as OTHER_RUN: the run-versus-run section must find no difference at all,
    and print the score and verdict slo.compare gives (PASS, or FAIL when a critical SLO's fault phase
    has too few slices with events to decide: slo/stats.py's no-data rule, never a silent pass)."""
    out = tmp_path / "02-compare.ipynb"
    executed = execute(
        REPO / "notebooks" / "02-compare.ipynb", real_run, out, 300, {"OTHER_RUN": str(real_run)}
    )
    _assert_no_traceback(executed, out.name)
    assert "injected-parameters" in executed.cells[2].metadata["tags"]
    text = "".join(_text(o) for _, o in _outputs(executed))
    assert f"baseline: {real_run.name} [fault]  →  candidate: {real_run.name} [fault]" in text
    from notebooks.analysis import compare
    from notebooks.analysis.run import open_run
    from slo.spec import load_slos

    run = open_run(real_run)
    fault = run.phase("fault")
    assert fault is not None
    table, report = compare.slo_comparison(load_slos(), (run.slo_source(), fault), (run.slo_source(), fault))
    assert not table["classification"].isin(["high", "low"]).any(), table
    assert f"SLOs: score {report.result.score:.0f} → {report.result.verdict.upper()}" in text
    if report.result.verdict != "pass":
        assert set(table[table["failed"]]["classification"]) == {"nodata"}, table


@pytest.mark.stack
@pytest.mark.timeout(600)
def test_a_partial_run_folder_degrades_sections_with_a_message(real_run: Path, tmp_path: Path) -> None:
    partial = tmp_path / real_run.name
    shutil.copytree(real_run, partial, ignore=shutil.ignore_patterns("notebooks"))
    shutil.rmtree(partial / "traces")
    (partial / "logs" / "logs.jsonl").write_text("")
    (partial / "slo" / "report.json").unlink()
    (partial / "metrics" / "series.parquet").write_bytes(b"PAR1 cut short")
    (partial / "phases.json").unlink()
    expected = {
        "01-overview": [
            "✗ slo/report.json",
            "note: no usable phases",
            "phases: run ",
            "⚠ skipped: slo/report.json is missing or empty",
        ],
        "03-traces-logs": [
            "✗ traces/spans.jsonl",
            "⚠ skipped: traces/spans.jsonl is missing or empty",
            "⚠ skipped: logs/logs.jsonl is missing or empty",
        ],
        "04-slo-whatif": ["✓ metrics/series.parquet", "⚠ skipped: metrics/series.parquet cannot be read"],
    }
    for name, messages in expected.items():
        executed = execute(REPO / "notebooks" / f"{name}.ipynb", partial, tmp_path / f"{name}.ipynb", 300)
        _assert_no_traceback(executed, name)
        first = _first_cell_text(executed)
        text = "".join(_text(o) for _, o in _outputs(executed))
        assert messages[0] in first, first
        assert all(m in text for m in messages[1:]), text
        assert _kernels_left() == [], "a kernel outlived its notebook"
    # the parts that are there still give their sections
    assert _images(nbformat.read(tmp_path / "01-overview.ipynb", as_version=4)) >= 2


# --------------------------------------------------------------------------------------------------
# A missing run folder (no stack needed)
# --------------------------------------------------------------------------------------------------


def test_make_notebooks_without_a_run_folder_says_how_to_get_one(tmp_path: Path) -> None:
    env = {**os.environ, "TESTBED_RUNS_DIR": str(tmp_path / "runs")}
    env.pop("TESTBED_RUN", None)
    done = subprocess.run(
        [sys.executable, "-m", "notebooks.execute"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no such run folder" in done.stderr and "make experiment" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_missing_run_folder_gives_a_clear_first_cell(path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "latest"
    executed = execute(path, missing, tmp_path / path.name, 120)
    _assert_no_traceback(executed, path.name)
    first = _first_cell_text(executed)
    assert f"✗ Cannot analyse: {missing}: no such run folder" in first
    assert "make experiment" in first
    later = "".join(_text(o) for i, o in _outputs(executed) if i > 2)
    assert "⚠ skipped: no run folder to analyse" in later
    assert _kernels_left() == [], "a kernel outlived its notebook"
