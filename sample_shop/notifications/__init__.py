"""The notifications function: consumes orders' outbox and sends one e-mail per order event
(docs/shop.md, "The asynchronous path")."""
