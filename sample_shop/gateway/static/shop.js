// The storefront: one page, views chosen by the URL's hash (#/, #/product/7, #/cart, #/orders, #/orders/<id>,
// #/login, #/register, #/profile). Every view is built from the gateway's public API (docs/shop.md).
import {
  act,
  api,
  beginAction,
  describe,
  el,
  installTraceFooter,
  money,
  clearStaleMessage,
  notify,
  onSessionExpired,
  session,
  when,
} from "/static/client.js";

// The payment service's test cards (sample_shop/payment/cards.py, docs/shop.md "Test cards").
const TEST_CARDS = [
  ["4242424242424242", "4242 4242 4242 4242 · succeeds"],
  ["4000000000000002", "4000 0000 0000 0002 · declined (card_declined)"],
  ["4000000000009995", "4000 0000 0000 9995 · declined (insufficient_funds)"],
  ["4242424242424241", "4242 4242 4242 4241 · invalid number"],
];
const CANCELLABLE = new Set(["paid", "completed"]);
const PAGE_SIZE = 24;

const view = () => document.getElementById("view");

function show(...nodes) {
  view().textContent = "";
  view().append(...nodes);
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function statusBadge(status) {
  return el("span", { class: `status ${status}`, "data-status": status }, status);
}

// ---- navigation -----------------------------------------------------------------------------------------

let cartCount = null;

function renderNav() {
  const nav = document.getElementById("nav");
  nav.textContent = "";
  nav.append(el("a", { href: "#/" }, "Products"));
  if (session.token) {
    const user = session.user;
    nav.append(
      el("a", { href: "#/cart", id: "nav-cart" }, cartCount === null ? "Cart" : `Cart (${cartCount})`),
      el("a", { href: "#/orders" }, "Orders"),
      el("a", { href: "#/profile", class: "who" }, user ? user.name : "Profile"),
    );
    if (session.role === "admin") nav.append(el("a", { href: "/admin" }, "Admin"));
    nav.append(
      el(
        "button",
        {
          class: "link",
          id: "logout",
          onclick: () => {
            beginAction("log out");
            session.clear();
            cartCount = null;
            notify("ok", "You are logged out.");
            go("#/");
          },
        },
        "Log out",
      ),
    );
  } else {
    nav.append(el("a", { href: "#/login" }, "Log in"), el("a", { href: "#/register" }, "Register"));
  }
}

async function refreshCartCount() {
  if (!session.token) return;
  try {
    const cart = await api("GET", "/api/cart");
    cartCount = cart.item_count;
  } catch {
    cartCount = null;
  }
  renderNav();
}

function needLogin(what) {
  notify("info", `Log in to ${what}.`);
  go("#/login");
}

// ---- browse, search, category filter ---------------------------------------------------------------------

let categories = null;

async function loadCategories() {
  if (categories) return categories;
  // the seeded catalog is small: one page of products names every category
  const page = await api("GET", "/api/products?limit=100");
  categories = [...new Set(page.items.map((p) => p.category))].sort();
  return categories;
}

function productCard(product) {
  return el(
    "div",
    { class: "card product", "data-product-id": product.id },
    el("a", { class: "name", href: `#/product/${product.id}` }, product.name),
    el("div", { class: "price" }, money(product.price_cents, product.currency)),
    el("div", { class: "muted" }, `${product.category} · ${product.stock > 0 ? `${product.stock} in stock` : "out of stock"}`),
    el("button", { class: "add", onclick: () => addToCart(product, 1), disabled: product.stock <= 0 }, "Add to cart"),
  );
}

async function addToCart(product, quantity) {
  if (!session.token) return needLogin("fill a cart");
  await act(`add ${product.name} to the cart`, async () => {
    const cart = await api("POST", "/api/cart/items", { body: { product_id: product.id, quantity } });
    cartCount = cart.item_count;
    renderNav();
    if (location.hash.startsWith("#/cart")) renderCart(cart); // added from the cart's recommendations
    notify("ok", `Added ${quantity} x ${product.name} to your cart.`);
  });
}

async function browseView(params) {
  const q = params.get("q") || "";
  const category = params.get("category") || "";
  const search = el("input", { type: "search", name: "q", placeholder: "Search products", value: q });
  const select = el("select", { name: "category" }, el("option", { value: "" }, "All categories"));
  const form = el(
    "form",
    {
      class: "toolbar",
      id: "search",
      onsubmit: (event) => {
        event.preventDefault();
        const next = new URLSearchParams();
        if (search.value.trim()) next.set("q", search.value.trim());
        if (select.value) next.set("category", select.value);
        go(`#/?${next}`);
      },
    },
    search,
    select,
    el("button", { type: "submit" }, "Search"),
  );
  select.addEventListener("change", () => form.requestSubmit());
  const grid = el("div", { class: "grid", id: "products" }, "Loading products...");
  show(el("h1", {}, q ? `Products matching "${q}"` : "Products"), form, grid);
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: "0" });
  if (q) query.set("q", q);
  if (category) query.set("category", category);
  const [page, names] = await Promise.all([api("GET", `/api/products?${query}`), loadCategories()]);
  for (const name of names) select.append(el("option", { value: name, selected: name === category }, name));
  grid.textContent = "";
  if (!page.items.length) grid.append(el("p", { class: "muted" }, "No product matches. Try another word."));
  for (const product of page.items) grid.append(productCard(product));
  let shown = page.items.length;
  const more = el("button", { class: "secondary", id: "more-products" }, "More products");
  more.addEventListener("click", () =>
    act("more products", async () => {
      query.set("offset", String(shown));
      const next = await api("GET", `/api/products?${query}`);
      for (const product of next.items) grid.append(productCard(product));
      shown += next.items.length;
      if (shown >= next.total || !next.items.length) more.remove();
    }),
  );
  if (shown < page.total) view().append(el("p", {}, more));
}

// ---- product page with recommendations ---------------------------------------------------------------------

async function productView(id) {
  const page = await api("GET", `/api/products/${encodeURIComponent(id)}`);
  const product = page.product;
  const quantity = el("input", { type: "number", name: "quantity", min: "1", max: "99", value: "1", class: "small" });
  const recommendations = el("div", { class: "grid", id: "recommendations" });
  for (const item of page.recommendations) recommendations.append(productCard(item));
  show(
    el("p", {}, el("a", { href: "#/" }, "← all products")),
    el("h1", { id: "product-name" }, product.name),
    el("p", {}, product.description),
    el("p", {}, el("span", { class: "price" }, money(product.price_cents, product.currency)), ` · ${product.category} · `,
      product.stock > 0 ? `${product.stock} in stock` : "out of stock"),
    el(
      "form",
      {
        class: "toolbar",
        onsubmit: (event) => {
          event.preventDefault();
          addToCart(product, Number(quantity.value));
        },
      },
      el("label", {}, "Quantity ", quantity),
      el("button", { type: "submit", id: "add-to-cart", disabled: product.stock <= 0 }, "Add to cart"),
    ),
    el("h2", {}, "You may also like"),
    page.degraded
      ? el("p", { class: "muted" }, "Recommendations are unavailable right now.")
      : page.recommendations.length
        ? recommendations
        : el("p", { class: "muted" }, "No recommendations for this product."),
  );
}

// ---- cart with quantities and checkout ------------------------------------------------------------------------

let checkoutKey = null; // kept while the last attempt failed for a reason a retry may fix (docs/shop.md)
let checkoutBody = null; // the body sent with checkoutKey: the server refuses the key with another body

function newKey() {
  return "web-" + Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
}

let cartUpdates = Promise.resolve(); // one quantity change at a time: each is a delete and an add

function setQuantity(line, quantity) {
  cartUpdates = cartUpdates.then(() => changeQuantity(line, quantity));
  return cartUpdates;
}

async function changeQuantity(line, quantity) {
  await act(`set ${line.name} to ${quantity}`, async () => {
    // the API adds to a line; to set a quantity, the line is replaced
    let cart = await api("DELETE", `/api/cart/items/${line.product_id}`);
    if (quantity > 0) cart = await api("POST", "/api/cart/items", { body: { product_id: line.product_id, quantity } });
    cartCount = cart.item_count;
    renderNav();
    renderCart(cart);
  });
}

function checkoutForm() {
  const card = el("select", { name: "card" }, TEST_CARDS.map(([number, label]) => el("option", { value: number }, label)));
  const expiry = el("input", { name: "expiry", value: "12/30", size: "5", pattern: "\\d\\d/\\d\\d", title: "MM/YY" });
  const cvc = el("input", { name: "cvc", value: "123", size: "4" });
  return el(
    "form",
    {
      class: "stack",
      id: "checkout",
      onsubmit: async (event) => {
        event.preventDefault();
        const button = event.target.querySelector("button");
        button.disabled = true;
        await act("check out", async () => {
          const body = { card: { number: card.value, expiry: expiry.value, cvc: cvc.value } };
          // a retry must send the same body: other card details are a new checkout with a new key
          if (JSON.stringify(body) !== checkoutBody) checkoutKey = null;
          checkoutKey = checkoutKey || newKey();
          checkoutBody = JSON.stringify(body);
          try {
            const order = await api("POST", "/api/checkout", {
              body,
              headers: { "Idempotency-Key": checkoutKey },
            });
            checkoutKey = null;
            cartCount = 0;
            renderNav();
            await orderView(order.id, false);
            notify("ok", `Thank you! Order ${order.id.slice(0, 8)} is ${order.status}.`);
          } catch (error) {
            // a definitive failure (declined, out of stock, empty cart) is the same for the same key:
            // a new attempt needs a new key; a transient one is retried with the same key
            const transient = error.status >= 500 || error.code === "checkout_in_progress" || error.code === "card_invalid";
            if (!transient) checkoutKey = null;
            throw error;
          } finally {
            button.disabled = false;
          }
        });
      },
    },
    el("h2", {}, "Check out"),
    el("label", {}, "Test card", card),
    el("label", {}, "Expiry (MM/YY)", expiry),
    el("label", {}, "CVC", cvc),
    el("button", { type: "submit" }, "Pay"),
    el("p", { class: "muted" }, "Test cards: docs/shop.md. No real money moves."),
  );
}

function renderCart(cart) {
  if (!cart.items.length) {
    show(el("h1", {}, "Your cart"), el("p", { id: "cart-empty" }, "Your cart is empty. ", el("a", { href: "#/" }, "Browse products")));
    return;
  }
  const cartRecommendations = el("div", {});
  const rows = cart.items.map((line) => {
    const quantity = el("input", { type: "number", min: "0", max: "99", value: String(line.quantity), class: "small", "aria-label": `quantity of ${line.name}` });
    quantity.addEventListener("change", () => setQuantity(line, Number(quantity.value)));
    return el(
      "tr",
      { "data-product-id": line.product_id },
      el("td", {}, el("a", { href: `#/product/${line.product_id}` }, line.name)),
      el("td", {}, money(line.unit_price_cents, cart.currency)),
      el("td", {}, quantity),
      el("td", {}, money(line.line_total_cents, cart.currency)),
      el("td", {}, el("button", { class: "secondary", onclick: () => setQuantity(line, 0) }, "Remove")),
    );
  });
  show(
    el("h1", {}, "Your cart"),
    el("div", { class: "columns" },
      el("div", {},
        el("table", { id: "cart" },
          el("thead", {}, el("tr", {}, el("th", {}, "Product"), el("th", {}, "Price"), el("th", {}, "Quantity"), el("th", {}, "Total"), el("th", {}))),
          el("tbody", {}, rows),
        ),
        el("p", { class: "price", id: "cart-total" }, `Total: ${money(cart.total_cents, cart.currency)}`),
      ),
      checkoutForm(),
    ),
    cartRecommendations,
  );
  // optional: the cart works without them ("degraded" when recommendations is down)
  api("GET", "/api/recommendations")
    .then((answer) => {
      if (!answer.items.length) return;
      cartRecommendations.append(el("h2", {}, "Goes well with your cart"),
        el("div", { class: "grid", id: "cart-recommendations" }, answer.items.map(productCard)));
    })
    .catch(() => {});
}

async function cartView() {
  if (!session.token) return needLogin("see your cart");
  const cart = await api("GET", "/api/cart");
  cartCount = cart.item_count;
  renderNav();
  renderCart(cart);
}

// ---- orders --------------------------------------------------------------------------------------------------------

async function ordersView() {
  if (!session.token) return needLogin("see your orders");
  const page = await api("GET", "/api/orders?limit=50");
  const rows = page.items.map((order) =>
    el(
      "tr",
      { "data-order-id": order.id },
      el("td", {}, el("a", { href: `#/orders/${order.id}` }, order.id.slice(0, 8))),
      el("td", {}, when(order.created_at)),
      el("td", {}, statusBadge(order.status)),
      el("td", {}, money(order.total_cents, order.currency)),
    ),
  );
  show(
    el("h1", {}, "Your orders"),
    page.items.length
      ? el("table", { id: "orders" }, el("thead", {}, el("tr", {}, el("th", {}, "Order"), el("th", {}, "Placed"), el("th", {}, "Status"), el("th", {}, "Total"))), el("tbody", {}, rows))
      : el("p", {}, "No orders yet."),
  );
}

async function orderView(id, fetch = true) {
  if (!session.token) return needLogin("see your orders");
  const order = await api("GET", `/api/orders/${encodeURIComponent(id)}`);
  if (!fetch && location.hash !== `#/orders/${id}`) history.replaceState(null, "", `#/orders/${id}`);
  const parts = [
    el("p", {}, el("a", { href: "#/orders" }, "← all orders")),
    el("h1", {}, `Order ${order.id.slice(0, 8)} `, statusBadge(order.status)),
    el("p", { class: "muted" }, `Placed ${when(order.created_at)} · order id ${order.id}`),
    el("table", { id: "order-items" },
      el("thead", {}, el("tr", {}, el("th", {}, "Product"), el("th", {}, "Quantity"), el("th", {}, "Price"))),
      el("tbody", {}, order.items.map((item) => el("tr", {}, el("td", {}, item.name), el("td", {}, item.quantity), el("td", {}, money(item.unit_price_cents, order.currency))))),
    ),
    el("p", { class: "price" }, `Total: ${money(order.total_cents, order.currency)}`, order.card_last4 ? ` · card ···· ${order.card_last4}` : ""),
  ];
  if (order.failure) parts.push(el("p", { class: "message error" }, `This order failed: ${describe({ message: order.failure.message })}`));
  if (order.refund) {
    const refund = order.refund;
    const refundId = typeof refund === "object" ? refund.refund_id || refund.id || "" : String(refund);
    const amount = typeof refund === "object" && refund.amount_cents !== undefined ? money(refund.amount_cents, order.currency) : "";
    const refundText = [amount, refundId && `(refund ${refundId})`].filter(Boolean).join(" ") || "yes";
    parts.push(el("p", { class: "message ok", id: "refund" }, `Refunded: ${refundText}`));
  }
  if (CANCELLABLE.has(order.status)) {
    parts.push(
      el("button", {
        class: "danger",
        id: "cancel-order",
        onclick: () =>
          act("cancel the order", async () => {
            const cancelled = await api("POST", `/api/orders/${encodeURIComponent(order.id)}/cancel`);
            await orderView(order.id, false);
            notify("ok", `Order ${cancelled.id.slice(0, 8)} is cancelled; the payment is refunded.`);
          }),
      }, "Cancel this order"),
    );
  }
  if (Array.isArray(order.history) && order.history.length) {
    parts.push(
      el("h2", {}, "History"),
      el("table", { id: "order-history" },
        el("tbody", {}, order.history.map((event) => el("tr", {}, el("td", {}, when(event.at)), el("td", {}, `${event.from || "-"} → ${event.to}`), el("td", { class: "muted" }, event.actor || "")))),
      ),
    );
  }
  show(...parts);
}

// ---- account: register, log in, profile ------------------------------------------------------------------------------

function field(label, attributes) {
  return el("label", {}, label, el("input", attributes));
}

function loginView() {
  show(
    el("h1", {}, "Log in"),
    el("form", {
      class: "stack",
      id: "login",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        await act("log in", async () => {
          const answer = await api("POST", "/api/auth/login", { body: { email: data.get("email"), password: data.get("password") } });
          session.save(answer.access_token, answer.user);
          notify("ok", `Welcome back, ${answer.user.name}.`);
          refreshCartCount();
          go("#/");
        });
      },
    },
      field("E-mail", { name: "email", type: "email", required: true, autocomplete: "username" }),
      field("Password", { name: "password", type: "password", required: true, autocomplete: "current-password" }),
      el("button", { type: "submit" }, "Log in"),
      el("p", { class: "muted" }, "No account? ", el("a", { href: "#/register" }, "Register")),
    ),
  );
}

function registerView() {
  show(
    el("h1", {}, "Create an account"),
    el("form", {
      class: "stack",
      id: "register",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const credentials = { email: data.get("email"), password: data.get("password") };
        await act("register", async () => {
          await api("POST", "/api/auth/register", { body: { ...credentials, name: data.get("name") } });
          const answer = await api("POST", "/api/auth/login", { body: credentials });
          session.save(answer.access_token, answer.user);
          notify("ok", `Welcome, ${answer.user.name}: your account is ready.`);
          cartCount = 0;
          go("#/");
        });
      },
    },
      field("Name", { name: "name", required: true, maxlength: "100", autocomplete: "name" }),
      field("E-mail", { name: "email", type: "email", required: true, autocomplete: "username" }),
      field("Password (at least 8 characters)", { name: "password", type: "password", required: true, minlength: "8", autocomplete: "new-password" }),
      el("button", { type: "submit" }, "Register"),
    ),
  );
}

async function profileView() {
  if (!session.token) return needLogin("see your profile");
  const user = await api("GET", "/api/me");
  session.saveUser(user);
  renderNav();
  show(
    el("h1", {}, "Your profile"),
    el("p", { class: "muted" }, `${user.email} · customer since ${when(user.created_at)}`),
    el("form", {
      class: "stack",
      id: "profile",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        await act("change the name", async () => {
          const updated = await api("PATCH", "/api/me", { body: { name: data.get("name") } });
          session.saveUser(updated);
          renderNav();
          notify("ok", `Your name is now ${updated.name}.`);
        });
      },
    },
      el("h2", {}, "Name"),
      field("Name", { name: "name", required: true, maxlength: "100", value: user.name }),
      el("button", { type: "submit" }, "Save"),
    ),
    el("form", {
      class: "stack",
      id: "password",
      onsubmit: async (event) => {
        event.preventDefault();
        const form = event.target;
        const data = new FormData(form);
        await act("change the password", async () => {
          await api("POST", "/api/me/password", { body: { old_password: data.get("old_password"), new_password: data.get("new_password") } });
          form.reset();
          notify("ok", "Your password is changed.");
        });
      },
    },
      el("h2", {}, "Password"),
      field("Current password", { name: "old_password", type: "password", required: true, autocomplete: "current-password" }),
      field("New password (at least 8 characters)", { name: "new_password", type: "password", required: true, minlength: "8", autocomplete: "new-password" }),
      el("button", { type: "submit" }, "Change the password"),
    ),
  );
}

// ---- router --------------------------------------------------------------------------------------------------------------

async function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  renderNav();
  try {
    if (parts.length === 0) await browseView(params);
    else if (parts[0] === "product" && parts[1]) await productView(parts[1]);
    else if (parts[0] === "cart") await cartView();
    else if (parts[0] === "orders" && parts[1]) await orderView(parts[1]);
    else if (parts[0] === "orders") await ordersView();
    else if (parts[0] === "login") loginView();
    else if (parts[0] === "register") registerView();
    else if (parts[0] === "profile") await profileView();
    else show(el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/" }, "Back to the products")));
  } catch (error) {
    // a view that cannot load still shows the shop around the message, never a blank page
    notify("error", describe(error));
    if (!session.token && error.status === 401) return loginView();
    show(el("p", { class: "muted" }, "This page could not be loaded."), el("p", {}, el("a", { href: "#/" }, "Back to the products")));
  }
}

installTraceFooter();
onSessionExpired(() => {
  cartCount = null;
  renderNav();
  notify("error", "Your session has expired: please log in again.");
  if (!location.hash.startsWith("#/login")) location.hash = "#/login";
});
window.addEventListener("hashchange", () => {
  // following a link is an action of its own; a message older than the navigation is stale
  beginAction("open " + (location.hash || "#/"));
  clearStaleMessage();
  route();
});
beginAction("open " + (location.hash || "#/"));
refreshCartCount();
route();
