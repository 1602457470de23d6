"""`python -m sample_shop.faultd`: the fault controller as its own process (the kind Deployment).

Environment (deploy/base/faultd/faultd.yaml sets it):
  FAULTD_HOST, FAULTD_PORT          listener (default 127.0.0.1 and the topology's control port + offset)
  FAULTD_DISCOVERY                  kubernetes (the only discovery outside the local supervisor)
  FAULTD_NAMESPACE                  namespace of the shop's pods (default: the pod's own)
  FAULTD_POD_SELECTOR               label selector of the shop's pods
  FAULTD_KUBERNETES_API             API server URL (default: in-cluster, from KUBERNETES_SERVICE_HOST)
  SHOP_ADMIN_TOKEN / _FILE          bearer token of this API and of the replicas' admin APIs
Exit code 2 with a one-line message on bad configuration.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from sample_shop.faultd.api import create_app
from sample_shop.faultd.controller import FaultController
from sample_shop.faultd.discovery import KubernetesDiscovery, KubernetesSettings
from sample_shop.topology import CONTROL_PORT, port_offset

DISCOVERIES = ("kubernetes",)


class ConfigError(ValueError):
    pass


def _token(env: dict[str, str]) -> str:
    token = env.get("SHOP_ADMIN_TOKEN", "").strip()
    if not token and env.get("SHOP_ADMIN_TOKEN_FILE"):
        path = Path(env["SHOP_ADMIN_TOKEN_FILE"])
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"SHOP_ADMIN_TOKEN_FILE={path}: cannot read it ({exc.strerror})") from None
    if not token:
        raise ConfigError("set SHOP_ADMIN_TOKEN or SHOP_ADMIN_TOKEN_FILE: the bearer token of the admin APIs")
    return token


def _port(env: dict[str, str]) -> int:
    raw = env.get("FAULTD_PORT")
    if raw is None:
        return CONTROL_PORT + port_offset()
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ConfigError(f"FAULTD_PORT must be a port number 1..65535, got {raw!r}")
    return port


def main() -> int:
    env = dict(os.environ)
    logging.basicConfig(
        level=env.get("SHOP_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        discovery_name = env.get("FAULTD_DISCOVERY", "kubernetes")
        if discovery_name not in DISCOVERIES:
            raise ConfigError(
                f"FAULTD_DISCOVERY={discovery_name!r}: must be one of {', '.join(DISCOVERIES)} (locally the "
                "supervisor embeds the controller: use `testbed up`)"
            )
        token = _token(env)
        port = _port(env)
        host = env.get("FAULTD_HOST", "127.0.0.1")
        discovery = KubernetesDiscovery(KubernetesSettings.from_env(env))
    except (ConfigError, ValueError) as exc:
        print(f"faultd: configuration error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    app = create_app(FaultController(discovery, token), token)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
