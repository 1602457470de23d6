"""`python -m sample_shop.catalog`: one replica of the catalog service, configured by the env contract."""

from sample_shop.catalog.app import create_app
from sample_shop.kit.app import run

if __name__ == "__main__":
    run("catalog", create_app)
