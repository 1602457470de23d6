"""`make notebooks`: execute every notebook headless (nbclient) against one run folder.

    python -m notebooks.execute [NOTEBOOK ...] [--run RUN] [--out DIR] [--param NAME=VALUE ...]

The run folder is --run, else $TESTBED_RUN, else ($TESTBED_RUNS_DIR or runs)/latest; it is handed to the
notebooks as $TESTBED_RUN. Executed copies go to RUN/notebooks/ (or --out), never over the stored
notebooks, which stay without outputs. One progress line per notebook; exit status 0 when every notebook
ran without an error, 1 when one failed (its partly executed copy is still written, to read the error
in), 2 when there is no usable run folder or no notebook to run.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import NoSuchKernel
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from notebooks.analysis.run import PRODUCE_HINT, REPO_ROOT, RUN_ENV, open_run

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
KERNEL = "python3"
KERNEL_HINT = (
    f"no '{KERNEL}' Jupyter kernel: run `make setup` "
    "(or `.venv/bin/python -m ipykernel install --sys-prefix`)"
)
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def stored_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def select(names: Sequence[str]) -> list[Path]:
    """Notebooks by path or by name (`01-overview`, `01-overview.ipynb`); all of them by default."""
    if not names:
        return stored_notebooks()
    chosen = []
    for name in names:
        path = Path(name)
        if not path.is_file():
            path = NOTEBOOKS_DIR / (name if name.endswith(".ipynb") else f"{name}.ipynb")
        if not path.is_file():
            known = ", ".join(p.stem for p in stored_notebooks())
            raise FileNotFoundError(f"no notebook {name!r}; notebooks: {known}")
        chosen.append(path)
    return chosen


def parse_parameters(items: Sequence[str]) -> dict[str, Any]:
    """NAME=VALUE pairs; VALUE is a Python literal (30, None, "text", (0.9, 0.99)) or else a string."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--param {item!r}: write NAME=VALUE, e.g. --param SLOWEST=10")
        try:
            out[name] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[name] = raw
    return out


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict[str, Any]) -> None:
    """As papermill does: a cell tagged `injected-parameters` right after the `parameters` cell, setting
    the given names (ValueError when the notebook has no parameters cell)."""
    if not parameters:
        return
    index = next(
        (i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), None
    )
    if index is None:
        raise ValueError("the notebook has no cell tagged 'parameters'")
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
    cell.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(index + 1, cell)


def execute(
    path: Path, run_root: Path, out_path: Path, timeout_s: float, parameters: dict[str, Any] | None = None
) -> nbformat.NotebookNode:
    """Run one notebook in a fresh kernel started in the repository root with $TESTBED_RUN = run_root and
    write the executed copy to out_path (also when a cell fails). Raises what nbclient raises."""
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, parameters or {})
    # IPC sockets in a private folder: no TCP port to pick, and no "unencrypted TCP" warning per kernel.
    with tempfile.TemporaryDirectory(prefix="nb-kernel-") as sockets:
        km = KernelManager(kernel_name=KERNEL, transport="ipc", ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(
            nb, km=km, timeout=timeout_s, resources={"metadata": {"path": str(REPO_ROOT)}}
        )
        try:
            # cleanup_kc: a client given its kernel manager does not shut the kernel down by itself
            client.execute(cleanup_kc=True, env={**os.environ, RUN_ENV: str(run_root)})
        finally:
            if km.has_kernel:  # a failure before nbclient's own cleanup
                km.shutdown_kernel(now=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out_path)
    return nb


def _failure(exc: Exception) -> str:
    if isinstance(exc, CellExecutionError):
        return f"{exc.ename}: {exc.evalue}"
    if isinstance(exc, NoSuchKernel):
        return KERNEL_HINT
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m notebooks.execute", description="Execute the notebooks headless against a run folder."
    )
    parser.add_argument(
        "notebooks", nargs="*", help="notebook names or paths (default: every notebooks/*.ipynb)"
    )
    parser.add_argument("--run", help=f"run folder (default: ${RUN_ENV}, else runs/latest)")
    parser.add_argument("--out", help="folder for the executed copies (default: RUN/notebooks)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a parameter of the notebooks' parameters cell (repeatable), e.g. --param SLOWEST=10",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a cell may take (default 300)")
    args = parser.parse_args(argv)

    run = open_run(args.run)
    if not run.ok or run.paths is None:
        print(f"error: {run.error}\n{PRODUCE_HINT}", file=sys.stderr)
        return 2
    try:
        notebooks = select(args.notebooks)
        parameters = parse_parameters(args.param)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no notebook in {NOTEBOOKS_DIR}", file=sys.stderr)
        return 2
    out_dir = Path(args.out).resolve() if args.out else run.paths.root / "notebooks"
    print(f"executing {len(notebooks)} notebook(s) against {run.paths.root}", flush=True)
    failed = 0
    for i, path in enumerate(notebooks, 1):
        target = out_dir / path.name
        started = time.monotonic()
        try:
            execute(path, run.paths.root, target, args.timeout, parameters)
        except (
            CellExecutionError,
            CellTimeoutError,
            DeadKernelError,
            NoSuchKernel,
            RuntimeError,
            ValueError,
        ) as exc:
            failed += 1
            print(f"[{i}/{len(notebooks)}] {path.name:<24} FAILED after {time.monotonic() - started:.1f} s: "
                  f"{_failure(exc)} (see {target})", flush=True)  # fmt: skip
            continue
        print(
            f"[{i}/{len(notebooks)}] {path.name:<24} ok in {time.monotonic() - started:.1f} s -> {target}",
            flush=True,
        )
    if failed:
        print(f"{failed} of {len(notebooks)} notebook(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
