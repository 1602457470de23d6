"""`python -m deploy.assemble`: secrets are created once with mode 0600 and then kept, the datasource
URLs are pointed at the cluster without losing the cross-links, and every bad input is an error that
names the file and field and writes nothing."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from deploy_support import FIXTURES, REPO

from deploy.assemble import (
    GRAFANA_DASHBOARDS_MOUNT,
    IN_CLUSTER_URLS,
    AssembleError,
    adapt_dashboard_provider,
    adapt_datasources,
    assemble,
    database_owners,
)
from sample_shop.topology import DATASOURCE_UIDS, SERVICES

DASHBOARDS = FIXTURES / "dashboards"


def _datasources() -> dict:
    return yaml.safe_load((DASHBOARDS / "provisioning" / "datasources" / "datasources.yaml").read_text())


def test_secrets_are_private_and_kept_across_runs(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    first = assemble(out, DASHBOARDS)
    secrets = sorted((out / "shop" / "secrets").iterdir()) + sorted(
        (out / "observability" / "secrets").iterdir()
    )
    assert {p.name for p in (out / "shop" / "secrets").iterdir()} == {
        "admin-token",
        "jwt-secret",
        "db-postgres",
        *(f"db-{n}" for n in database_owners()),
    }
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert len(path.read_text()) >= 32, path
    assert stat.S_IMODE((out / "shop" / "secrets").stat().st_mode) == 0o700
    values = {p: p.read_text() for p in secrets}
    assert len(set(values.values())) == len(secrets) - 1, "only the token copy for Prometheus repeats a value"
    assert (out / "observability" / "secrets" / "admin-token").read_text() == Path(
        first.admin_token_file
    ).read_text()

    second = assemble(out, DASHBOARDS)
    assert not second.secrets_created and len(second.secrets_kept) == len(secrets) - 1
    assert {p: p.read_text() for p in secrets} == values, "a re-deploy must keep the token and the passwords"


def test_database_owners_follow_topology() -> None:
    assert database_owners() == [s.name for s in SERVICES.values() if s.owns_database]


def test_datasources_keep_their_links_and_get_cluster_urls() -> None:
    adapted, urls = adapt_datasources(_datasources(), "datasources.yaml")
    by_uid = {ds["uid"]: ds for ds in adapted["datasources"]}
    for kind, uid in DATASOURCE_UIDS.items():
        assert by_uid[uid]["url"] == IN_CLUSTER_URLS[kind] == urls[uid]
    original = {ds["uid"]: ds for ds in _datasources()["datasources"]}
    assert by_uid["shop-loki"]["jsonData"] == original["shop-loki"]["jsonData"]
    assert by_uid["shop-prometheus"]["jsonData"] == original["shop-prometheus"]["jsonData"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["datasources"][0].update(uid="prom"),
            r"datasources\[0\]\.uid: 'prom' is not one of the fixed",
        ),
        (
            lambda d: d["datasources"][1].update(type="prometheus"),
            r"datasources\[1\]\.type: uid 'shop-loki' must be",
        ),
        (
            lambda d: d["datasources"].append(dict(d["datasources"][2])),
            r"datasources\[3\]\.uid: 'shop-jaeger' is provisioned twice",
        ),
        (lambda d: d.pop("datasources"), r"expected a Grafana provisioning file with a `datasources:` list"),
    ],
)
def test_bad_datasources_are_rejected_with_their_place(change, message: str) -> None:
    doc = _datasources()
    change(doc)
    with pytest.raises(AssembleError, match=message):
        adapt_datasources(doc, "datasources.yaml")


def test_dashboard_provider_reads_the_pod_mount() -> None:
    doc = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards" / "shop.yaml").read_text())
    adapted = adapt_dashboard_provider(doc, "shop.yaml")
    (provider,) = adapted["providers"]
    assert provider["options"]["path"] == GRAFANA_DASHBOARDS_MOUNT
    assert "foldersFromFilesStructure" not in provider["options"]
    assert provider["folder"] == "Chaos shop"
    with pytest.raises(AssembleError, match=r"providers\[0\]\.type: only `file`"):
        adapt_dashboard_provider({"providers": [{"name": "x", "type": "sql"}]}, "p.yaml")


def _broken_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "dashboards"
    shutil.copytree(DASHBOARDS, copy)
    return copy


def test_bad_inputs_write_nothing(tmp_path: Path) -> None:
    broken = _broken_copy(tmp_path)
    (broken / "broken.json").write_text('{"title": "x",\n "panels": [}\n')
    out = tmp_path / "generated"
    with pytest.raises(AssembleError, match=r"broken\.json:2: not valid JSON"):
        assemble(out, broken)
    assert not (out / "observability").exists(), "nothing half-written for kustomize to pick up"
    assert [p.name for p in out.iterdir()] == ["shop"], (
        f"left behind: {sorted(p.name for p in out.iterdir())}"
    )

    (broken / "broken.json").unlink()
    (broken / "provisioning" / "datasources" / "datasources.yaml").write_text("datasources: [\n  {uid: x\n")
    with pytest.raises(AssembleError, match=r"datasources\.yaml:\d+: not valid YAML"):
        assemble(out, broken)

    shutil.rmtree(broken / "provisioning" / "dashboards")
    with pytest.raises(AssembleError, match=r"provisioning/dashboards: folder not found"):
        assemble(out, broken)


def test_cli_reports_json_and_fails_with_exit_2(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "deploy.assemble", "--out", str(tmp_path / "gen"), "--dashboards"]
    ok = subprocess.run(
        [*command, str(DASHBOARDS), "--json"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["rule_files"] == ["slo-rules.yml"]
    assert report["dashboards"] == ["test-overview.json"]
    assert Path(report["admin_token_file"]).is_file()

    bad = subprocess.run(
        [*command, str(tmp_path / "missing")], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2
    assert "error:" in bad.stderr and "missing" in bad.stderr and "Traceback" not in bad.stderr
