"""The storefront (`/`) and the admin console (`/admin`): static HTML, vanilla JavaScript modules and CSS
shipped as package data (`sample_shop/gateway/static/`), so the shop needs no front-end build step. The
pages call only the public API (docs/shop.md); what they do is described in docs/shop.md "The pages".
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response

from sample_shop.kit.errors import ShopError

STATIC_PACKAGE = "sample_shop.gateway"
STATIC_FOLDER = "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# the pages change with the code, not while a stack runs: revalidate instead of trusting a cached copy
CACHE_CONTROL = "no-cache"
ASSET_NAME = r"^[a-z][a-z0-9-]*\.(js|css|png|svg)$"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every file of the static folder by name (read once: a handful of small files)."""
    folder = resources.files(STATIC_PACKAGE).joinpath(STATIC_FOLDER)
    assets: dict[str, Asset] = {}
    for entry in folder.iterdir():
        suffix = entry.name[entry.name.rfind(".") :] if "." in entry.name else ""
        content_type = CONTENT_TYPES.get(suffix)
        if entry.is_file() and content_type is not None:
            assets[entry.name] = Asset(entry.read_bytes(), content_type)
    return assets


ASSETS = load_assets()
router = APIRouter()


def page(name: str) -> HTMLResponse:
    return HTMLResponse(ASSETS[name].body, headers={"Cache-Control": CACHE_CONTROL})


@router.get("/", response_class=HTMLResponse, summary="the storefront (every shopper journey)")
async def storefront() -> HTMLResponse:
    return page("index.html")


@router.get("/admin", response_class=HTMLResponse, summary="the admin console (admin role only)")
async def admin_console() -> HTMLResponse:
    return page("admin.html")


@router.get("/static/{name}", include_in_schema=False)
async def static_asset(name: Annotated[str, Path(max_length=64, pattern=ASSET_NAME)]) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise ShopError(404, "not_found", f"no page asset named {name!r}")
    return Response(asset.body, media_type=asset.content_type, headers={"Cache-Control": CACHE_CONTROL})
