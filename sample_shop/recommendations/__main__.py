"""`python -m sample_shop.recommendations`: one replica of the service, configured by the env contract."""

from sample_shop.kit.app import run
from sample_shop.recommendations.app import create_app

if __name__ == "__main__":
    run("recommendations", create_app)
