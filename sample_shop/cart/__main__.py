"""`python -m sample_shop.cart`: one replica of the cart service, configured by the env contract."""

from sample_shop.cart.app import create_app
from sample_shop.kit.app import run

if __name__ == "__main__":
    run("cart", create_app)
