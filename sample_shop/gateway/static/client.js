// The pages' one way to talk to the gateway: every user action gets its own W3C trace id, sent as
// `traceparent` on each request the action makes, and shown on the page, so a learner can find that click
// in the run's traces (runs/<id>/traces, or <state dir>/traces while the stack runs). Errors come back as
// ApiError with the gateway's stable code and a sentence a shopper can act on.

const TOKEN_KEY = "shop.token";
const USER_KEY = "shop.user";

function randomHex(bytes) {
  const values = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(values, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class ApiError extends Error {
  constructor(status, code, message, fields = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

// ---- session: the bearer token from login, kept in localStorage (shared by / and /admin) -------------

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  get user() {
    try {
      return JSON.parse(localStorage.getItem(USER_KEY) || "null");
    } catch {
      return null;
    }
  },
  // the role claim of the token, for showing the admin link; the gateway decides access (403 admin_only)
  get role() {
    const token = this.token;
    if (!token) return null;
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(payload)).role || "shopper";
    } catch {
      return "shopper";
    }
  },
  save(token, user) {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify(user));
  },
  saveUser(user) {
    localStorage.setItem(USER_KEY, JSON.stringify(user));
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  },
};

// ---- actions and traces --------------------------------------------------------------------------------

let currentTraceId = null;
let currentSpanId = null; // the action's own span: every request of one click is its child
let onTrace = () => {};

export function onTraceChange(listener) {
  onTrace = listener;
}

// Start a new user action: the requests it makes share one trace id and one parent span id (the click),
// so the action is one trace whose only missing parent is the click itself.
export function beginAction(name) {
  currentTraceId = randomHex(16);
  currentSpanId = randomHex(8);
  onTrace(currentTraceId, name);
  return currentTraceId;
}

export function lastTraceId() {
  return currentTraceId;
}

// ---- messages ------------------------------------------------------------------------------------------

// What a shopper should read for the gateway's codes (docs/shop.md); the gateway's message otherwise.
const FRIENDLY = {
  payment_declined: (e) => `Your card was declined${e.reason ? ` (${e.reason})` : ""}. Try another card.`,
  card_invalid: (e) => `The card details are not valid: ${e.message}`,
  out_of_stock: (e) => `Sorry, not enough stock: ${e.message}`,
  cart_empty: () => "Your cart is empty: add a product first.",
  quantity_limit: () => "A cart line holds at most 99 of one product.",
  email_taken: () => "An account with this e-mail already exists: log in instead.",
  invalid_credentials: () => "Unknown e-mail or wrong password.",
  wrong_password: () => "The current password is not right.",
  weak_password: (e) => `Choose a stronger new password: ${e.message}`,
  unauthorized: () => "Your session has expired or you are not logged in: please log in.",
  admin_only: () => "Admins only: log in with an administrator account.",
  order_not_cancellable: () => "This order can no longer be cancelled (it has shipped).",
  checkout_in_progress: () => "Your checkout is still being processed: try again in a second.",
  payment_unavailable: () => "The payment provider is unavailable right now: try again (nothing was charged twice).",
  dependency_unavailable: () => "Part of the shop is unavailable right now: try again shortly.",
  injected_fault: () => "The shop failed on purpose (an injected fault): try again.",
};

export function describe(error) {
  if (error instanceof ApiError) {
    const friendly = FRIENDLY[error.code];
    return friendly ? friendly(error) : error.message || `The shop answered HTTP ${error.status}.`;
  }
  return `Something went wrong: ${error && error.message ? error.message : error}`;
}

function errorOf(status, body) {
  if (body && typeof body === "object") {
    // the gateway's envelope: {"error", "message", "errors": [{"field"|"code", "message"}]}
    const first = Array.isArray(body.errors) && body.errors.length ? body.errors[0] : {};
    const code = body.error || first.code || (status === 401 ? "unauthorized" : "http_" + status);
    const message = body.message || first.message || `HTTP ${status}`;
    const error = new ApiError(status, code, message, body.errors || []);
    error.reason = body.reason || (body.failure && body.failure.reason) || null;
    error.orderId = body.order_id || null;
    return error;
  }
  return new ApiError(status, status === 401 ? "unauthorized" : "http_" + status, `The shop answered HTTP ${status}.`);
}

// ---- requests ------------------------------------------------------------------------------------------

let onUnauthorized = () => {};

export function onSessionExpired(listener) {
  onUnauthorized = listener;
}

// One request to the gateway. `headers` may add e.g. Idempotency-Key. Resolves to the JSON body (null for
// 204) or rejects with ApiError; a 401 on a request that carried a token also ends the session.
export async function api(method, path, { body, headers = {} } = {}) {
  const traceId = currentTraceId || beginAction(method + " " + path);
  // flags 01: sampled, so the shop records the whole trace (its sampler follows a sampled caller)
  const sent = { traceparent: `00-${traceId}-${currentSpanId}-01`, ...headers };
  const token = session.token;
  if (token) sent.Authorization = `Bearer ${token}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    throw new ApiError(0, "unreachable", "The shop is unreachable: is the stack running (testbed status)?");
  }
  let parsed = null;
  const text = await response.text();
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    const error = errorOf(response.status, parsed);
    // only a rejected token ends the session (a wrong old password is a 401 too, with its own code)
    if (response.status === 401 && token && error.code === "unauthorized") {
      session.clear();
      onUnauthorized(error);
    }
    throw error;
  }
  return parsed;
}

// ---- small DOM helpers shared by the pages ---------------------------------------------------------------

// el("button", {class: "x", onclick: f}, "text", child...): children are text or nodes (never HTML strings)
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function money(cents, currency = "EUR") {
  return `${(cents / 100).toFixed(2)} ${currency}`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString();
}

let notifiedAt = 0;

// Show a message in the page's message area; kind is "error", "ok" or "info".
export function notify(kind, text) {
  notifiedAt = Date.now();
  const area = document.getElementById("messages");
  area.textContent = "";
  if (!text) return;
  area.append(el("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text));
}

// Clear the message unless it was just shown (an action that navigates keeps its own message).
export function clearStaleMessage() {
  if (Date.now() - notifiedAt > 1500) document.getElementById("messages").textContent = "";
}

// Run a user action: a fresh trace id, then `work`; an error becomes a message on the page, never a blank
// page. Resolves to work's result, or undefined after an error.
export async function act(name, work) {
  beginAction(name);
  try {
    return await work();
  } catch (error) {
    notify("error", describe(error));
    return undefined;
  }
}

// The footer line that names the last action's trace id.
export function installTraceFooter() {
  const footer = document.getElementById("trace");
  onTraceChange((traceId, name) => {
    footer.textContent = "";
    footer.append(
      "Last action: ",
      el("span", { class: "action" }, name),
      " · trace id ",
      el("code", { id: "trace-id" }, traceId),
      " (find it in runs/<id>/traces or in Grafana's trace search)",
    );
  });
}
