"""Runtime targets: where the stack runs, behind one interface (`base.Target`).

`get_target("local")` is the processes-on-this-machine target (`local.LocalTarget`, owning a detached
supervisor); `get_target("kind")` the kind cluster of `make cluster images deploy` (`kind.KindTarget`).
What differs between them is on the `Target` protocol (which `up` options they honour, whether a running
stack satisfies `up`, what `down` does), so nothing else in the testbed asks which target it runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from testbed.runtime.base import RuntimeFailure, Target


def _local(state_dir: Path | None) -> Target:
    from testbed.runtime.local import LocalTarget

    return LocalTarget(state_dir)


def _kind(state_dir: Path | None) -> Target:
    from testbed.runtime.kind import KindTarget  # imported on demand: the CLI starts faster without it

    return KindTarget(state_dir)


TARGETS: dict[str, Callable[[Path | None], Target]] = {"local": _local, "kind": _kind}


def get_target(name: str = "local", state_dir: Path | None = None) -> Target:
    if name not in TARGETS:
        raise RuntimeFailure(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
    return TARGETS[name](state_dir)
