"""The SLO rules reach the running Prometheus through POST /-/reload; broken rules fail `up` with
Prometheus' own message (a real Prometheus, started by the supervisor's process table)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from testbed.runtime.base import RuntimeFailure, UpOptions
from testbed.runtime.layout import PortPlan, StateLayout
from testbed.runtime.supervisor import Supervisor

BROKEN = "groups:\n- name: broken\n  rules:\n  - record: job:up:broken\n    expr: sum(up\n"
GOOD = "groups:\n- name: good\n  rules:\n  - record: job:up:sum\n    expr: sum(up)\n"


def test_rules_are_loaded_and_broken_rules_are_named(tmp_path: Path, spare_port_offset: int) -> None:
    layout = StateLayout(tmp_path)
    layout.make_dirs()
    layout.token_file.write_text("token\n")
    supervisor = Supervisor(layout, PortPlan(spare_port_offset), UpOptions(extras=False))
    supervisor.prometheus_binary = shutil.which("prometheus") or pytest.fail("Prometheus missing: make setup")
    supervisor.add_prometheus()

    async def scenario() -> None:
        monitor = asyncio.get_running_loop().create_task(supervisor.processes.monitor(0.05))
        try:
            supervisor.processes.start_all()
            async with httpx.AsyncClient(timeout=5) as client:
                for _ in range(200):  # not running yet: nothing to ask
                    if supervisor.processes.get("prometheus").state == "running":
                        break
                    assert await supervisor.load_rules(client) is False
                    await asyncio.sleep(0.05)
                (layout.rules_dir / "slo-broken.yml").write_text(BROKEN)
                with pytest.raises(RuntimeFailure) as caught:
                    await supervisor.load_rules(client)
                message = caught.value.message
                assert "slo-broken.yml: 5:11" in message and "unclosed left parenthesis" in message

                (layout.rules_dir / "slo-broken.yml").unlink()
                (layout.rules_dir / "slo-good.yml").write_text(GOOD)
                assert await supervisor.load_rules(client) is True
                groups = (await client.get(f"{supervisor.prometheus_url}/api/v1/rules")).json()["data"][
                    "groups"
                ]
                assert [g["name"] for g in groups] == ["good"]
        finally:
            await supervisor.processes.stop_all()
            monitor.cancel()

    asyncio.run(scenario())
