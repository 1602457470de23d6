"""The catalog's seed: 60 deterministic products in 6 categories (same ids and SKUs on every machine, so
load scripts and tests can name products)."""

from __future__ import annotations

from typing import Any

CURRENCY = "EUR"
SEED_STOCK = 100_000
CATEGORIES: dict[str, tuple[str, ...]] = {
    "coffee": ("Espresso Beans", "Filter Roast", "Cold Brew Kit", "Moka Pot", "Milk Frother"),
    "tea": ("Sencha", "Earl Grey", "Rooibos", "Matcha Whisk", "Cast Iron Teapot"),
    "books": (
        "Site Reliability Notebook",
        "Chaos Field Guide",
        "Queueing Primer",
        "Tracing Handbook",
        "Metrics Almanac",
    ),
    "kitchen": ("Chef Knife", "Cutting Board", "Dutch Oven", "Spice Rack", "Salad Spinner"),
    "garden": ("Watering Can", "Pruning Shears", "Seed Tray", "Compost Bin", "Garden Gloves"),
    "toys": ("Wooden Train", "Puzzle Cube", "Kite", "Marble Run", "Building Blocks"),
}
VARIANTS = ("Classic", "Deluxe")


def seed_products() -> list[dict[str, Any]]:
    rows = []
    product_id = 0
    for variant_index, variant in enumerate(VARIANTS):
        for category_index, (category, names) in enumerate(CATEGORIES.items()):
            for name_index, name in enumerate(names):
                product_id += 1
                base = 400 + 350 * name_index + 125 * category_index
                rows.append(
                    {
                        "id": product_id,
                        "sku": f"{category[:3].upper()}-{variant_index + 1}{name_index + 1:02d}",
                        "name": f"{name} {variant}",
                        "description": f"{variant} {name.lower()} from the {category} aisle.",
                        "category": category,
                        "price_cents": base * (2 if variant == "Deluxe" else 1) - 1,
                        "currency": CURRENCY,
                        "stock": SEED_STOCK,
                    }
                )
    return rows
