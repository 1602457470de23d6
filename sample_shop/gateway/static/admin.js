// The admin console: products (create, edit, stock, price), orders (list and filter, advance the status,
// cancel with refund) and analytics (orders and revenue per minute, top products, SLO status), all through
// the gateway's /api/admin routes. A shopper's token gets 403 admin_only there; the page then says so.
import {
  act,
  api,
  beginAction,
  describe,
  el,
  installTraceFooter,
  money,
  notify,
  onSessionExpired,
  session,
  when,
} from "/static/client.js";

const NEXT_STATUS = { paid: "shipped", completed: "shipped", shipped: "delivered" };
const CANCELLABLE = new Set(["paid", "completed"]);
const ANALYTICS_MINUTES = 30;
const ORDER_STATUSES = ["", "pending", "failed", "paid", "shipped", "delivered", "cancelled"];
const view = () => document.getElementById("view");
let tab = "orders";

function show(...nodes) {
  view().textContent = "";
  view().append(...nodes.filter((node) => node !== null && node !== undefined));
}

function renderNav() {
  const nav = document.getElementById("nav");
  nav.textContent = "";
  nav.append(el("a", { href: "/" }, "Storefront"));
  if (session.token) {
    nav.append(
      el("span", { class: "who" }, session.user ? session.user.email : ""),
      el("button", { class: "link", id: "logout", onclick: () => { beginAction("log out"); session.clear(); start(); } }, "Log out"),
    );
  }
}

function loginForm(reason) {
  show(
    el("h1", {}, "Admin console"),
    reason ? el("p", { class: "message error", id: "admins-only" }, reason) : el("p", { class: "muted" },
      "Log in with an administrator account. The first admin is admin@shop.local; its generated password is in the state folder: cat .testbed/admin-password."),
    el("form", {
      class: "stack",
      id: "login",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        await act("admin log in", async () => {
          const answer = await api("POST", "/api/auth/login", { body: { email: data.get("email"), password: data.get("password") } });
          session.save(answer.access_token, answer.user);
          notify("", "");
          await start();
        });
      },
    },
      el("label", {}, "E-mail", el("input", { name: "email", type: "email", required: true, autocomplete: "username" })),
      el("label", {}, "Password", el("input", { name: "password", type: "password", required: true, autocomplete: "current-password" })),
      el("button", { type: "submit" }, "Log in"),
    ),
  );
}

function tabs() {
  const names = [["orders", "Orders"], ["products", "Products"], ["analytics", "Analytics"]];
  return el("div", { class: "tabs", role: "tablist" }, names.map(([name, label]) =>
    el("button", { role: "tab", id: `tab-${name}`, "aria-selected": String(tab === name), class: tab === name ? "" : "secondary",
      onclick: () => { tab = name; act(`open ${label}`, render); } }, label)));
}

// ---- orders ----------------------------------------------------------------------------------------------------

let orderFilter = { status: "", user: "" };

async function ordersTab() {
  const query = new URLSearchParams({ limit: "50" });
  if (orderFilter.status) query.set("status", orderFilter.status);
  if (orderFilter.user) query.set("user", orderFilter.user);
  const page = await api("GET", `/api/admin/orders?${query}`);
  const orders = Array.isArray(page) ? page : page.items;
  const status = el("select", { name: "status" }, ORDER_STATUSES.map((s) => el("option", { value: s, selected: s === orderFilter.status }, s || "any status")));
  const user = el("input", { name: "user", type: "number", min: "1", placeholder: "user id", class: "small", value: orderFilter.user });
  const rows = orders.map((order) => {
    const next = NEXT_STATUS[order.status];
    const row = el("tr", { "data-order-id": order.id },
      el("td", {}, el("button", { class: "link details", title: "show the items and the history",
        onclick: () => act(`open order ${order.id.slice(0, 8)}`, () => toggleDetails(row, order.id)) },
        el("code", {}, order.id.slice(0, 8)))),
      el("td", {}, when(order.created_at)),
      el("td", {}, String(order.user_email || order.user_id || "")),
      el("td", {}, el("span", { class: `status ${order.status}`, "data-status": order.status }, order.status)),
      el("td", {}, money(order.total_cents, order.currency)),
      el("td", {},
        next ? el("button", { class: "advance", onclick: () => act(`mark ${order.id.slice(0, 8)} ${next}`, async () => {
          await api("POST", `/api/admin/orders/${encodeURIComponent(order.id)}/status`, { body: { status: next } });
          await render();
          notify("ok", `Order ${order.id.slice(0, 8)} is ${next}.`);
        }) }, `Mark ${next}`) : null,
        " ",
        CANCELLABLE.has(order.status) ? el("button", { class: "danger cancel", onclick: () => act(`cancel ${order.id.slice(0, 8)}`, async () => {
          await api("POST", `/api/admin/orders/${encodeURIComponent(order.id)}/cancel`);
          await render();
          notify("ok", `Order ${order.id.slice(0, 8)} is cancelled and refunded.`);
        }) }, "Cancel + refund") : null,
      ),
    );
    return row;
  });
  return [
    el("form", { class: "toolbar", id: "order-filter", onsubmit: (event) => {
      event.preventDefault();
      orderFilter = { status: status.value, user: user.value.trim() };
      act("filter orders", render);
    } }, status, user, el("button", { type: "submit" }, "Filter")),
    orders.length
      ? el("table", { id: "admin-orders" },
          el("thead", {}, el("tr", {}, ["Order", "Placed", "User", "Status", "Total", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, rows))
      : el("p", {}, "No orders match."),
  ];
}

// The order's items, refund and status history in a row under it (a second click folds it away).
async function toggleDetails(row, orderId) {
  const open = row.nextElementSibling;
  if (open && open.classList.contains("order-details")) return open.remove();
  const order = await api("GET", `/api/admin/orders/${encodeURIComponent(orderId)}`);
  const items = order.items.map((item) => `${item.quantity} x ${item.name}`).join(", ");
  const history = (order.history || []).map((event) =>
    el("li", {}, `${when(event.at)}: ${event.from || "-"} → ${event.to} (${event.actor || "?"})`));
  const refund = order.refund ? `Refunded ${money(order.refund.amount_cents, order.currency)} (refund ${order.refund.refund_id}).` : "";
  row.after(el("tr", { class: "order-details" }, el("td", { colspan: "6" },
    el("div", {}, items, order.card_last4 ? ` · card ···· ${order.card_last4}` : "", " · order id ", el("code", {}, order.id)),
    refund ? el("div", {}, refund) : null,
    el("ul", { class: "history" }, history))));
}

// ---- products --------------------------------------------------------------------------------------------------

function euros(value) {
  const cents = Math.round(Number(value) * 100);
  if (!Number.isFinite(cents) || cents < 0) throw new Error(`"${value}" is not a price in euros`);
  return cents;
}

async function productsTab() {
  const page = await api("GET", "/api/admin/products");
  const products = Array.isArray(page) ? page : page.items;
  const rows = products.map((product) => {
    const name = el("input", { value: product.name, "aria-label": `name of ${product.id}` });
    const price = el("input", { class: "small", value: (product.price_cents / 100).toFixed(2), "aria-label": `price of ${product.id}` });
    const stock = el("input", { class: "small", type: "number", min: "0", value: String(product.stock), "aria-label": `stock of ${product.id}` });
    return el("tr", { "data-product-id": product.id },
      el("td", {}, product.id), el("td", {}, name), el("td", {}, product.category), el("td", {}, price), el("td", {}, stock),
      el("td", {}, el("button", { class: "save", onclick: () => act(`save product ${product.id}`, async () => {
        const saved = await api("PATCH", `/api/admin/products/${product.id}`, {
          body: { name: name.value, price_cents: euros(price.value), stock: Number(stock.value) },
        });
        notify("ok", `Saved ${saved.name}: ${money(saved.price_cents, saved.currency)}, ${saved.stock} in stock.`);
      }) }, "Save")),
    );
  });
  const create = el("form", { class: "toolbar", id: "create-product", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    act("create a product", async () => {
      const created = await api("POST", "/api/admin/products", { body: {
        name: data.get("name"), category: data.get("category"), price_cents: euros(data.get("price")),
        stock: Number(data.get("stock")), description: data.get("description") || "",
      } });
      await render();
      notify("ok", `Created product ${created.id}: ${created.name}.`);
    });
  } },
    el("input", { name: "name", placeholder: "name", required: true }),
    el("input", { name: "category", placeholder: "category", required: true, size: "10" }),
    el("input", { name: "price", placeholder: "price (EUR)", required: true, size: "8" }),
    el("input", { name: "stock", type: "number", min: "0", placeholder: "stock", required: true, class: "small" }),
    el("input", { name: "description", placeholder: "description" }),
    el("button", { type: "submit" }, "Create"));
  return [
    el("h2", {}, "New product"), create,
    el("h2", {}, `Products (${products.length})`),
    el("table", { id: "admin-products" },
      el("thead", {}, el("tr", {}, ["Id", "Name", "Category", "Price (EUR)", "Stock", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)),
  ];
}

// ---- analytics -------------------------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Orders (bars) and revenue (line) per minute, each scaled to its own maximum.
function perMinuteChart(points) {
  const width = 600, height = 160, pad = 24;
  const chart = svg("svg", { class: "chart", id: "orders-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "orders and revenue per minute" });
  if (!points.length) {
    chart.append(svg("text", { x: pad, y: height / 2, fill: "#6b6b6b" }, "No orders in the window yet."));
    return chart;
  }
  const maxOrders = Math.max(1, ...points.map((p) => p.orders));
  const maxRevenue = Math.max(1, ...points.map((p) => p.revenue_cents ?? p.revenue ?? 0));
  const step = (width - 2 * pad) / points.length;
  const y = (value, max) => height - pad - (value / max) * (height - 2 * pad);
  const line = [];
  points.forEach((point, index) => {
    const x = pad + index * step;
    const top = y(point.orders, maxOrders);
    chart.append(svg("rect", { x: x + 1, y: top, width: Math.max(1, step - 2), height: height - pad - top, fill: "#9db8ff" },
    ));
    chart.lastChild.append(svg("title", {}, `${point.minute}: ${point.orders} orders`));
    line.push(`${x + step / 2},${y(point.revenue_cents ?? point.revenue ?? 0, maxRevenue)}`);
  });
  chart.append(svg("polyline", { points: line.join(" "), fill: "none", stroke: "#1b7f3a", "stroke-width": 2 }));
  chart.append(svg("text", { x: pad, y: 14, "font-size": 11, fill: "#6b6b6b" }, `bars: orders (max ${maxOrders}/min) · line: revenue`));
  return chart;
}

function revenueText(point) {
  if (point.revenue_cents !== undefined) return money(point.revenue_cents);
  return typeof point.revenue === "number" ? money(point.revenue) : String(point.revenue ?? "");
}

async function analyticsTab() {
  const data = await api("GET", `/api/admin/analytics?minutes=${ANALYTICS_MINUTES}`);
  const points = data.orders_per_minute || [];
  const recent = points.slice(-5).reverse();
  const slos = data.slo_status || [];
  const problem = slos.find((s) => s.message);
  return [
    el("h2", {}, `Orders and revenue per minute (last ${ANALYTICS_MINUTES} minutes)`),
    perMinuteChart(points),
    el("div", { class: "columns" },
      el("table", { id: "per-minute" },
        el("thead", {}, el("tr", {}, el("th", {}, "Minute"), el("th", {}, "Orders"), el("th", {}, "Revenue"))),
        el("tbody", {}, recent.map((p) => el("tr", {}, el("td", {}, when(p.minute)), el("td", {}, p.orders), el("td", {}, revenueText(p)))))),
      el("div", {}, el("h2", {}, "Top products"),
        el("table", { id: "top-products" }, el("tbody", {}, (data.top_products || []).map((p) =>
          el("tr", {}, el("td", {}, p.name || `#${p.product_id}`), el("td", {}, `${p.quantity ?? p.orders ?? ""} sold`),
            el("td", {}, p.revenue_cents !== undefined ? money(p.revenue_cents) : ""))))))),
    el("h2", {}, "SLO status (from Prometheus)"),
    el("table", { id: "slo-status" },
      el("thead", {}, el("tr", {}, el("th", {}, "SLO"), el("th", {}, "SLI"), el("th", {}, "Target"), el("th", {}, "State"))),
      el("tbody", {}, slos.map((s) =>
        el("tr", {}, el("td", {}, s.name),
          el("td", {}, s.sli === null || s.sli === undefined ? "-" : `${(100 * s.sli).toFixed(2)} %`),
          el("td", {}, s.target === null || s.target === undefined ? "-" : `${(100 * s.target).toFixed(2)} %`),
          el("td", { class: `slo ${s.state}`, title: s.message || "" }, s.state.replace("_", " ")))))),
    problem ? el("p", { class: "muted" }, problem.message) : null,
  ];
}

// ---- page --------------------------------------------------------------------------------------------------------

const TABS = { orders: ordersTab, products: productsTab, analytics: analyticsTab };

async function render() {
  const body = await TABS[tab]();
  show(el("h1", {}, "Admin console"), tabs(), ...body);
}

async function start() {
  renderNav();
  if (!session.token) return loginForm();
  try {
    await render();
  } catch (error) {
    if (error.code === "admin_only") return loginForm("Admins only: this console needs an administrator account. Log out and log in as an admin.");
    if (!session.token) return loginForm(describe(error));
    show(el("h1", {}, "Admin console"), tabs());
    notify("error", describe(error));
  }
}

installTraceFooter();
onSessionExpired(() => {
  renderNav();
  loginForm("Your session has expired: please log in again.");
});
beginAction("open the admin console");
start();
