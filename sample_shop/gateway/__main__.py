"""`python -m sample_shop.gateway`: one replica of the gateway service, configured by the env contract."""

from sample_shop.gateway.app import create_app
from sample_shop.kit.app import run

if __name__ == "__main__":
    run("gateway", create_app)
