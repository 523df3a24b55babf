// REST helpers. Errors carry the analyzer's own message (Go http.Error text bodies).
// A 401 opens the login dialog (POST /login sets the authtoken cookie) and retries once.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let loginPromise = null;
let loginUI = null;          // async () => void, resolves once /login succeeded

export function setLoginHandler(fn) { loginUI = fn; }

export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch("login", { method: "POST", body, credentials: "same-origin" });
  if (!r.ok) {
    const text = (await r.text()).trim();
    throw new ApiError(r.status, text || `login failed (HTTP ${r.status})`);
  }
  return r;
}

async function ensureLogin() {
  if (!loginUI) return false;
  if (!loginPromise) loginPromise = loginUI().finally(() => { loginPromise = null; });
  await loginPromise;
  return true;
}

// request("GET", "api/status") -> parsed JSON (or text / null for empty bodies)
export async function request(method, path, { body, accept = "application/json", retry = true } = {}) {
  const headers = { Accept: accept };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined || method !== "GET") {
    headers["Content-Type"] = "application/json";   // the analyzer answers 415 to anything else
  }
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  let r;
  try {
    r = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `the analyzer is unreachable (${err.message || err})`);
  }
  if (r.status === 401 && retry && await ensureLogin()) {
    return request(method, path, { body, accept, retry: false });
  }
  const text = await r.text();
  if (!r.ok) {
    let msg = text.trim();
    if (!msg) msg = r.statusText || "request failed";
    throw new ApiError(r.status, `HTTP ${r.status}: ${msg}`);
  }
  if (!text) return { status: r.status, data: null, text: "" };
  const ctype = r.headers.get("Content-Type") || "";
  let data = text;
  if (ctype.includes("json") || /^[\s]*[[{"0-9tfn-]/.test(text)) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  return { status: r.status, data, text };
}

// Gremlin query on the analyzer: POST /api/topology {"GremlinQuery": q}
export function gremlin(query) {
  return request("POST", "api/topology", { body: { GremlinQuery: query } });
}

// A Gremlin string literal, or null when it cannot be written: the dialect has no escapes and a
// string ends at the next ' or ".
export function gremlinString(s) {
  s = String(s);
  return /['"]/.test(s) ? null : "'" + s + "'";
}
