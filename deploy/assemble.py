"""`python -m deploy.assemble`: write the generated parts of the kind deployment into deploy/generated/.

Kustomize cannot compute anything, and some inputs of the deployment are computed or secret:

* deploy/generated/shop/            secrets of namespace `shop`: the admin (fault API) token, the JWT
                                     secret, a PostgreSQL password per service that owns data
                                     (sample_shop/topology.py says which), all random, created once and
                                     then kept, so a re-deploy keeps the token the host holds and the
                                     passwords the database was initialised with;
* deploy/generated/observability/   the SLO rules (generated from slo/specs by slo.rules, the same
                                     generator as `testbed slo rules`), Grafana's provisioning taken from
                                     dashboards/ with the datasource URLs pointed at the in-cluster
                                     Services, every dashboard JSON, the token Prometheus uses to
                                     scrape the fault controller, and the alert webhook's receiver
                                     (testbed/runtime/alertsink.py, run from the shop image).

Each folder is a kustomize Component that the overlays include. The folder is git-ignored; secret
files are mode 0600. Errors name the file and field and exit 2; nothing half-written is left for
kustomize to pick up (each folder is built beside and then swapped in).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sample_shop.topology import DATASOURCE_UIDS, GRAFANA_PORT, JAEGER_UI_PORT, LOKI_PORT, PROMETHEUS_PORT
from sample_shop.topology import SERVICES as SHOP_SERVICES

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "deploy" / "generated"
DEFAULT_DASHBOARDS = REPO_ROOT / "dashboards"

SHOP_NAMESPACE = "shop"
OBSERVABILITY_NAMESPACE = "shop-observability"
# Where the Grafana Deployment (deploy/components/observability/grafana.yaml) mounts the dashboards.
GRAFANA_DASHBOARDS_MOUNT = "/etc/grafana/dashboards"
# Grafana reaches the backends through their Services; keys are those of topology.DATASOURCE_UIDS.
IN_CLUSTER_URLS: dict[str, str] = {
    "prometheus": f"http://prometheus.{OBSERVABILITY_NAMESPACE}.svc:{PROMETHEUS_PORT}",
    "loki": f"http://loki.{OBSERVABILITY_NAMESPACE}.svc:{LOKI_PORT}",
    "jaeger": f"http://jaeger.{OBSERVABILITY_NAMESPACE}.svc:{JAEGER_UI_PORT}",
}
GRAFANA_URL = f"http://127.0.0.1:{GRAFANA_PORT}"  # the host port of kind-config.yaml
# The receiver of Alertmanager's pages on kind is the local stack's (deploy/components/observability/
# alert-webhook.yaml runs it from the shop image): one file, standard library and sample_shop only.
ALERT_WEBHOOK_SOURCE = REPO_ROOT / "testbed" / "runtime" / "alertsink.py"

ADMIN_TOKEN_FILE = "admin-token"
_CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_COMPONENT_HEADER = {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component"}


class AssembleError(ValueError):
    """An input is missing or wrong; the message names the file and field and says how to fix it."""


@dataclass
class AssemblyReport:
    out: str
    admin_token_file: str
    secrets_created: list[str] = field(default_factory=list)
    secrets_kept: list[str] = field(default_factory=list)
    rule_files: list[str] = field(default_factory=list)
    dashboards: list[str] = field(default_factory=list)
    datasources: dict[str, str] = field(default_factory=dict)  # uid -> in-cluster URL


# --------------------------------------------------------------------------------------------------
# Pure parts: names and documents
# --------------------------------------------------------------------------------------------------


def database_owners() -> list[str]:
    """Services that own a PostgreSQL database on kind, in topology order."""
    return [s.name for s in SHOP_SERVICES.values() if s.owns_database]


def shop_secret_names() -> list[str]:
    """Secret files of the shop component, relative to its secrets/ folder."""
    return [ADMIN_TOKEN_FILE, "jwt-secret", "db-postgres", *(f"db-{name}" for name in database_owners())]


def _generator(name: str, namespace: str, files: list[str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "files": files}


def check_configmap_key(name: str, source: Path) -> None:
    if not _CONFIGMAP_KEY.fullmatch(name) or len(name) > 253:
        raise AssembleError(
            f"{source}: the file name {name!r} cannot be a ConfigMap key; use letters, digits, '-', '_', '.'"
        )


def adapt_datasources(doc: Any, source: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Point the provisioned datasources at the in-cluster Services.

    Every datasource must carry one of the fixed UIDs of topology.DATASOURCE_UIDS and the matching
    type; everything else (links between traces, logs and exemplars) is kept as written."""
    if not isinstance(doc, dict) or not isinstance(doc.get("datasources"), list):
        raise AssembleError(f"{source}: expected a Grafana provisioning file with a `datasources:` list")
    kind_by_uid = {uid: kind for kind, uid in DATASOURCE_UIDS.items()}
    adapted = dict(doc)
    adapted["datasources"] = []
    urls: dict[str, str] = {}
    for index, entry in enumerate(doc["datasources"]):
        where = f"{source}: datasources[{index}]"
        if not isinstance(entry, dict):
            raise AssembleError(f"{where}: expected a mapping")
        uid = entry.get("uid")
        if uid not in kind_by_uid:
            raise AssembleError(
                f"{where}.uid: {uid!r} is not one of the fixed datasource UIDs "
                f"{sorted(kind_by_uid)} (sample_shop/topology.py DATASOURCE_UIDS)"
            )
        kind = kind_by_uid[uid]
        if entry.get("type") != kind:
            raise AssembleError(
                f"{where}.type: uid {uid!r} must be of type {kind!r}, got {entry.get('type')!r}"
            )
        if uid in urls:
            raise AssembleError(f"{where}.uid: {uid!r} is provisioned twice")
        urls[uid] = IN_CLUSTER_URLS[kind]
        adapted["datasources"].append({**entry, "url": IN_CLUSTER_URLS[kind]})
    return adapted, urls


def adapt_dashboard_provider(doc: Any, source: str) -> dict[str, Any]:
    """Point every file provider at the folder where the Grafana pod mounts the dashboards."""
    if not isinstance(doc, dict) or not isinstance(doc.get("providers"), list) or not doc["providers"]:
        raise AssembleError(
            f"{source}: expected a Grafana dashboard provisioning file with a `providers:` list"
        )
    adapted = dict(doc)
    adapted["providers"] = []
    for index, provider in enumerate(doc["providers"]):
        where = f"{source}: providers[{index}]"
        if not isinstance(provider, dict):
            raise AssembleError(f"{where}: expected a mapping")
        if provider.get("type", "file") != "file":
            raise AssembleError(f"{where}.type: only `file` providers can be provisioned from ConfigMaps")
        options = dict(provider.get("options") or {})
        options["path"] = GRAFANA_DASHBOARDS_MOUNT
        # A ConfigMap is flat: sub-folders of dashboards/ would not survive the mount.
        options.pop("foldersFromFilesStructure", None)
        adapted["providers"].append({**provider, "options": options})
    return adapted


def shop_kustomization() -> dict[str, Any]:
    """The shop component: its three Secrets, from the files in secrets/."""
    db_files = ["postgres=secrets/db-postgres", *(f"{n}=secrets/db-{n}" for n in database_owners())]
    ns = SHOP_NAMESPACE
    return {
        **_COMPONENT_HEADER,
        "secretGenerator": [
            _generator("shop-admin-token", ns, [f"token=secrets/{ADMIN_TOKEN_FILE}"]),
            _generator("shop-jwt", ns, ["secret=secrets/jwt-secret"]),
            _generator("shop-db", ns, db_files),
        ],
    }


def observability_kustomization(
    rule_files: Sequence[str],
    datasource_files: Sequence[str],
    provider_files: Sequence[str],
    dashboard_files: Sequence[str],
) -> dict[str, Any]:
    """The observability component: rules, Grafana provisioning and dashboards, the alert webhook's
    receiver, and two Secrets."""
    ns = OBSERVABILITY_NAMESPACE
    return {
        **_COMPONENT_HEADER,
        "configMapGenerator": [
            _generator("prometheus-slo-rules", ns, [f"rules/{f}" for f in rule_files]),
            _generator("grafana-datasources", ns, [f"datasources/{f}" for f in datasource_files]),
            _generator("grafana-dashboard-providers", ns, [f"providers/{f}" for f in provider_files]),
            _generator("grafana-dashboards", ns, [f"dashboards/{f}" for f in dashboard_files]),
            _generator("alert-webhook-receiver", ns, [f"alert-webhook/{ALERT_WEBHOOK_SOURCE.name}"]),
        ],
        "secretGenerator": [
            _generator("prometheus-shop-token", ns, [f"token=secrets/{ADMIN_TOKEN_FILE}"]),
            {
                **_generator("grafana-admin", ns, ["password=secrets/grafana-admin-password"]),
                "literals": ["user=admin"],
            },
        ],
    }


# --------------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------------


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)


def ensure_secrets(folder: Path, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Create each missing secret file (random, URL-safe, mode 0600); keep the ones that exist."""
    created, kept = [], []
    for name in names:
        path = folder / name
        if path.exists():
            if not path.read_text().strip():
                raise AssembleError(f"{path}: secret file is empty; delete it to have a new one generated")
            path.chmod(0o600)
            kept.append(name)
        else:
            _write_secret(path, secrets.token_urlsafe(32))
            created.append(name)
    return created, kept


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise AssembleError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=10_000)


def _swap_in(built: Path, target: Path) -> None:
    """Replace `target` by the fully written `built` folder (secrets were created inside `built`)."""
    if target.exists():
        shutil.rmtree(target)
    built.replace(target)


def _assemble_shop(out: Path, report: AssemblyReport) -> None:
    final = out / "shop"
    building = Path(tempfile.mkdtemp(prefix=".shop-", dir=out))
    try:
        if (final / "secrets").is_dir():
            shutil.copytree(final / "secrets", building / "secrets", dirs_exist_ok=True)
        created, kept = ensure_secrets(building / "secrets", shop_secret_names())
        report.secrets_created += [f"shop/secrets/{n}" for n in created]
        report.secrets_kept += [f"shop/secrets/{n}" for n in kept]
        (building / "kustomization.yaml").write_text(
            "# Generated by `python -m deploy.assemble`; do not edit. Secrets of namespace shop.\n"
            + _dump(shop_kustomization())
        )
        _swap_in(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    report.admin_token_file = str(final / "secrets" / ADMIN_TOKEN_FILE)


def _assemble_observability(
    out: Path, dashboards_dir: Path, slo_files: Sequence[Path] | None, report: AssemblyReport
) -> None:
    from slo.rules import write_prometheus_rules  # the one rule generator (also behind `testbed slo rules`)
    from slo.spec import SpecError

    datasources_dir = dashboards_dir / "provisioning" / "datasources"
    providers_dir = dashboards_dir / "provisioning" / "dashboards"
    for needed in (dashboards_dir, datasources_dir, providers_dir):
        if not needed.is_dir():
            raise AssembleError(
                f"{needed}: folder not found. Grafana on kind is provisioned from dashboards/ "
                "(dashboard JSON, provisioning/datasources/*.yaml, provisioning/dashboards/*.yaml)."
            )
    dashboards = sorted(dashboards_dir.glob("*.json"))
    if not dashboards:
        raise AssembleError(f"{dashboards_dir}: no dashboard JSON (*.json) to provision")

    final = out / "observability"
    building = Path(tempfile.mkdtemp(prefix=".observability-", dir=out))
    try:
        try:
            rules = write_prometheus_rules(building / "rules", slo_files)
        except SpecError as exc:
            raise AssembleError(str(exc)) from exc
        report.rule_files = [p.name for p in rules]

        (building / "datasources").mkdir()
        datasource_files = []
        for path in _yaml_files(datasources_dir):
            check_configmap_key(path.name, path)
            adapted, urls = adapt_datasources(_load_yaml(path), str(path))
            overlap = set(urls) & set(report.datasources)
            if overlap:
                raise AssembleError(f"{path}: datasource uid(s) {sorted(overlap)} provisioned twice")
            report.datasources.update(urls)
            (building / "datasources" / path.name).write_text(
                f"# From dashboards/provisioning/datasources/{path.name}, URLs pointed at the cluster.\n"
                + _dump(adapted)
            )
            datasource_files.append(path.name)
        missing = sorted(set(DATASOURCE_UIDS.values()) - set(report.datasources))
        if missing:
            raise AssembleError(f"{datasources_dir}: no datasource provisioned with uid(s) {missing}")

        (building / "providers").mkdir()
        provider_files = []
        for path in _yaml_files(providers_dir):
            check_configmap_key(path.name, path)
            adapted_provider = adapt_dashboard_provider(_load_yaml(path), str(path))
            (building / "providers" / path.name).write_text(
                f"# From dashboards/provisioning/dashboards/{path.name}, path set to the pod's mount.\n"
                + _dump(adapted_provider)
            )
            provider_files.append(path.name)
        if not provider_files:
            raise AssembleError(f"{providers_dir}: no dashboard provider (*.yaml)")

        (building / "dashboards").mkdir()
        for path in dashboards:
            check_configmap_key(path.name, path)
            try:
                json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise AssembleError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
            shutil.copyfile(path, building / "dashboards" / path.name)
        report.dashboards = [p.name for p in dashboards]

        (building / "alert-webhook").mkdir()
        shutil.copyfile(ALERT_WEBHOOK_SOURCE, building / "alert-webhook" / ALERT_WEBHOOK_SOURCE.name)

        # Prometheus scrapes the fault controller with the same token the shop's secrets hold.
        token = (out / "shop" / "secrets" / ADMIN_TOKEN_FILE).read_text()
        _write_secret(building / "secrets" / ADMIN_TOKEN_FILE, token)
        password = Path("secrets") / "grafana-admin-password"
        if (final / password).exists():
            shutil.copy2(final / password, building / password)
        created, kept = ensure_secrets(building / "secrets", [password.name])
        report.secrets_created += [f"observability/secrets/{n}" for n in created]
        report.secrets_kept += [f"observability/secrets/{n}" for n in kept]

        (building / "kustomization.yaml").write_text(
            "# Generated by `python -m deploy.assemble`; do not edit. SLO rules, Grafana provisioning,"
            " dashboards.\n"
            + _dump(
                observability_kustomization(
                    report.rule_files, datasource_files, provider_files, report.dashboards
                )
            )
        )
        _swap_in(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def assemble(
    out: Path = DEFAULT_OUT,
    dashboards_dir: Path = DEFAULT_DASHBOARDS,
    slo_files: Sequence[Path] | None = None,
) -> AssemblyReport:
    """Write deploy/generated/{shop,observability}; see the module docstring."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = AssemblyReport(out=str(out), admin_token_file="")
    _assemble_shop(out, report)
    _assemble_observability(out, Path(dashboards_dir), slo_files, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.assemble",
        description="Write the generated parts of the kind deployment (secrets, SLO rules, Grafana "
        "provisioning and dashboards) into deploy/generated/, where deploy/overlays/kind includes them. "
        "`make deploy` runs this first. Existing secrets are kept.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default deploy/generated)"
    )
    parser.add_argument(
        "--dashboards",
        type=Path,
        default=DEFAULT_DASHBOARDS,
        help="dashboards folder with provisioning/ (default dashboards/)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = assemble(args.out, args.dashboards)
    except (AssembleError, OSError) as exc:
        print(f"python -m deploy.assemble: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(report), indent=2))
        return 0
    print(f"assembled {report.out}")
    print(f"  secrets:     {len(report.secrets_created)} created, {len(report.secrets_kept)} kept")
    print(f"  admin token: {report.admin_token_file} (bearer token of the control API on 127.0.0.1:18000)")
    print(f"  SLO rules:   {', '.join(report.rule_files)}")
    print(f"  dashboards:  {', '.join(report.dashboards)}")
    print(f"  datasources: {', '.join(sorted(report.datasources))}")
    print(
        "next: kubectl apply --server-side -k deploy/overlays/kind (`make deploy` runs it); "
        f"Grafana will be on {GRAFANA_URL}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
