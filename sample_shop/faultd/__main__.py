"""`python -m sample_shop.faultd`: the fault controller as its own process (the kind Deployment).

Environment (deploy/base/faultd/faultd.yaml sets it):
  FAULTD_HOST, FAULTD_PORT          listener (default 127.0.0.1 and the topology's control port + offset)
  FAULTD_DISCOVERY                  kubernetes (the only discovery outside the local supervisor)
  FAULTD_NAMESPACE                  namespace of the shop's pods (default: the pod's own)
  FAULTD_POD_SELECTOR               label selector of the shop's pods
  FAULTD_KUBERNETES_API             API server URL (default: in-cluster, from KUBERNETES_SERVICE_HOST)
  SHOP_ADMIN_TOKEN / _FILE          bearer token of this API and of the replicas' admin APIs
  SHOP_LOG_LEVEL                    debug, info, warning or error (JSON lines on stdout, as every service)
Exit code 2 with a one-line message on bad configuration.
"""

from __future__ import annotations

import logging
import os
import sys

from sample_shop.faultd.api import create_control_app
from sample_shop.faultd.controller import FaultController
from sample_shop.faultd.discovery import KubernetesDiscovery, KubernetesSettings
from sample_shop.kit.config import (
    LOG_LEVELS,
    ConfigError,
    read_admin_token,
    read_env_choice,
    read_env_int,
    read_env_str,
)
from sample_shop.kit.logs import setup_logging
from sample_shop.topology import CONTROL_PORT, port_offset

DISCOVERIES = ("kubernetes",)
SERVICE_NAME = "faultd"  # the `service` field of its log lines


def main() -> int:
    env = dict(os.environ)
    try:
        log_level = read_env_choice(env, "SHOP_LOG_LEVEL", "info", LOG_LEVELS)
        discovery_name = env.get("FAULTD_DISCOVERY", "kubernetes")
        if discovery_name not in DISCOVERIES:
            raise ConfigError(
                f"FAULTD_DISCOVERY={discovery_name!r}: must be one of {', '.join(DISCOVERIES)} (locally the "
                "supervisor embeds the controller: use `testbed up`)"
            )
        token = read_admin_token(env)
        port = read_env_int(env, "FAULTD_PORT", CONTROL_PORT + port_offset(), 1, 65535)
        host = read_env_str(env, "FAULTD_HOST", "127.0.0.1")
        discovery = KubernetesDiscovery(KubernetesSettings.from_env(env))
    except ValueError as exc:  # ConfigError, and KubernetesSettings' own ValueErrors
        print(f"faultd: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(SERVICE_NAME, 0, log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import uvicorn

    app = create_control_app(
        FaultController(discovery, token),
        token,
        token_hint="the Secret behind SHOP_ADMIN_TOKEN",
        title="fault controller",
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
