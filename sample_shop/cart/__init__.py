"""cart: one cart per user; adding a product checks it exists in catalog."""
