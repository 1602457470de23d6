"""recommendations: products related to a product or a cart, from catalog."""
