// Gremlin console, captures panel, status bar, node search and tabs.

import { request, gremlin, gremlinString } from "./api.js";
import { nodeName, nodeType, captureTypesFor, CAPTURE_TYPES } from "./style.js";
import { count } from "./format.js";

const $ = (id) => document.getElementById(id);

function showError(el, message) {
  if (!message) { el.hidden = true; el.textContent = ""; return; }
  el.textContent = message;
  el.hidden = false;
}

// ------------------------------------------------------------------------------ tabs
export class Tabs {
  constructor(tablist) {
    this.tabs = [...tablist.querySelectorAll('[role="tab"]')];
    this.listeners = [];
    for (const t of this.tabs) {
      t.addEventListener("click", () => this.show(t.id));
      t.addEventListener("keydown", (ev) => {
        const i = this.tabs.indexOf(t);
        let j = null;
        if (ev.key === "ArrowRight") j = (i + 1) % this.tabs.length;
        else if (ev.key === "ArrowLeft") j = (i - 1 + this.tabs.length) % this.tabs.length;
        else if (ev.key === "Home") j = 0;
        else if (ev.key === "End") j = this.tabs.length - 1;
        if (j !== null) { ev.preventDefault(); this.show(this.tabs[j].id); this.tabs[j].focus(); }
      });
    }
  }
  show(tabId) {
    for (const t of this.tabs) {
      const on = t.id === tabId;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    for (const fn of this.listeners) fn(tabId);
  }
  get current() { const t = this.tabs.find((x) => x.getAttribute("aria-selected") === "true"); return t && t.id; }
  onChange(fn) { this.listeners.push(fn); }
}

// ------------------------------------------------------------------------------ Gremlin console
// Node-like objects anywhere in a result (G, SubGraph, V(), Out()...), for highlighting.
export function collectNodeIds(data, store, out = new Set(), depth = 0) {
  if (depth > 6 || data === null || typeof data !== "object") return out;
  if (Array.isArray(data)) {
    for (const x of data) collectNodeIds(x, store, out, depth + 1);
    return out;
  }
  if (typeof data.ID === "string" && data.Metadata && data.Parent === undefined && store.nodes.has(data.ID)) {
    out.add(data.ID);
    return out;
  }
  if (Array.isArray(data.Nodes)) collectNodeIds(data.Nodes, store, out, depth + 1);
  return out;
}

export class QueryConsole {
  constructor(store, renderer) {
    this.store = store;
    this.renderer = renderer;
    this.form = $("query-form");
    this.input = $("query-input");
    this.result = $("query-result");
    this.error = $("query-error");
    this.meta = $("query-meta");
    this.highlight = $("query-highlight");
    this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.run(); });
    this.input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); this.run(); }
    });
    $("query-clear-highlight").addEventListener("click", () => this.renderer.highlight([]));
    this.highlight.addEventListener("change", () => {
      if (!this.highlight.checked) this.renderer.highlight([]);
      else if (this.lastData !== undefined) this._highlight(this.lastData);
    });
  }

  setQuery(q) { this.input.value = q; }

  async run() {
    const q = this.input.value.trim();
    showError(this.error, "");
    this.result.textContent = "";
    this.meta.textContent = "running…";
    this.lastData = undefined;
    const t0 = performance.now();
    try {
      const r = await gremlin(q);
      const ms = Math.round(performance.now() - t0);
      if (r.status === 204 || r.data === null) {
        this.meta.textContent = `empty result (${ms} ms)`;
        this.result.textContent = "";
        this.renderer.highlight([]);
        return;
      }
      this.lastData = r.data;
      const pretty = typeof r.data === "string" ? r.data : JSON.stringify(r.data, null, 2);
      const big = pretty.length > 2_000_000;
      this.result.textContent = big ? pretty.slice(0, 2_000_000) + "\n… (truncated)" : pretty;
      const n = Array.isArray(r.data) ? `${r.data.length} item${r.data.length === 1 ? "" : "s"}` : typeof r.data;
      const hl = this.highlight.checked ? this._highlight(r.data) : 0;
      this.meta.textContent = `${n}${hl ? `, ${hl} node${hl === 1 ? "" : "s"} highlighted` : ""} (${ms} ms)`;
    } catch (err) {
      this.meta.textContent = "";
      this.renderer.highlight([]);
      showError(this.error, err.message);
    }
  }

  _highlight(data) {
    return this.renderer.highlight(collectNodeIds(data, this.store));
  }
}

// ------------------------------------------------------------------------------ captures
export class CapturesPanel {
  constructor(store, onShow) {
    this.store = store;
    this.onShow = onShow;          // (gremlinQuery) => highlight the capture's nodes
    this.form = $("capture-form");
    this.error = $("capture-error");
    this.tbody = document.querySelector("#capture-table tbody");
    this.empty = $("capture-empty");
    this.count = $("capture-count");
    this.target = $("capture-target");
    this.query = $("capture-query");
    this.name = $("capture-name");
    this.bpf = $("capture-bpf");
    this.type = $("capture-type");
    this.description = $("capture-description");
    this.header = $("capture-header");
    this.raw = $("capture-raw");
    this.typeNote = $("capture-type-note");
    this.captures = {};
    this.offerTypes(null);
    this.loading = null;
    this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.create(); });
    $("capture-refresh").addEventListener("click", () => this.refresh());
  }

  // the host node of a node: its ownership root when that is a host, else the host of its Host
  hostOf(node) {
    let cur = node, seen = new Set();
    while (cur && !seen.has(cur.ID)) {
      seen.add(cur.ID);
      if (nodeType(cur) === "host") return cur;
      const o = this.store.ownerId(cur.ID);
      cur = o === undefined ? null : this.store.node(o);
    }
    for (const n of this.store.nodes.values()) if (nodeType(n) === "host" && n.Host === node.Host) return n;
    return null;
  }

  // Only the types this node can take and its agent can run (host node `CaptureTypes`).
  offerTypes(node) {
    const keep = this.type.value;
    let types = CAPTURE_TYPES, note = "";
    if (node) {
      types = captureTypesFor(nodeType(node));
      const host = this.hostOf(node);
      const agent = host && host.Metadata && Array.isArray(host.Metadata.CaptureTypes) ? host.Metadata.CaptureTypes : null;
      if (agent) types = types.filter((t) => agent.includes(t));
      note = !types.length ? `${nodeName(node)} (${nodeType(node) || "no type"}) cannot be captured` + (agent ? " by its agent" : "")
        : agent ? `types ${nodeName(host)}'s agent runs for a ${nodeType(node)}` : "its agent does not say which types it runs";
    }
    this.type.textContent = "";
    this.type.append(new Option("default for the node", ""));
    for (const t of types) this.type.append(new Option(t, t));
    this.type.value = types.includes(keep) ? keep : "";
    this.type.dataset.types = types.join(" ");
    this.typeNote.textContent = note;
  }

  // Prefill the form for a node: by TID when it has one (survives re-creation), else by ID.
  targetNode(node) {
    if (!node) {
      this.target.textContent = "No node selected: select a node in the graph, or type a Gremlin query.";
      this.offerTypes(null);
      return;
    }
    this.offerTypes(node);
    const m = node.Metadata || {};
    const tid = typeof m.TID === "string" && gremlinString(m.TID);
    this.query.value = tid ? `G.V().Has('TID', ${tid})` : `G.V('${node.ID}')`;
    this.target.textContent = `Target: ${nodeName(node)} (${nodeType(node) || "no type"}) on ${node.Host || "no host"}`;
    if (!this.name.value) this.name.value = `capture-${nodeName(node)}`.slice(0, 60);
  }

  note(text, isError = false) {
    const el = $("capture-note");
    el.textContent = text;
    el.className = isError ? "error" : "hint";
  }

  async refresh() {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      try {
        const r = await request("GET", "api/capture");
        this.captures = (r.data && typeof r.data === "object") ? r.data : {};
        this.render();
        if (this.error.dataset.source === "list") showError(this.error, "");
      } catch (err) {
        this.error.dataset.source = "list";
        showError(this.error, `Cannot list captures: ${err.message}`);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  async create() {
    const body = { GremlinQuery: this.query.value.trim() };
    if (this.name.value.trim()) body.Name = this.name.value.trim();
    if (this.bpf.value.trim()) body.BPFFilter = this.bpf.value.trim();
    if (this.type.value) body.Type = this.type.value;
    if (this.description.value.trim()) body.Description = this.description.value.trim();
    if (Number(this.header.value) > 0) body.HeaderSize = Number(this.header.value);
    if (Number(this.raw.value) > 0) body.RawPacketLimit = Number(this.raw.value);
    showError(this.error, "");
    try {
      await request("POST", "api/capture", { body });
      this.name.value = "";
      this.bpf.value = "";
      this.description.value = "";
      await this.refresh();
    } catch (err) {
      this.error.dataset.source = "create";
      showError(this.error, `Capture not created: ${err.message}`);
    }
  }

  async remove(id) {
    showError(this.error, "");
    try {
      await request("DELETE", `api/capture/${encodeURIComponent(id)}`);
    } catch (err) {
      this.error.dataset.source = "delete";
      showError(this.error, `Capture not deleted: ${err.message}`);
    }
    await this.refresh();
  }

  // on the nodes of the local graph: where this capture is active / in error, packets received
  stateOf(id) {
    const out = { active: 0, error: 0, packets: 0, dropped: 0, errors: [] };
    for (const node of this.store.nodes.values()) {
      const caps = node.Metadata && node.Metadata.Captures;
      if (!Array.isArray(caps)) continue;
      for (const c of caps) {
        if (!c || c.ID !== id) continue;
        if (c.State === "error") { out.error++; out.errors.push(`${nodeName(node)}: ${c.Error || "error"}`); } else out.active++;
        out.packets += c.PacketsReceived || 0;
        out.dropped += (c.PacketsDropped || 0) + (c.PacketsIfDropped || 0);
      }
    }
    return out;
  }

  activeOn(id) { return this.stateOf(id).active; }

  // called on graph updates while the tab is shown: state and counters follow the nodes
  updateCounters() {
    for (const tr of this.tbody.children) {
      const st = this.stateOf(tr.dataset.id);
      const [stCell, pkCell] = [tr.children[3], tr.children[4]];
      if (!stCell) continue;
      const text = this._stateText(st);
      if (stCell.textContent !== text) stCell.textContent = text;
      stCell.title = st.errors.join("\n");
      const pk = count(st.packets) + (st.dropped ? ` (${count(st.dropped)} dropped)` : "");
      if (pkCell.textContent !== pk) pkCell.textContent = pk;
    }
  }

  _stateText(st) {
    if (!st.active && !st.error) return "waiting";
    return [st.active ? `active on ${st.active}` : "", st.error ? `error on ${st.error}` : ""].filter(Boolean).join(", ");
  }

  render() {
    const list = Object.entries(this.captures).map(([id, c]) => ({ ...c, UUID: c.UUID || id }));
    list.sort((a, b) => String(a.Name || a.GremlinQuery).localeCompare(String(b.Name || b.GremlinQuery)));
    this.tbody.textContent = "";
    for (const c of list) {
      const tr = document.createElement("tr");
      tr.dataset.id = c.UUID;
      const td1 = document.createElement("td");
      const name = document.createElement("div");
      name.className = "name";
      name.textContent = c.Name || "(unnamed)";
      const q = document.createElement("code");
      q.textContent = c.GremlinQuery;
      td1.append(name, q);
      if (c.Description) { const d = document.createElement("div"); d.className = "hint"; d.textContent = c.Description; td1.append(d); }
      const td2 = document.createElement("td");
      const bpf = document.createElement("code"); bpf.textContent = c.BPFFilter || "—"; td2.append(bpf);
      const td3 = document.createElement("td"); td3.textContent = c.Type || "default";
      const st = this.stateOf(c.UUID);
      const td4 = document.createElement("td");
      td4.textContent = this._stateText(st);
      td4.title = st.errors.join("\n");
      const td4b = document.createElement("td");
      td4b.className = "num";
      td4b.textContent = count(st.packets);
      const td5 = document.createElement("td");
      const show = document.createElement("button");
      show.type = "button";
      show.textContent = "Show";
      show.title = "Highlight the nodes matched by the capture's query";
      show.setAttribute("aria-label", `Show the nodes of capture ${c.Name || c.GremlinQuery}`);
      show.addEventListener("click", () => this.onShow && this.onShow(c.GremlinQuery));
      td5.append(show, " ");
      const del = document.createElement("button");
      del.type = "button";
      del.className = "danger";
      del.textContent = "Delete";
      del.setAttribute("aria-label", `Delete capture ${c.Name || c.GremlinQuery}`);
      del.addEventListener("click", () => this.remove(c.UUID));
      td5.append(del);
      tr.append(td1, td2, td3, td4, td4b, td5);
      this.tbody.append(tr);
    }
    this.count.textContent = String(list.length);
    this.empty.hidden = list.length > 0;
  }
}

// ------------------------------------------------------------------------------ status bar
export class StatusBar {
  constructor() {
    this.analyzer = $("st-analyzer");
    this.agents = $("st-agents");
    this.timer = null;
  }

  async start(intervalMs = 5000) {
    try {
      const r = await request("GET", "api");
      const a = r.data || {};
      this.analyzer.textContent = `Analyzer ${a.Host || "?"} · ${a.Service || "analyzer"} ${a.Version || ""}`.trim();
      document.body.dataset.analyzerHost = a.Host || "";
    } catch (err) {
      this.analyzer.textContent = `Analyzer: ${err.message}`;
    }
    const poll = async () => {
      if (!document.hidden) await this.poll();
      this.timer = setTimeout(poll, intervalMs);
    };
    poll();
  }

  async poll() {
    try {
      const r = await request("GET", "api/status");
      const s = r.data || {};
      const agents = Object.entries(s.Agents || {});
      const up = agents.filter(([, a]) => a && a.IsConnected !== false);
      this.agents.textContent = `Agents: ${up.length} connected` + (agents.length > up.length ? `, ${agents.length - up.length} down` : "");
      this.agents.title = agents.map(([h, a]) => `${h} ${a.Addr || ""}${a.Port ? ":" + a.Port : ""} ${a.IsConnected === false ? "(down)" : ""}`).join("\n") || "no agent";
      this.agents.className = up.length ? "ok" : "";
      const peers = s.Peers ? Object.keys(s.Peers.Incomers || {}).length + Object.keys(s.Peers.Outgoers || {}).length : 0;
      if (peers) this.agents.textContent += ` · ${peers} peer analyzer${peers === 1 ? "" : "s"}`;
      document.body.dataset.agents = String(up.length);
    } catch (err) {
      this.agents.textContent = `Status unavailable: ${err.message}`;
      this.agents.className = "bad";
    }
  }
}

// ------------------------------------------------------------------------------ node search
export class NodeSearch {
  constructor(store, onPick) {
    this.store = store;
    this.onPick = onPick;
    this.input = $("node-search");
    this.results = $("search-results");
    this.timer = null;
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.search(), 120);
    });
    $("search-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const first = this.results.querySelector("button");
      if (first) first.click();
    });
  }

  search() {
    const q = this.input.value.trim().toLowerCase();
    this.results.textContent = "";
    this.results.dataset.query = q;
    if (!q) { this.results.hidden = true; return; }
    const hits = [];
    let total = 0;
    for (const n of this.store.nodes.values()) {
      const m = n.Metadata || {};
      const hay = [m.Name, m.Type, n.ID, m.MAC, ...(Array.isArray(m.IPV4) ? m.IPV4 : [])];
      if (hay.some((v) => typeof v === "string" && v.toLowerCase().includes(q))) {
        total++;
        if (hits.length < 50) hits.push(n);
      }
    }
    hits.sort((a, b) => nodeName(a).localeCompare(nodeName(b)));
    for (const n of hits) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      const name = document.createElement("span"); name.textContent = nodeName(n);
      const type = document.createElement("span"); type.className = "type"; type.textContent = nodeType(n);
      b.append(name, type);
      b.addEventListener("click", () => this.onPick(n.ID));
      li.append(b);
      this.results.append(li);
    }
    if (total > hits.length) {
      const li = document.createElement("li"); li.className = "more";
      li.textContent = `${total - hits.length} more: refine the search`;
      this.results.append(li);
    }
    if (!total) {
      const li = document.createElement("li"); li.className = "more"; li.textContent = "no match";
      this.results.append(li);
    }
    this.results.hidden = false;
  }
}
