"""Runtime targets: where the stack runs, behind one interface (`base.Target`).

`get_target("local")` is the processes-on-this-machine target (`local.LocalTarget`, owning a detached
supervisor). A kind target plugs in here (a `testbed/runtime/kind.py` with a `KindTarget` implementing
`base.Target`); nothing else in the testbed asks which target it runs on.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from testbed.runtime.base import RuntimeFailure, Target

TARGETS: dict[str, str] = {
    "local": "testbed.runtime.local:LocalTarget",
    "kind": "testbed.runtime.kind:KindTarget",
}


def get_target(name: str = "local", state_dir: Path | None = None) -> Target:
    if name not in TARGETS:
        raise RuntimeFailure(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
    module_name, _, class_name = TARGETS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise RuntimeFailure(
            f"the {name} target is not available in this version", hint="use --target local"
        ) from exc
    target: Target = getattr(module, class_name)(state_dir)
    return target
