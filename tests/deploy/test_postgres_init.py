"""The PostgreSQL init script of the kind deployment, run for real against a throwaway PostgreSQL on a
Unix socket (no TCP port is opened), then the shop services' DATABASE_URLs from the rendered manifests
are opened with SQLAlchemy + psycopg, the same drivers the services use.

The official image runs the script with its own PostgreSQL 16; here the machine's PostgreSQL runs it
(any version >= 15 has the `\\getenv` the script uses). initdb refuses to run as root, so as root the
server runs as `nobody`."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from deploy_support import REPO, kind_objects, require_tool
from k8s_walk import env_map, find, pod_spec, shop_deployments

from sample_shop.topology import SERVICES

INIT_SCRIPT = REPO / "deploy" / "base" / "postgres" / "10-shop-databases.sh"
OWNERS = [s.name for s in SERVICES.values() if s.owns_database]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, Any]]:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = require_tool("initdb", *candidates)
    bindir = Path(initdb).resolve().parent
    psql = shutil.which("psql") or str(bindir / "psql")
    # Not under pytest's tmp folder: that is private to root, and the server runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="shop-pg-"))
    root.chmod(0o755)
    data, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir()
    socket_dir.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(root, "nobody", "nogroup")
        shutil.chown(socket_dir, "nobody", "nogroup")
    try:
        yield from _serve(initdb, bindir, psql, root, data, socket_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _serve(
    initdb: str, bindir: Path, psql: str, root: Path, data: Path, socket_dir: Path
) -> Iterator[dict[str, Any]]:
    subprocess.run(
        _as_server_user([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    # Password authentication for the service roles, as in the image (host rules need md5/scram).
    (data / "pg_hba.conf").write_text("local all postgres trust\nlocal all all scram-sha-256\n")
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        _as_server_user(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-k",
                str(socket_dir),
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
            ]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(
            [str(bindir / "pg_isready"), "-q", "-h", str(socket_dir)], timeout=10
        ).returncode:
            assert server.poll() is None, f"PostgreSQL exited:\n{(root / 'server.log').read_text()}"
            assert time.monotonic() < deadline, "PostgreSQL did not accept connections within 30 s"
            time.sleep(0.1)
        yield {"socket": socket_dir, "psql": psql, "root": root}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _run_init(postgres: dict[str, Any], passwords: Path, databases: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{Path(postgres['psql']).parent}:{os.environ['PATH']}",
        "PGHOST": str(postgres["socket"]),
        "POSTGRES_USER": "postgres",
        "SHOP_DATABASES": databases,
        "SHOP_DB_PASSWORD_DIR": str(passwords),
    }
    return subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def _url(template: str, password: str, socket_dir: Path) -> str:
    """The manifest's DATABASE_URL with $(DB_PASSWORD) filled in and the Service swapped for the socket."""
    url = template.replace("$(DB_PASSWORD)", password).replace("@postgres:5432/", "@/")
    return f"{url}?host={socket_dir}"


def test_init_script_creates_isolated_databases_the_services_can_open(
    postgres: dict[str, Any], tmp_path: Path
) -> None:
    statefulset = find(kind_objects(), "StatefulSet", "postgres", "shop")
    databases = env_map(pod_spec(statefulset)["containers"][0])["SHOP_DATABASES"]["value"]
    passwords = tmp_path / "passwords"
    passwords.mkdir()
    for name in OWNERS:
        (passwords / name).write_text(f"pw-{name}-'quote\"-{os.urandom(4).hex()}")  # quoting is exercised
    result = _run_init(postgres, passwords, databases)
    assert result.returncode == 0, result.stderr
    for path in passwords.iterdir():
        assert path.read_text() not in result.stdout + result.stderr, "a password was printed"

    for name, deployment in shop_deployments(kind_objects()).items():
        if name not in OWNERS:
            continue
        template = env_map(pod_spec(deployment)["containers"][0])["DATABASE_URL"]["value"]
        password = (passwords / name).read_text()
        engine = sqlalchemy.create_engine(_url(template, password, postgres["socket"]))
        try:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text("CREATE TABLE probe (id integer primary key)"))
                assert connection.execute(
                    sqlalchemy.text("SELECT current_user, current_database()")
                ).one() == (name, name)
        finally:
            engine.dispose()
        other = next(o for o in OWNERS if o != name)
        intruder = sqlalchemy.create_engine(
            _url(template.rsplit("/", 1)[0] + f"/{other}", password, postgres["socket"])
        )
        try:
            with pytest.raises(sqlalchemy.exc.OperationalError, match="permission denied"):
                intruder.connect().close()
        finally:
            intruder.dispose()
        wrong = sqlalchemy.create_engine(_url(template, "wrong", postgres["socket"]))
        try:
            with pytest.raises(sqlalchemy.exc.OperationalError, match="password authentication failed"):
                wrong.connect().close()
        finally:
            wrong.dispose()


def test_init_script_stops_on_a_missing_password(postgres: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    result = _run_init(postgres, empty, "ghost")
    assert result.returncode == 1
    assert f"no password for database ghost at {empty}/ghost" in result.stderr
