"""The storefront page: static HTML that lists products through the public API (no template engine)."""

STOREFRONT_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sample shop</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
 h1 { font-weight: 600; } .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr));
 gap: 1rem; } .card { border: 1px solid #ddd; border-radius: .5rem; padding: 1rem; }
 .price { font-weight: 600; } .muted { color: #777; font-size: .9rem; }
</style>
</head>
<body>
<h1>Sample shop</h1>
<p class="muted">A demo shop for observability and chaos experiments. The API is documented at
<a href="/docs">/docs</a>; health at <a href="/readyz">/readyz</a>.</p>
<div id="products" class="grid">Loading products...</div>
<script>
fetch("/api/products?limit=24").then(r => r.json()).then(page => {
  const grid = document.getElementById("products");
  grid.textContent = "";
  for (const p of page.items) {
    const card = document.createElement("div");
    card.className = "card";
    const name = document.createElement("div"); name.textContent = p.name;
    const price = document.createElement("div"); price.className = "price";
    price.textContent = (p.price_cents / 100).toFixed(2) + " " + p.currency;
    const cat = document.createElement("div"); cat.className = "muted"; cat.textContent = p.category;
    card.append(name, price, cat);
    grid.append(card);
  }
}).catch(() => { document.getElementById("products").textContent = "The catalog is unavailable."; });
</script>
</body>
</html>
"""
