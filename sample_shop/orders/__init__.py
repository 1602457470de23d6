"""orders: the checkout saga, the order lifecycle and its outbox (docs/shop.md)."""
