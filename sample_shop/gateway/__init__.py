"""gateway: the shop's public API and a minimal HTML storefront."""
