// A REST resource list (GET /api/<kind>, POST, DELETE /api/<kind>/<id>) shown as a table.
// Refusals show the analyzer's own text.

import { request } from "./api.js";

export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const k in attrs) {
      if (k === "class") e.className = attrs[k];
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== undefined && attrs[k] !== null && attrs[k] !== false) e.setAttribute(k, attrs[k]);
    }
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

export function showError(el, message) {
  if (!message) { el.hidden = true; el.textContent = ""; return; }
  el.textContent = message;
  el.hidden = false;
}

// "Key=Value" lines (values: JSON when they parse as a number/bool, else strings) or a JSON object
export function parseMetadata(text) {
  const t = text.trim();
  if (!t) return {};
  if (t.startsWith("{")) {
    let v;
    try { v = JSON.parse(t); } catch (err) { throw new Error(`metadata: invalid JSON (${err.message})`); }
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("metadata: a JSON object is expected");
    return v;
  }
  const out = {};
  for (const raw of t.split(/[\n,]/)) {
    const line = raw.trim();
    if (!line) continue;
    const i = line.indexOf("=");
    if (i <= 0) throw new Error(`metadata: "${line}" is not Key=Value`);
    const k = line.slice(0, i).trim(), v = line.slice(i + 1).trim();
    out[k] = /^(-?\d+(\.\d+)?|true|false)$/.test(v) ? JSON.parse(v) : v;
  }
  return out;
}

export class ResourceList {
  // kind: "alert"...; tbody; countEl; errorEl; row(obj) -> [cells...] (the delete button is added)
  constructor({ kind, title, tbody, countEl, errorEl, row, onChange }) {
    Object.assign(this, { kind, title, tbody, countEl, errorEl, row, onChange });
    this.items = {};
    this.loading = null;
  }

  async refresh() {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      try {
        const r = await request("GET", `api/${this.kind}`);
        this.items = r.data && typeof r.data === "object" ? r.data : {};
        this.render();
      } catch (err) {
        showError(this.errorEl, `Cannot list ${this.title}s: ${err.message}`);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  async create(body) {
    showError(this.errorEl, "");
    try {
      const r = await request("POST", `api/${this.kind}`, { body });
      await this.refresh();
      return r.data;
    } catch (err) {
      showError(this.errorEl, `${this.title} not created: ${err.message}`);
      return null;
    }
  }

  async remove(id) {
    showError(this.errorEl, "");
    try {
      await request("DELETE", `api/${this.kind}/${encodeURIComponent(id)}`);
    } catch (err) {
      showError(this.errorEl, `${this.title} not deleted: ${err.message}`);
    }
    await this.refresh();
  }

  render() {
    const list = Object.entries(this.items).map(([id, o]) => ({ ...o, UUID: o.UUID || id }));
    list.sort((a, b) => String(a.Name || a.UUID).localeCompare(String(b.Name || b.UUID)));
    this.tbody.textContent = "";
    for (const o of list) {
      const tr = h("tr", { "data-id": o.UUID });
      for (const c of this.row(o)) tr.append(h("td", null, c));
      tr.append(h("td", { class: "actions" }, h("button", {
        type: "button", class: "danger", "aria-label": `Delete ${this.title.toLowerCase()} ${o.Name || o.UUID}`,
        onclick: () => this.remove(o.UUID),
      }, "Delete")));
      this.tbody.append(tr);
    }
    if (this.countEl) this.countEl.textContent = String(list.length);
    if (this.onChange) this.onChange(list);
  }
}
