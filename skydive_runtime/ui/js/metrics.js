// Interface metrics as small charts: the agent's cumulative counters (Metadata.Metric:
// RxPackets, TxPackets, RxBytes, TxBytes, Last) are sampled on each node update and turned
// into per-second rates between samples.

import { rate } from "./format.js";

const SVGNS = "http://www.w3.org/2000/svg";
const MAX_SAMPLES = 120;
const SERIES = [["RxPackets", "TxPackets", "packets"], ["RxBytes", "TxBytes", "B"]];

export class MetricsRecorder {
  constructor(store) {
    this.store = store;
    this.samples = new Map();          // node id -> [{t, RxPackets, ...}]
  }

  record(ids) {
    for (const id of ids) {
      const n = this.store.node(id);
      const m = n && n.Metadata && n.Metadata.Metric;
      if (!m || typeof m !== "object") continue;
      const t = m.Last || n.UpdatedAt || Date.now();
      let list = this.samples.get(id);
      if (!list) this.samples.set(id, list = []);
      const last = list[list.length - 1];
      if (last && last.t >= t) continue;
      list.push({ t, RxPackets: m.RxPackets || 0, TxPackets: m.TxPackets || 0, RxBytes: m.RxBytes || 0, TxBytes: m.TxBytes || 0 });
      if (list.length > MAX_SAMPLES) list.shift();
    }
  }

  forget(ids) { for (const id of ids) this.samples.delete(id); }

  // [{t, RxPackets: per s, ...}] between consecutive samples
  rates(id) {
    const list = this.samples.get(id) || [];
    const out = [];
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1], b = list[i], dt = (b.t - a.t) / 1000;
      if (dt <= 0) continue;
      const r = { t: b.t };
      for (const k of ["RxPackets", "TxPackets", "RxBytes", "TxBytes"]) r[k] = Math.max(0, (b[k] - a[k]) / dt);
      out.push(r);
    }
    return out;
  }
}

function line(points, w, hgt, max, cls) {
  const p = document.createElementNS(SVGNS, "polyline");
  const n = points.length;
  p.setAttribute("points", points.map((v, i) => `${(n === 1 ? w : (i / (n - 1)) * w).toFixed(1)},${(hgt - 2 - (v / max) * (hgt - 6)).toFixed(1)}`).join(" "));
  p.setAttribute("class", cls);
  return p;
}

// A <div class="metrics"> with one chart per series pair, or a hint when there is no rate yet.
export function metricsCharts(recorder, id) {
  const div = document.createElement("div");
  div.className = "metrics";
  div.id = "metrics-charts";
  const rates = recorder.rates(id);
  if (!rates.length) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = recorder.samples.has(id) ? "Waiting for a second metrics update to show rates…" : "No interface metrics for this node.";
    div.append(p);
    return div;
  }
  for (const [rx, tx, unit] of SERIES) {
    const w = 300, hgt = 54;
    const max = Math.max(1, ...rates.map((r) => Math.max(r[rx], r[tx])));
    const svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
    svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    const last = rates[rates.length - 1];
    const label = `${unit === "B" ? "bytes" : "packets"}: rx ${rate(last[rx], unit)}, tx ${rate(last[tx], unit)} (max ${rate(max, unit)})`;
    svg.setAttribute("aria-label", label);
    svg.dataset.series = unit;
    svg.append(line(rates.map((r) => r[rx]), w, hgt, max, "rx"), line(rates.map((r) => r[tx]), w, hgt, max, "tx"));
    const cap = document.createElement("div");
    cap.className = "chart-caption";
    cap.textContent = label;
    div.append(cap, svg);
  }
  return div;
}
