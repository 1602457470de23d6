"""recommendations: related products (same category, then neighbours) for one product or for a set of
products (a cart), computed from catalog on every call - so a catalog fault shows up here too."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from sample_shop.kit.app import ServiceApp, ServiceContext, create_service_app, get_context
from sample_shop.kit.config import ServiceConfig
from sample_shop.kit.errors import ShopError

router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(get_context)]
MAX_ID = 2_147_483_647


def rank_related(
    candidates: list[dict[str, Any]], exclude: set[int], anchor_ids: list[int], limit: int
) -> list[dict[str, Any]]:
    """Pure: candidates not in `exclude`, nearest product id to an anchor first (a stable, cheap
    stand-in for similarity), at most `limit`."""

    def distance(product: dict[str, Any]) -> tuple[int, int]:
        return min(abs(product["id"] - a) for a in anchor_ids), product["id"]

    return sorted((p for p in candidates if p["id"] not in exclude), key=distance)[:limit]


async def _catalog(ctx: Ctx, path: str, route: str, params: dict[str, Any] | None = None) -> Any:
    assert ctx.client is not None
    response = await ctx.client.request("catalog", "GET", path, params=params, route=route)
    if response.status == 404:
        raise ShopError(404, "not_found", (response.json() or {}).get("message", "not found"))
    if not response.ok:
        raise ShopError(
            503,
            "dependency_unavailable",
            f"catalog answered HTTP {response.status}",
            headers={"Retry-After": "1"},
        )
    return response.json()


@router.get("/recommendations/products/{product_id}", summary="products related to one product")
async def for_product(
    ctx: Ctx,
    product_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    limit: Annotated[int, Query(ge=1, le=20)] = 4,
) -> JSONResponse:
    # one catalog call (the product's category, itself included; 404 when it does not exist), not the
    # product and then its category: half the catalog load of every product page
    same = await _catalog(ctx, "/products", "/products", {"related_to": product_id, "limit": 100})
    items = rank_related(same["items"], {product_id}, [product_id], limit)
    return JSONResponse({"items": items, "for": [product_id]})


@router.get("/recommendations", summary="products related to a set of products (a cart)")
async def for_products(
    ctx: Ctx,
    product_ids: Annotated[
        str, Query(max_length=1200, pattern=r"^[0-9]+(,[0-9]+)*$", description="comma-separated product ids")
    ],
    limit: Annotated[int, Query(ge=1, le=20)] = 4,
) -> JSONResponse:
    ids = sorted({int(i) for i in product_ids.split(",")})
    if len(ids) > 100 or any(not 1 <= i <= MAX_ID for i in ids):
        raise ShopError(
            422,
            "validation_error",
            "query.product_ids: at most 100 ids in 1..2147483647",
            errors=[{"field": "query.product_ids", "message": "at most 100 ids in 1..2147483647"}],
        )
    known = await _catalog(ctx, "/products", "/products", {"ids": ",".join(map(str, ids)), "limit": 100})
    categories = sorted({p["category"] for p in known["items"]})[:3]
    candidates: list[dict[str, Any]] = []
    for category in categories:
        candidates.extend(
            (await _catalog(ctx, "/products", "/products", {"category": category, "limit": 100}))["items"]
        )
    items = rank_related(candidates, set(ids), ids, limit) if candidates else []
    return JSONResponse({"items": items, "for": ids})


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    return create_service_app(
        "recommendations", [router], config=config, description="Related products for a product or a cart."
    )
