"""`python -m sample_shop.orders`: one replica of the orders service, configured by the env contract."""

from sample_shop.kit.app import run
from sample_shop.orders.app import create_app

if __name__ == "__main__":
    run("orders", create_app)
