"""catalog: products, search, stock and stock reservations (never oversells)."""
