// Details panel: the selected node or edge, its links, and its metadata as a collapsible tree.

import { rel } from "./graphstore.js";
import { nodeName, nodeType, typeClass } from "./style.js";
import { metricsCharts } from "./metrics.js";

const DEFAULT_COLLAPSED = new Set(["RoutingTables", "Neighbors", "FDB", "Features", "LastUpdateMetric", "Ovs", "Sockets"]);
const TIME_KEYS = new Set(["CreatedAt", "UpdatedAt", "DeletedAt", "Start", "Last", "StartTime", "LastUpdateMetric.Start", "LastUpdateMetric.Last"]);
const MAX_CHILDREN = 500;                  // a huge list is cut (with a note), the panel stays fast

function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const k in attrs) {
      if (k === "class") e.className = attrs[k];
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== undefined && attrs[k] !== null && attrs[k] !== false) e.setAttribute(k, attrs[k]);
    }
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function formatTime(ms) {
  if (typeof ms !== "number" || !ms) return String(ms);
  const d = new Date(ms);
  return isNaN(d) ? String(ms) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export class DetailsPanel {
  constructor(container, store, actions) {
    this.el = container;
    this.store = store;
    this.actions = actions;                // center(id), select(sel), capture(id), query(q), unpin(id), flows(id)
    this.metrics = null;                   // a MetricsRecorder (charts of the interface counters)
    this.current = null;                   // {kind, id}
    this.collapsed = new Map();            // path -> bool (user's choice)
    this.pending = false;
    this.lastRender = 0;
    this.hint = container.innerHTML;
  }

  show(sel) {
    this.current = sel;
    this.render();
  }

  // called on store updates; re-renders at most twice per second
  changed(changes) {
    const c = this.current;
    if (!c) return;
    const ids = c.kind === "node"
      ? [changes.updatedNodes, changes.addedNodes, changes.removedNodes, changes.addedEdges, changes.removedEdges]
      : [changes.updatedEdges, changes.addedEdges, changes.removedEdges];
    if (!changes.reset && !ids.some((s) => s.has(c.id)) && !(c.kind === "node" && changes.structure && this._touchesNode(changes))) return;
    if (this.pending) return;
    const wait = Math.max(0, 500 - (performance.now() - this.lastRender));
    this.pending = true;
    setTimeout(() => { this.pending = false; this.render(); }, wait);
  }

  _touchesNode(changes) {
    const id = this.current.id;
    for (const set of [changes.addedEdges]) {
      for (const eid of set) {
        const e = this.store.edge(eid);
        if (e && (e.Parent === id || e.Child === id)) return true;
      }
    }
    return changes.removedEdges.size > 0;
  }

  render() {
    this.lastRender = performance.now();
    const c = this.current;
    const scroll = this.el.parentElement ? this.el.parentElement.scrollTop : 0;
    this.el.textContent = "";
    if (!c) { this.el.innerHTML = this.hint; return; }
    const obj = c.kind === "node" ? this.store.node(c.id) : this.store.edge(c.id);
    if (!obj) {
      this.el.append(h("p", { class: "hint" }, `The ${c.kind} ${c.id} is no longer in the topology.`));
      return;
    }
    if (c.kind === "node") this._renderNode(obj);
    else this._renderEdge(obj);
    if (this.el.parentElement) this.el.parentElement.scrollTop = scroll;
  }

  _renderNode(n) {
    const m = n.Metadata || {};
    const type = nodeType(n);
    this.el.append(h("div", { class: "details-header" },
      h("span", { class: `swatch ${typeClass(type, n)}`, "aria-hidden": "true" }),
      h("h2", { id: "details-title" }, nodeName(n)),
      h("span", { class: "badge" }, type || "no type")));
    this.el.append(h("div", { class: "details-actions" },
      h("button", { type: "button", onclick: () => this.actions.center(n.ID) }, "Center"),
      h("button", { type: "button", onclick: () => this.actions.capture(n.ID) }, "Capture…"),
      h("button", { type: "button", id: "details-flows", onclick: () => this.actions.flows(n.ID) }, "Flows"),
      h("button", { type: "button", onclick: () => this.actions.query(`G.V('${n.ID}').Both()`) }, "Neighbours query"),
      h("button", { type: "button", onclick: () => this.actions.unpin(n.ID) }, "Unpin"),
      this.store.isGroup(n.ID) ? h("button", { type: "button", id: "details-fold", "aria-pressed": this.actions.isCollapsed(n.ID) ? "true" : "false",
        onclick: () => this.actions.fold(n.ID) }, this.actions.isCollapsed(n.ID) ? "Expand" : "Collapse") : null));
    this.el.append(this._kv([
      ["ID", n.ID], ["Host", n.Host], ["Origin", n.Origin],
      ["Created", formatTime(n.CreatedAt)], ["Updated", formatTime(n.UpdatedAt)], ["Revision", n.Revision],
    ]));
    // links
    const links = [...this.store.edgesOf(n.ID)].map((eid) => this.store.edge(eid)).filter(Boolean);
    if (links.length) {
      links.sort((a, b) => rel(a).localeCompare(rel(b)));
      const ul = h("ul", { class: "tree links", "aria-label": "Links" });
      for (const e of links.slice(0, MAX_CHILDREN)) {
        const out = e.Parent === n.ID;
        const peer = this.store.node(out ? e.Child : e.Parent);
        const t = e.Metadata && e.Metadata.Type ? ` (${e.Metadata.Type})` : "";
        ul.append(h("li", null,
          h("span", { class: "k" }, `${rel(e) || "edge"}${t} ${out ? "→" : "←"} `),
          h("button", { type: "button", class: "linklike", onclick: () => this.actions.select({ kind: "node", id: peer.ID }) }, nodeName(peer)),
          " ",
          h("button", { type: "button", class: "linklike muted", title: "Show this link", onclick: () => this.actions.select({ kind: "edge", id: e.ID }) }, "link")));
      }
      if (links.length > MAX_CHILDREN) ul.append(h("li", { class: "hint" }, `… ${links.length - MAX_CHILDREN} more`));
      const d = h("details", { open: links.length <= 12 ? "" : null }, h("summary", null, h("span", { class: "k" }, "Links"), " ", h("span", { class: "count" }, `(${links.length})`)), ul);
      this.el.append(h("div", { class: "tree" }, d));
    }
    if (this.metrics && m.Metric) {
      this.el.append(h("h2", null, "Traffic"));
      this.el.append(metricsCharts(this.metrics, n.ID));
    }
    this.el.append(h("h2", null, "Metadata"));
    this.el.append(this._tree(m, "Metadata"));
  }

  _renderEdge(e) {
    const parent = this.store.node(e.Parent), child = this.store.node(e.Child);
    this.el.append(h("div", { class: "details-header" },
      h("h2", { id: "details-title" }, `${rel(e) || "edge"} link`),
      e.Metadata && e.Metadata.Type ? h("span", { class: "badge" }, String(e.Metadata.Type)) : null));
    const pbtn = h("button", { type: "button", class: "linklike", onclick: () => this.actions.select({ kind: "node", id: e.Parent }) }, nodeName(parent));
    const cbtn = h("button", { type: "button", class: "linklike", onclick: () => this.actions.select({ kind: "node", id: e.Child }) }, nodeName(child));
    this.el.append(this._kv([
      ["ID", e.ID], ["Parent", pbtn], ["Child", cbtn], ["Host", e.Host], ["Origin", e.Origin],
      ["Created", formatTime(e.CreatedAt)], ["Updated", formatTime(e.UpdatedAt)], ["Revision", e.Revision],
    ]));
    this.el.append(h("h2", null, "Metadata"));
    this.el.append(this._tree(e.Metadata || {}, "Metadata"));
  }

  _kv(rows) {
    const t = h("table", { class: "kv" });
    for (const [k, v] of rows) {
      if (v === undefined || v === null || v === "") continue;
      t.append(h("tr", null, h("th", { scope: "row" }, k), h("td", null, v instanceof Node ? v : String(v))));
    }
    return t;
  }

  _tree(value, path) {
    const ul = h("ul", { class: "tree", "aria-label": "Metadata" });
    this._children(ul, value, path);
    return ul;
  }

  _children(ul, value, path) {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.keys(value).sort().map((k) => [k, value[k]]);
    for (const [k, v] of entries.slice(0, MAX_CHILDREN)) ul.append(this._item(k, v, `${path}.${k}`));
    if (entries.length > MAX_CHILDREN) ul.append(h("li", { class: "hint" }, `… ${entries.length - MAX_CHILDREN} more`));
  }

  _item(key, v, path) {
    if (v !== null && typeof v === "object") {
      const n = Array.isArray(v) ? v.length : Object.keys(v).length;
      const user = this.collapsed.get(path);
      const open = user !== undefined ? !user : !(DEFAULT_COLLAPSED.has(key) || n > 30);
      const ul = h("ul");
      const summary = h("summary", null, h("span", { class: "k" }, key), " ",
        h("span", { class: "count" }, Array.isArray(v) ? `[${n}]` : `{${n}}`));
      const d = h("details", { open: open ? "" : null }, summary, ul);
      let filled = false;
      const fill = () => { if (!filled) { filled = true; this._children(ul, v, path); } };
      if (open) fill();
      d.addEventListener("toggle", () => {
        this.collapsed.set(path, !d.open);
        if (d.open) fill();
      });
      return h("li", { "data-path": path }, d);
    }
    let cls = "v null", text = "null";
    if (typeof v === "string") { cls = "v str"; text = JSON.stringify(v); }
    else if (typeof v === "number") { cls = "v num"; text = String(v); }
    else if (typeof v === "boolean") { cls = "v bool"; text = String(v); }
    const valueEl = h("span", { class: cls }, text);
    if (typeof v === "number" && v > 1e12 && v < 1e14 && (TIME_KEYS.has(key) || /(At|Time|Start|Last)$/.test(key))) {
      valueEl.title = formatTime(v);
      valueEl.append(h("span", { class: "count" }, ` (${formatTime(v)})`));
    }
    if (key === "State" && /\.Captures\.\d+\.State$/.test(path)) valueEl.classList.add(`capture-state-${v}`);
    return h("li", { "data-path": path }, h("span", { class: "k" }, key), ": ", valueEl);
  }
}
