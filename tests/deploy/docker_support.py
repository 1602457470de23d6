"""The real Docker parts of the image test (test_image_build.py): a private dockerd, a Debian base made
with debootstrap, the shop image built on it, and the seven services run from it as containers.

- `find_tools()` checks the system packages the test needs (scripts/system-packages.txt: docker.io for
  `dockerd` and `docker`, and `debootstrap`), a `docker` CLI that builds with BuildKit (build secrets),
  and root. Anything missing raises `DockerUnavailable` with the advice to act on (`make setup`).
- `docker_daemon()` starts a dockerd of its own: data root, exec root, pidfile and unix socket in a
  temporary folder, no bridge, no iptables, listening on that socket only. It never touches a system
  dockerd or its images. On the way out (also on failure) it removes what the test left, stops the
  daemon by its PID, kills any process it left behind (found by the temporary folder in its command
  line), unmounts what is still mounted there and deletes the folder.
- `debian_base()` makes a minimal Debian root with Python 3.11 and its venv module (`debootstrap
  --variant=minbase --include=python3-venv`), packed as a tar in the cache
  (~/.cache/chaos-shop/image-test, keyed by mirror, suite, architecture and package list), so only the
  first run on a machine pays for it. `DockerDaemon.import_image` loads it with `docker import`.
- `DockerDaemon.build_shop_image` builds deploy/Dockerfile on that base (`--build-arg BASE_IMAGE`)
  with host networking; pip gets the host's CA bundle as a build secret (this host trusts its own
  certificate authority), which stays out of the image's layers.
- `ShopContainers` runs each service as a container on the host network, read-only with tmpfs state,
  with the environment of the project's env contract (testbed/runtime/envcontract.py), on shifted
  loopback ports.

Docker Hub is never contacted: the base comes from debootstrap, the Dockerfile has no `# syntax=` line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sample_shop.topology import SERVICE_NAMES, port_offset
from testbed import sysdeps
from testbed.runtime.base import UpOptions
from testbed.runtime.envcontract import service_env
from testbed.runtime.layout import PortPlan, StateLayout

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chaos-shop" / "image-test"
DEBIAN_MIRROR = os.environ.get("TESTBED_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN_SUITE = "bookworm"  # the official default base is python:3.11.x-slim-bookworm: the same Debian
BASE_PACKAGES = ("python3-venv",)  # brings python3 (3.11 on bookworm) and ensurepip's wheels
BASE_IMAGE = f"chaos-shop-base:{DEBIAN_SUITE}"
SHOP_IMAGE = "chaos-shop:image-test"
SYSTEM_PARTS = ("docker", "debootstrap")  # names in scripts/system-packages.txt
IMAGE_PORT_SHIFT = 4000  # clear of the session stack (+0), spare stacks (+50) and tests/shop (+3000)
CONTAINER_STATE_DIR = Path("/var/lib/shop")  # the image's SHOP_STATE_DIR; a tmpfs in each container
SHOP_UID = 10001
CONTAINERD_NAMESPACE = "chaos-shop-image-test"


class DockerUnavailable(RuntimeError):
    """The machine cannot run the image test; the message says what to install or change."""


class DockerFailure(RuntimeError):
    """A docker command or the daemon failed; the message carries its output."""


@dataclass(frozen=True)
class Tools:
    dockerd: str
    docker: str  # a CLI that builds with BuildKit
    debootstrap: str


def _buildkit_cli(path: str | None) -> str | None:
    """The first `docker` on PATH whose `build` takes `--secret`: Docker 20.10's own CLI (docker.io) does,
    a newer CLI only with the buildx plugin (without it `docker build` is the legacy builder)."""
    for directory in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = Path(directory or ".") / "docker"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        try:
            done = subprocess.run(
                [str(candidate), "build", "--help"],
                capture_output=True,
                text=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "DOCKER_BUILDKIT": "1"},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "--secret" in done.stdout + done.stderr:
            return str(candidate)
    return None


def find_tools(path: str | None = None) -> Tools:
    """The test's tools on `path` (default: PATH), or DockerUnavailable naming every missing one."""
    have_apt = shutil.which("apt-get") is not None
    parts = {p.name: p for p in sysdeps.load_parts()}
    problems = []
    found: dict[str, str] = {}
    for name in SYSTEM_PARTS:
        status = sysdeps.judge(
            parts[name], lambda b: shutil.which(b, path=path), sysdeps.version_output, have_apt
        )
        if status.present:
            found.update(status.binaries)
        else:
            problems.append(f"{name} ({parts[name].purpose}): {status.problem}; {status.advice}")
    docker = _buildkit_cli(path) if "docker" in found else None
    if "docker" in found and docker is None:
        problems.append(
            f"no docker CLI on PATH builds with BuildKit (`{found['docker']} build` has no --secret): "
            "the docker.io package's CLI does (`make setup` installs it), a Docker >= 23 CLI needs the "
            "buildx plugin (Debian/Ubuntu: docker-buildx)"
        )
    if not problems and os.geteuid() != 0:
        problems.append(
            "the image test starts its own dockerd and runs debootstrap, both need root: run the tests "
            "as root (.ci/run in CI does), e.g. `sudo -E .venv/bin/pytest tests/deploy/test_image_build.py`"
        )
    if problems:
        raise DockerUnavailable(
            "the image test cannot run on this machine:\n  - "
            + "\n  - ".join(problems)
            + "\n(`make setup` installs the system packages with apt-get; `testbed doctor` lists them all)"
        )
    assert docker is not None
    return Tools(dockerd=found["dockerd"], docker=docker, debootstrap=found["debootstrap"])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (from /proc/self/mounts)."""
    prefix = str(root.resolve())
    points = []
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            point = line.split()[1].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _unmount_all(root: Path) -> None:
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)


_DAEMON_PROGRAMS = ("dockerd", "containerd", "docker-proxy", "runc", "docker-init")


def _processes_mentioning(marker: str) -> list[int]:
    """PIDs of Docker's own programs (dockerd, containerd, its shims, ...) whose command line names
    `marker`, the daemon's temporary folder: only what that daemon started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if comm.startswith(_DAEMON_PROGRAMS) and marker in cmdline:
            found.append(int(entry.name))
    return found


def remove_tree(root: Path) -> None:
    """Delete a folder that may still hold mounts (overlay layers, a debootstrap's /proc)."""
    if root.exists():
        _unmount_all(root)
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# The Debian base
# --------------------------------------------------------------------------------------------------


def base_key(mirror: str = DEBIAN_MIRROR, suite: str = DEBIAN_SUITE) -> str:
    """What the cached base depends on: mirror, suite, architecture and the package list."""
    text = "|".join((mirror.rstrip("/"), suite, platform.machine(), "minbase", ",".join(BASE_PACKAGES)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def debian_base(
    tools: Tools, cache_dir: Path = CACHE_DIR, mirror: str = DEBIAN_MIRROR, suite: str = DEBIAN_SUITE
) -> tuple[Path, bool]:
    """(tar of a minimal Debian root with python3 and venv, whether it came from the cache)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"debian-{suite}-{base_key(mirror, suite)}.tar"
    if tarball.exists():
        return tarball, True
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache_dir))
    try:
        root = work / "root"
        log = work / "debootstrap.log"
        command = [
            tools.debootstrap,
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            suite,
            str(root),
            mirror,
        ]
        with log.open("wb") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False)
        if done.returncode != 0:
            raise DockerFailure(
                f"debootstrap of {suite} from {mirror} failed (exit {done.returncode}); "
                f"TESTBED_DEBIAN_MIRROR picks another mirror:\n{_tail(log)}"
            )
        # what an image does not need: the downloaded packages and the package lists
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = work / "base.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
            check=True,
            capture_output=True,
            timeout=300,
        )
        os.replace(partial, tarball)  # atomic: a run killed half-way leaves no half tar in the cache
    finally:
        remove_tree(work)
    return tarball, False


# --------------------------------------------------------------------------------------------------
# The private Docker daemon
# --------------------------------------------------------------------------------------------------


@dataclass
class DockerDaemon:
    tools: Tools
    root: Path  # the temporary folder: data/, exec/, docker.pid, docker.sock, dockerd.log, config/
    process: subprocess.Popen[bytes] | None = None
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        # its own client config: no credential helper or context of the user's ~/.docker
        env.update(
            DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(self.root / "config"), DOCKER_BUILDKIT="1"
        )
        return env

    def start(self, timeout_s: float = 60.0) -> None:
        for sub in ("data", "exec", "config"):
            (self.root / sub).mkdir(mode=0o700)
        command = [
            self.tools.dockerd,
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'docker.pid'}",
            f"--host=unix://{self.socket}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            # where a system containerd runs, dockerd uses it instead of starting its own: namespaces of
            # its own keep it apart from the system dockerd's containers ("moby")
            f"--containerd-namespace={CONTAINERD_NAMESPACE}",
            f"--containerd-plugins-namespace={CONTAINERD_NAMESPACE}-plugins",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DockerFailure(f"dockerd exited with {self.process.returncode}:\n{_tail(self.log)}")
            if self.socket.exists():
                done = self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10)
                if done.returncode == 0:
                    return
            time.sleep(0.2)
        raise DockerFailure(
            f"dockerd did not answer on {self.socket} within {timeout_s:g} s:\n{_tail(self.log)}"
        )

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120.0, log: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this daemon; with `log`, the output goes there (long builds)."""
        command = [self.tools.docker, *args]
        if log is not None:
            with log.open("w") as out:
                done = subprocess.run(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=self.env,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            output = _tail(log, 60)
        else:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            output = done.stdout + done.stderr
        if check and done.returncode != 0:
            raise DockerFailure(f"docker {' '.join(args[:3])} ... failed (exit {done.returncode}):\n{output}")
        return done

    def import_image(self, tarball: Path, tag: str) -> None:
        self.docker("import", str(tarball), tag, timeout=300)
        self.images.append(tag)

    def build_shop_image(self, tag: str, base: str, log: Path, ca_bundle: Path | None) -> None:
        """deploy/Dockerfile from the repository root, on `base`; pip reaches PyPI over the host network."""
        args = ["build", "--progress=plain", "--network=host", f"--build-arg=BASE_IMAGE={base}"]
        if ca_bundle is not None:
            args.append(f"--secret=id=ca-certificates,src={ca_bundle}")
        self.images.append(tag)
        self.docker(*args, "--tag", tag, "--file", str(DOCKERFILE), str(REPO), timeout=900, log=log)

    def stop(self) -> None:
        """Containers and images removed, the daemon stopped by its PID, nothing left running or mounted."""
        try:
            if self.process is not None and self.process.poll() is None:
                if self.containers:  # one command: the CLI removes them in parallel
                    self.docker("rm", "--force", "--volumes", *self.containers, check=False, timeout=120)
                if self.images:
                    self.docker("rmi", "--force", *reversed(self.images), check=False, timeout=120)
        finally:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=30)
            # its managed containerd and shims exit with it; whatever did not is killed by PID
            for pid in _processes_mentioning(str(self.root)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            remove_tree(self.root)

    def leftover_processes(self) -> list[int]:
        return _processes_mentioning(str(self.root))


@contextlib.contextmanager
def docker_daemon(tools: Tools) -> Iterator[DockerDaemon]:
    """A dockerd of the test's own, gone again (with its containers, images and files) on exit.

    The folder is directly under /tmp: the unix sockets of dockerd and its containerd must stay short."""
    daemon = DockerDaemon(tools, Path(tempfile.mkdtemp(prefix="chaos-dockerd-", dir="/tmp")))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


# --------------------------------------------------------------------------------------------------
# The shop as containers
# --------------------------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class ShopContainers:
    """The seven services, one container each, on the host network and loopback (env contract)."""

    daemon: DockerDaemon
    image: str
    workdir: Path  # env files and the admin token (host side)
    ports: PortPlan = field(default_factory=lambda: PortPlan(port_offset() + IMAGE_PORT_SHIFT))
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def container(self, service: str) -> str:
        return f"chaos-shop-{service}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports.app(service, 0)}"

    def env(self, service: str) -> dict[str, str]:
        """The env contract's environment of replica 0, with the state folder inside the container."""
        layout = StateLayout(CONTAINER_STATE_DIR)
        return service_env({}, service, 0, UpOptions(), self.ports, layout, self.jwt_secret, None)

    def start(self) -> None:
        busy = [
            p
            for s in SERVICE_NAMES
            for p in (self.ports.app(s, 0), self.ports.admin(s, 0))
            if not _port_free(p)
        ]
        if busy:
            raise DockerFailure(f"ports in use on 127.0.0.1, needed by the containers: {busy}")
        token_file = self.workdir / "admin-token"
        token_file.write_text(self.token)
        token_file.chmod(0o644)  # read by uid 10001 inside the container; a throw-away token
        for service in SERVICE_NAMES:
            env = self.env(service)
            env_file = self.workdir / f"{service}.env"
            env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
            env_file.chmod(0o600)  # holds the JWT secret; read by the docker CLI, not the container
            name = self.container(service)
            self.daemon.containers.append(name)
            self._run_locked_down(
                name,
                [
                    f"--tmpfs={CONTAINER_STATE_DIR}",
                    f"--volume={token_file}:{StateLayout(CONTAINER_STATE_DIR).token_file}:ro",
                    f"--env-file={env_file}",
                ],
                ["python", "-m", f"sample_shop.{service}"],
            )

    def _run_locked_down(self, name: str, options: list[str], command: list[str]) -> None:
        """`docker run` the image detached on the host network as the pods run it: read-only root with a
        tmpfs /tmp, no new privileges, every capability dropped; `options` add mounts and env."""
        self.daemon.docker(
            "run",
            "--detach",
            f"--name={name}",
            "--network=host",
            "--read-only",
            "--tmpfs=/tmp",
            *options,
            "--security-opt=no-new-privileges",
            "--cap-drop=ALL",
            self.image,
            *command,
        )

    def start_alert_webhook(self, command: list[str], script: Path, port: int) -> str:
        """The kind pod's alert webhook (alert-webhook.yaml's command) from the image, on loopback: the
        manifest's --host and --port are replaced (host network here, the pod's own address there)."""
        args = [a for a in command if not a.startswith(("--host=", "--port="))]
        name = self.container("alert-webhook")
        self.daemon.containers.append(name)
        out = next(a.split("=", 1)[1] for a in command if a.startswith("--out="))
        self._run_locked_down(
            name,
            [f"--tmpfs={Path(out).parent}", f"--volume={script}:{command[1]}:ro"],
            [*args, "--host=127.0.0.1", f"--port={port}"],
        )
        return name

    def state(self, service: str) -> str:
        done = self.daemon.docker("inspect", "--format", "{{.State.Status}}", self.container(service))
        return done.stdout.strip()

    def logs(self, service: str, lines: int = 30) -> str:
        done = self.daemon.docker("logs", "--tail", str(lines), self.container(service), check=False)
        return done.stdout + done.stderr

    def wait_ready(self, timeout_s: float = 90.0) -> dict[str, float]:
        """Seconds from now until each service's /readyz answered 200; a container that stops fails it."""
        start = time.monotonic()
        ready: dict[str, float] = {}
        with httpx.Client(timeout=2.0) as http:
            while len(ready) < len(SERVICE_NAMES):
                for service in SERVICE_NAMES:
                    if service in ready:
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        if http.get(self.url(service) + "/readyz").status_code == 200:
                            ready[service] = time.monotonic() - start
                            continue
                    if self.state(service) != "running":
                        raise DockerFailure(f"container of {service} stopped:\n{self.logs(service)}")
                if time.monotonic() - start > timeout_s:
                    waiting = [s for s in SERVICE_NAMES if s not in ready]
                    raise DockerFailure(
                        f"not ready after {timeout_s:g} s: {waiting}\n"
                        + "\n".join(f"--- {s}:\n{self.logs(s)}" for s in waiting)
                    )
                time.sleep(0.3)
        return ready
