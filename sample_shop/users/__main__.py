"""`python -m sample_shop.users`: one replica of the users service, configured by the env contract."""

from sample_shop.kit.app import run
from sample_shop.users.app import create_app

if __name__ == "__main__":
    run("users", create_app)
