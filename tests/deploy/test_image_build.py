"""deploy/Dockerfile built and run for real: a dockerd of the test's own, a Debian bookworm base made with
debootstrap (Docker Hub cannot be reached here), the shop image built on it, the uid and read-only root
checked, the seven services started from it as containers on the host network (loopback ports shifted
by TESTBED_PORT_OFFSET + 4000), one journey (register, login, cart, checkout) through the containerised
gateway, every container's /readyz and /metrics, and the kind alert webhook's command run from the
image. Helpers: docker_support.py.

Needs root (dockerd, debootstrap) and the system packages docker.io and debootstrap (`make setup`).
Without them the test fails with that advice, as the tests that need Prometheus do: CI must not go
green by skipping it.

Time on the 2-core development machine (shared; table in docs/kind.md), printed by the test as
`image test: ...`: cold (empty ~/.cache/chaos-shop/image-test) 121 s at load average 3-8 (debootstrap
43 s, build 36 s), 192 s at load 7-8; warm (the debootstrap base cached) 47 s at load 2-3, 53 s at
load 4, 82 s at load 5-9. The build is most of the warm path: dockerd starts with an empty data root
every time, so pip downloads the image's dependencies from PyPI every time.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from docker_support import (
    BASE_IMAGE,
    CONTAINER_STATE_DIR,
    REPO,
    SHOP_IMAGE,
    SHOP_UID,
    DockerDaemon,
    DockerUnavailable,
    ShopContainers,
    Tools,
    debian_base,
    docker_daemon,
    find_tools,
)

from sample_shop.topology import HTTP_REQUESTS, SERVICE_NAMES

CARD = {"number": "4242424242424242", "expiry": "12/39", "cvc": "123"}
WEBHOOK_MANIFEST = REPO / "deploy" / "components" / "observability" / "alert-webhook.yaml"
HOST_CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")

# Inside the image, as the unprivileged user, on a read-only root with a tmpfs /tmp: who am I, can I write
# to / (must not), to /tmp (must), and do the image's Python and its dependencies load.
IDENTITY_PROBE = """
import os, pathlib, sys
import fastapi, sqlalchemy, uvicorn, locust  # noqa
try:
    pathlib.Path("/probe").write_text("x")
    root = "writable"
except OSError:
    root = "read-only"
pathlib.Path("/tmp/probe").write_text("x")
print(os.getuid(), os.getgid(), root, sys.version.split()[0])
"""


class Timings:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last = self.start
        self.steps: list[tuple[str, float]] = []

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.steps.append((name, now - self.last))
        self.last = now

    def line(self) -> str:
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.steps)
        return f"image test: {steps}; {time.monotonic() - self.start:.0f} s in all"


def _journey(gateway: str) -> dict[str, object]:
    """register, login, browse, add to cart, checkout: the order it made."""
    with httpx.Client(base_url=gateway, timeout=20.0) as http:
        email = f"image-{uuid.uuid4().hex[:12]}@example.com"
        registered = http.post(
            "/api/auth/register", json={"email": email, "password": "password-1", "name": "I"}
        )
        assert registered.status_code == 201, registered.text
        login = http.post("/api/auth/login", json={"email": email, "password": "password-1"})
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        products = http.get("/api/products", params={"limit": 3})
        assert products.status_code == 200 and products.json()["items"], products.text
        product = products.json()["items"][0]["id"]
        page = http.get(f"/api/products/{product}")  # the product page asks recommendations too
        assert page.status_code == 200 and page.json()["recommendations"], page.text
        added = http.post("/api/cart/items", json={"product_id": product, "quantity": 2})
        assert added.status_code == 200 and added.json()["item_count"] == 2, added.text
        checkout = http.post(
            "/api/checkout", json={"card": CARD}, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert checkout.status_code == 201, checkout.text
        order: dict[str, object] = checkout.json()
        assert order["status"] == "paid", order
        assert http.get(f"/api/orders/{order['id']}").json()["id"] == order["id"]
        assert http.get("/api/cart").json()["items"] == []
        return order


def _check_identity(daemon: DockerDaemon) -> None:
    user = daemon.docker("image", "inspect", "--format", "{{.Config.User}}", SHOP_IMAGE).stdout.strip()
    assert user == f"{SHOP_UID}:{SHOP_UID}", f"image user {user!r}"
    done = daemon.docker(
        "run",
        "--rm",
        "--network=none",
        "--read-only",
        "--tmpfs=/tmp",
        SHOP_IMAGE,
        "python",
        "-c",
        IDENTITY_PROBE,
    )
    uid, gid, root, version = done.stdout.split()
    assert (int(uid), int(gid), root) == (SHOP_UID, SHOP_UID, "read-only"), done.stdout
    assert version.startswith("3.11."), version


def _check_alert_webhook(shop: ShopContainers) -> None:
    """The kind alert webhook's command (alert-webhook.yaml) runs from the image, read-only, and records
    a page in Alertmanager's webhook format where the pod keeps it."""
    (deployment,) = [d for d in yaml.safe_load_all(WEBHOOK_MANIFEST.read_text()) if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command: list[str] = container["command"]
    port = shop.ports.alert_webhook
    name = shop.start_alert_webhook(command, REPO / "testbed" / "runtime" / "alertsink.py", port)
    page = {
        "version": "4",
        "status": "firing",
        "receiver": "burn-rate-pages",
        "alerts": [{"status": "firing", "labels": {"alertname": "SLOErrorBudgetBurn", "severity": "page"}}],
    }
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as http:
        while True:
            try:
                if http.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert shop.state("alert-webhook") == "running", shop.logs("alert-webhook")
            assert time.monotonic() < deadline, f"alert webhook not up:\n{shop.logs('alert-webhook')}"
            time.sleep(0.3)
        recorded = http.post("/alerts", json=page)
        assert recorded.status_code == 200, recorded.text
    out = next(a.split("=", 1)[1] for a in command if a.startswith("--out="))
    lines = shop.daemon.docker("exec", name, "cat", out).stdout.splitlines()
    assert [json.loads(line)["notification"] for line in lines] == [page]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_image_builds_on_a_debootstrap_base_and_serves_a_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        tools = find_tools()
    except DockerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    timings = Timings()
    try:
        _build_and_run(tools, tmp_path, timings)
    finally:
        with capsys.disabled():  # the time the test adds, in the CI log
            print("\n" + timings.line())


def _build_and_run(tools: Tools, tmp_path: Path, timings: Timings) -> None:
    with docker_daemon(tools) as daemon:
        timings.step("dockerd up")
        tarball, cached = debian_base(tools)
        timings.step("debootstrap base (cached)" if cached else "debootstrap base (made)")
        daemon.import_image(tarball, BASE_IMAGE)
        timings.step("docker import")
        ca = HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None
        daemon.build_shop_image(SHOP_IMAGE, BASE_IMAGE, tmp_path / "build.log", ca)
        timings.step("image build")
        _check_identity(daemon)
        timings.step("uid and read-only check")

        shop = ShopContainers(daemon, SHOP_IMAGE, tmp_path)
        shop.start()
        shop.wait_ready()
        timings.step("7 containers ready")
        order = _journey(shop.url("gateway"))
        timings.step("journey")

        with httpx.Client(timeout=10.0) as http:
            for service in SERVICE_NAMES:
                assert shop.state(service) == "running", shop.logs(service)
                ready = http.get(shop.url(service) + "/readyz")
                assert ready.status_code == 200, f"{service}: {ready.status_code} {ready.text}"
                metrics = http.get(shop.url(service) + "/metrics")
                assert metrics.status_code == 200, f"{service}: {metrics.status_code}"
                served = [
                    line
                    for line in metrics.text.splitlines()
                    if line.startswith(HTTP_REQUESTS.name + "{") and f'service="{service}"' in line
                ]
                assert served, f"{service}: /metrics has no {HTTP_REQUESTS.name} of its own"
            gateway_metrics = http.get(shop.url("gateway") + "/metrics").text
            assert 'route="/api/checkout"' in gateway_metrics
        # the state went to the tmpfs, not the image: orders' SQLite file is there
        listing = daemon.docker("exec", shop.container("orders"), "ls", str(CONTAINER_STATE_DIR / "data"))
        assert "orders.db" in listing.stdout, listing.stdout
        assert order["card_last4"] == "4242"
        timings.step("readyz and metrics")
        _check_alert_webhook(shop)
        timings.step("alert webhook")
    timings.step("cleanup")
    assert not daemon.leftover_processes(), "processes of the test's dockerd still run"
    assert not daemon.root.exists(), f"{daemon.root} is left behind"


def _fake_binary(directory: Path, name: str, output: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)


def test_missing_docker_or_debootstrap_is_named_with_the_way_to_install_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DockerUnavailable) as missing:
        find_tools(path=str(empty))
    message = str(missing.value)
    assert "docker (builds and runs the shop image in the tests): dockerd not on PATH" in message
    assert "debootstrap (makes the image's Debian base" in message
    assert "make setup" in message and "docker.io" in message

    # docker present (a CLI that builds with BuildKit), debootstrap missing: only debootstrap is named
    docker_only = tmp_path / "docker-only"
    docker_only.mkdir()
    _fake_binary(docker_only, "dockerd", "Docker version 20.10.24+dfsg1, build 5d6db84")
    _fake_binary(docker_only, "docker", "--secret stringArray   Secret file to expose to the build")
    with pytest.raises(DockerUnavailable) as no_debootstrap:
        find_tools(path=str(docker_only))
    assert "debootstrap not on PATH" in str(no_debootstrap.value)
    assert "dockerd not on PATH" not in str(no_debootstrap.value)


def test_a_docker_cli_without_buildkit_is_named(tmp_path: Path) -> None:
    """Docker >= 23's CLI without the buildx plugin builds with the legacy builder: no build secrets."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    _fake_binary(legacy, "dockerd", "Docker version 20.10.24+dfsg1, build 5d6db84")
    _fake_binary(legacy, "docker", "DEPRECATED: The legacy builder is deprecated")
    _fake_binary(legacy, "debootstrap", "debootstrap 1.0.128+nmu2+deb12u2")
    with pytest.raises(DockerUnavailable, match=r"no docker CLI on PATH builds with BuildKit.*buildx"):
        find_tools(path=str(legacy))
