// Flows tab: a flow query (default G.Flows().Sort()), the guide's table (App., A, B, AB/BA
// packets and bytes, RTT in ms), Limit, Follow L2/L3, auto refresh (every 1 s by default),
// sort by column; a row click highlights the capture node and the path, and shows the flow.

import { gremlin, gremlinString } from "./api.js";
import { count, rttMs, isoTime } from "./format.js";
import { h, showError } from "./resources.js";
import { nodeName } from "./style.js";

const $ = (id) => document.getElementById(id);

function endpoint(f, side) {
  const net = f.Network, link = f.Link, tr = f.Transport;
  const addr = net ? net[side] : link ? link[side] : "";
  if (tr && tr[side] !== undefined && tr[side] !== 0) return net && net.Protocol === "IPV6" ? `[${addr}]:${tr[side]}` : `${addr}:${tr[side]}`;
  return addr === undefined ? "" : String(addr);
}

const COLUMNS = {
  app: (f) => f.Application || "",
  a: (f) => endpoint(f, "A"),
  b: (f) => endpoint(f, "B"),
  abp: (f) => (f.Metric || {}).ABPackets || 0,
  bap: (f) => (f.Metric || {}).BAPackets || 0,
  abb: (f) => (f.Metric || {}).ABBytes || 0,
  bab: (f) => (f.Metric || {}).BABytes || 0,
  rtt: (f) => (f.Metric || {}).RTT || 0,
};

function isFlow(x) { return x && typeof x === "object" && typeof x.UUID === "string" && ("Metric" in x || "LayersPath" in x); }

export class FlowsPanel {
  // actions: highlight(ids), select(nodeId), store
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;
    this.form = $("flows-form");
    this.query = $("flows-query");
    this.limit = $("flows-limit");
    this.follow = $("flows-follow");
    this.auto = $("flows-auto");
    this.period = $("flows-period");
    this.error = $("flows-error");
    this.meta = $("flows-meta");
    this.tbody = document.querySelector("#flows-table tbody");
    this.details = $("flow-details");
    this.flows = [];
    this.sortKey = null;
    this.sortDir = 1;
    this.selected = null;          // flow UUID
    this.visible = false;
    this.timer = null;
    this.running = false;
    this.refreshes = 0;
    this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.run(); });
    this.auto.addEventListener("change", () => this._schedule());
    this.period.addEventListener("change", () => this._schedule());
    for (const th of document.querySelectorAll("#flows-table th[data-key]")) {
      th.querySelector("button").addEventListener("click", () => this.sortBy(th.dataset.key));
    }
  }

  show(on) {
    this.visible = on;
    if (on) this.run(); else clearTimeout(this.timer);
  }

  // the flows of one node (from its details panel)
  showFor(node) {
    const tid = node.Metadata && typeof node.Metadata.TID === "string" && gremlinString(node.Metadata.TID);
    this.query.value = tid ? `G.V().Has('TID', ${tid}).Flows().Sort()` : `G.V('${node.ID}').Flows().Sort()`;
  }

  _schedule() {
    clearTimeout(this.timer);
    if (!this.visible || !this.auto.checked) return;
    this.timer = setTimeout(() => { if (!document.hidden) this.run(true); else this._schedule(); }, Number(this.period.value) || 1000);
  }

  async run(auto = false) {
    if (this.running) { this._schedule(); return; }
    this.running = true;
    let q = this.query.value.trim() || "G.Flows().Sort()";
    const limit = Number(this.limit.value);
    if (limit > 0) q += `.Limit(${limit})`;
    const t0 = performance.now();
    try {
      const r = await gremlin(q);
      const data = r.data === null ? [] : r.data;
      if (!Array.isArray(data) || !data.every(isFlow)) {
        throw new Error("the query does not return flows (end it with Flows(), Sort(), Has()…)");
      }
      this.flows = data;
      showError(this.error, "");
      this.refreshes++;
      this.render();
      const ms = Math.round(performance.now() - t0);
      this.meta.textContent = `${data.length} flow${data.length === 1 ? "" : "s"} · ${new Date().toLocaleTimeString()} (${ms} ms)` +
        (this.auto.checked ? ` · refreshing every ${Number(this.period.value) / 1000} s` : "");
      document.body.dataset.flowRefreshes = String(this.refreshes);
    } catch (err) {
      showError(this.error, err.message);
      if (!auto) { this.flows = []; this.render(); }
    } finally {
      this.running = false;
      this._schedule();
    }
  }

  sortBy(key) {
    if (this.sortKey === key) this.sortDir = -this.sortDir;
    else { this.sortKey = key; this.sortDir = key === "app" || key === "a" || key === "b" ? 1 : -1; }
    this.render();
  }

  _sorted() {
    if (!this.sortKey) return this.flows;
    const get = COLUMNS[this.sortKey], dir = this.sortDir;
    return [...this.flows].sort((x, y) => {
      const a = get(x), b = get(y);
      return (typeof a === "number" ? a - b : String(a).localeCompare(String(b), undefined, { numeric: true })) * dir;
    });
  }

  render() {
    for (const th of document.querySelectorAll("#flows-table th[data-key]")) {
      th.setAttribute("aria-sort", th.dataset.key === this.sortKey ? (this.sortDir > 0 ? "ascending" : "descending") : "none");
    }
    this.tbody.textContent = "";
    for (const f of this._sorted()) {
      const m = f.Metric || {};
      const tr = h("tr", { "data-uuid": f.UUID, tabindex: "0", class: f.UUID === this.selected ? "selected" : null,
        onclick: () => this.pick(f), onkeydown: (ev) => { if (ev.key === "Enter") this.pick(f); } },
        h("td", null, f.Application || ""), h("td", { class: "addr" }, endpoint(f, "A")), h("td", { class: "addr" }, endpoint(f, "B")),
        h("td", { class: "num" }, count(m.ABPackets || 0)), h("td", { class: "num" }, count(m.BAPackets || 0)),
        h("td", { class: "num" }, count(m.ABBytes || 0)), h("td", { class: "num" }, count(m.BABytes || 0)),
        h("td", { class: "num" }, rttMs(m.RTT)));
      this.tbody.append(tr);
    }
    const cur = this.selected && this.flows.find((f) => f.UUID === this.selected);
    if (cur) this._details(cur);
  }

  _nodeByTID(tid) {
    if (!tid) return null;
    for (const n of this.store.nodes.values()) if (n.Metadata && n.Metadata.TID === tid) return n;
    return null;
  }

  _nodesWithAddress(addr) {
    const out = [];
    if (!addr) return out;
    for (const n of this.store.nodes.values()) {
      const m = n.Metadata || {};
      const ips = [].concat(Array.isArray(m.IPV4) ? m.IPV4 : [], Array.isArray(m.IPV6) ? m.IPV6 : []);
      if (m.MAC === addr || ips.some((ip) => typeof ip === "string" && ip.split("/")[0] === addr)) out.push(n);
    }
    return out;
  }

  async pick(f) {
    this.selected = f.UUID;
    for (const tr of this.tbody.children) tr.classList.toggle("selected", tr.dataset.uuid === f.UUID);
    this._details(f);
    const ids = new Set();
    const capture = this._nodeByTID(f.NodeTID);
    if (capture) ids.add(capture.ID);
    // the conversation's other capture points (same TrackingID / L3TrackingID)
    const follow = this.follow.value;
    const key = follow === "L3" ? "L3TrackingID" : "TrackingID";
    if (follow && f[key] && gremlinString(f[key])) {
      try {
        const r = await gremlin(`G.Flows().Has('${key}', ${gremlinString(f[key])})`);
        for (const o of Array.isArray(r.data) ? r.data : []) { const n = this._nodeByTID(o.NodeTID); if (n) ids.add(n.ID); }
      } catch (err) { showError(this.error, `Follow ${follow}: ${err.message}`); }
    }
    // the path between the two ends (interfaces holding the flow's addresses)
    const net = f.Network || f.Link || {};
    const a = this._nodesWithAddress(net.A)[0], b = this._nodesWithAddress(net.B)[0];
    for (const n of [a, b]) if (n) ids.add(n.ID);
    const btid = b && b.Metadata && gremlinString(b.Metadata.TID || "");
    if (a && b && a.ID !== b.ID && btid && btid !== "''") {
      try {
        const r = await gremlin(`G.V('${a.ID}').ShortestPathTo(Metadata('TID', ${btid}))`);
        const walk = (x) => { if (Array.isArray(x)) x.forEach(walk); else if (x && typeof x.ID === "string" && this.store.nodes.has(x.ID)) ids.add(x.ID); };
        walk(r.data);
      } catch (err) { /* no path in this graph: the ends and capture node stay highlighted */ }
    }
    document.body.dataset.flowHighlight = [...ids].join(" ");
    this.actions.highlight([...ids], capture ? capture.ID : null);
  }

  _details(f) {
    const m = f.Metric || {};
    const capture = this._nodeByTID(f.NodeTID);
    const rows = [
      ["UUID", f.UUID], ["TrackingID", f.TrackingID], ["L3TrackingID", f.L3TrackingID], ["Layers", f.LayersPath],
      ["Application", f.Application],
      ["Capture node", capture ? h("button", { type: "button", class: "linklike", onclick: () => this.actions.select(capture.ID) }, nodeName(capture)) : f.NodeTID],
      ["Capture", f.CaptureID], ["Start", isoTime(f.Start)], ["Last", isoTime(f.Last)],
      ["Link", f.Link && `${f.Link.A} → ${f.Link.B}${f.Link.ID ? ` (VLAN ${f.Link.ID})` : ""}`],
      ["Network", f.Network && `${f.Network.Protocol} ${f.Network.A} → ${f.Network.B}${f.Network.ID ? ` (ID ${f.Network.ID})` : ""}`],
      ["Transport", f.Transport && `${f.Transport.Protocol} ${f.Transport.A} → ${f.Transport.B}`],
      ["ICMP", f.ICMP && `${f.ICMP.Type}${f.ICMP.ID ? ` id ${f.ICMP.ID}` : ""}`],
      ["AB / BA packets", `${count(m.ABPackets || 0)} / ${count(m.BAPackets || 0)}`],
      ["AB / BA bytes", `${count(m.ABBytes || 0)} / ${count(m.BABytes || 0)}`],
      ["RTT", m.RTT ? `${rttMs(m.RTT)} ms` : ""], ["Finish", f.FinishType],
    ];
    const t = h("table", { class: "kv", id: "flow-kv" });
    for (const [k, v] of rows) {
      if (v === undefined || v === null || v === "") continue;
      t.append(h("tr", { "data-key": k }, h("th", { scope: "row" }, k), h("td", null, v instanceof Node ? v : String(v))));
    }
    this.details.textContent = "";
    this.details.append(h("h2", null, "Flow"), t);
    if (f.TCPMetric) {
      const tt = h("table", { class: "kv", id: "flow-tcp" });
      for (const [k, v] of Object.entries(f.TCPMetric)) tt.append(h("tr", null, h("th", { scope: "row" }, k), h("td", null, /Start$/.test(k) && v ? isoTime(v) : count(v))));
      this.details.append(h("h2", null, "TCP metrics"), tt);
    }
  }
}
