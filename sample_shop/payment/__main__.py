"""`python -m sample_shop.payment`: one replica of the payment service, configured by the env contract."""

from sample_shop.kit.app import run
from sample_shop.payment.app import create_app

if __name__ == "__main__":
    run("payment", create_app)
