"""Take the README's pictures of the storefront and the admin console (docs/img/storefront-*.png) from a
running stack, in the same Chromium the page tests use:

    testbed up
    .venv/bin/python -m tests.storefront.screenshots [--gateway URL] [--state-dir DIR] [--out DIR]

It registers a shopper, buys a few products (one declined card first), has the admin ship one order, and
photographs the pages. The PNGs are reduced to a 128-colour palette to stay small in the repository."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect

from tests.storefront.browser import DECLINED_CARD, add_first_match, browsers, buy, check_out, go, register

PALETTE_COLOURS = 128
SIZE = {"width": 1000, "height": 720}


def save(page: Page, path: Path) -> None:
    page.set_viewport_size(SIZE)
    page.screenshot(path=str(path), full_page=True)  # down to the footer with the last action's trace id
    Image.open(path).convert("RGB").quantize(PALETTE_COLOURS).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    offset = int(os.environ.get("TESTBED_PORT_OFFSET", "0"))
    parser.add_argument("--gateway", default=f"http://127.0.0.1:{8080 + offset}", help="the shop's URL")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("TESTBED_STATE_DIR", ".testbed")),
        help="the stack's state folder (holds admin-password)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="where the PNGs go")
    args = parser.parse_args(argv)
    password_file = args.state_dir / "admin-password"
    if not password_file.is_file():
        print(
            f"error: {password_file} does not exist; start the stack (testbed up) or pass --state-dir",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with browsers(args.gateway) as open_page:
        shopper = open_page("/")
        register(shopper, "Ada Lovelace")
        buy(shopper, "espresso")
        add_first_match(shopper, "teapot")
        check_out(shopper, DECLINED_CARD)
        expect(shopper.locator("#messages .message.error")).to_be_visible()
        shipped = buy(shopper, "teapot")
        buy(shopper, "field guide")

        admin = open_page("/admin")
        admin.fill("#login [name=email]", "admin@shop.local")
        admin.fill("#login [name=password]", password_file.read_text().strip())
        admin.click("#login button")
        row = admin.locator(f"#admin-orders tr[data-order-id='{shipped}']")
        row.locator("button.advance").click()
        expect(admin.locator("#messages .message.ok")).to_be_visible()
        admin.locator(f"#admin-orders tr[data-order-id='{shipped}'] button.details").click()
        expect(admin.locator("#admin-orders tr.order-details")).to_be_visible()
        save(admin, args.out / "storefront-admin-orders.png")
        admin.click("#tab-analytics")
        expect(admin.locator("#orders-chart")).to_be_visible()
        save(admin, args.out / "storefront-admin-analytics.png")

        go(shopper, "#/?category=coffee")
        expect(shopper.locator("#products .card").first).to_be_visible()
        shopper.locator("#products .card button.add").first.click()
        expect(shopper.locator("#messages .message.ok")).to_be_visible()
        save(shopper, args.out / "storefront-products.png")
        shopper.wait_for_timeout(1600)  # let the "added" message go stale: the order page shows its own
        go(shopper, f"#/orders/{shipped}")
        expect(shopper.locator("#order-history")).to_be_visible()
        save(shopper, args.out / "storefront-order.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
