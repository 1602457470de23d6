"""gateway: the shop's public API, the storefront and the admin console."""
