// Skydive web UI entry point: wires the subscriber, the graph store, the layout, the SVG
// renderer and the panels. All graph work happens in one requestAnimationFrame callback:
// queued websocket messages are applied in a batch, then the layout runs for a time budget,
// then only the moved/changed SVG elements are touched.

import { GraphStore } from "./graphstore.js";
import { Layout } from "./layout.js";
import { Renderer } from "./renderer.js";
import { Subscriber } from "./subscriber.js";
import { DetailsPanel } from "./details.js";
import { Tabs, QueryConsole, CapturesPanel, StatusBar, NodeSearch, collectNodeIds } from "./panels.js";
import { login, setLoginHandler, gremlin, gremlinString } from "./api.js";
import { FlowsPanel } from "./flows.js";
import { AlertsPanel } from "./alerts.js";
import { RulesPanel } from "./rules.js";
import { GeneratorPanel } from "./generator.js";
import { WorkflowsPanel } from "./workflows.js";
import { TimeBar } from "./history.js";
import { MetricsRecorder } from "./metrics.js";
import { LEGEND } from "./style.js";

const $ = (id) => document.getElementById(id);
const LAYOUT_BUDGET_MS = 12;
const MAX_QUEUE = 200000;
          // beyond this (hidden tab...), drop the backlog and re-sync

const store = new GraphStore();
const layout = new Layout(store);
const params = new URLSearchParams(location.search);
// ?expand=all shows every node at once (no hosts-first folding)
layout.hostsFirst = params.get("expand") !== "all";
layout.bundling = layout.hostsFirst;
layout.loadSaved();
const metrics = new MetricsRecorder(store);
let pastView = false;               // showing the graph as it was (time bar): live events are held

for (const [cls, label] of LEGEND) {
  const li = document.createElement("li");
  const sw = document.createElement("span");
  sw.className = `swatch ${cls}`;
  li.dataset.legend = cls;
  li.append(sw, label);
  $("legend").append(li);
}

function selectedQuery() {
  const id = body.dataset.selected;
  const n = id && store.node(id);
  if (!n) return "";
  const tid = n.Metadata && typeof n.Metadata.TID === "string" && gremlinString(n.Metadata.TID);
  return tid ? `G.V().Has('TID', ${tid})` : `G.V('${n.ID}')`;
}

// Saving writes every position to localStorage (tens of ms at 5,000 nodes): at most every
// SAVE_EVERY_MS while the graph keeps changing; a page hide saves at once.
const SAVE_EVERY_MS = 3000;
let saveTimer = null;
let savedAt = 0;
function saveSoon() {
  clearTimeout(saveTimer);
  const wait = Math.max(300, savedAt + SAVE_EVERY_MS - Date.now());
  saveTimer = setTimeout(() => { if (!pastView) { layout.save(); savedAt = Date.now(); } }, wait);
}
window.addEventListener("pagehide", () => { if (!pastView) layout.save(); });
const svg = $("graph");
const body = document.body;

let frameRequested = false;
// timings read by benchmarks/ui_bench.py: first SyncReply drawn, work per frame (ms, last 5,000)
const perf = { firstApplied: 0, firstPainted: 0, frames: [] };
let syncs = 0;
let lastEventAt = 0;

const renderer = new Renderer(svg, store, layout, {
  onSelect: (sel) => {
    details.show(sel);
    if (sel && sel.kind === "node") captures.targetNode(store.node(sel.id));
    body.dataset.selected = sel ? sel.id : "";
  },
  onActivity: () => schedule(),
  onFold: () => { details.render(); saveSoon(); },
});

const details = new DetailsPanel($("details"), store, {
  center: (id) => renderer.centerOn(id),
  select: (sel) => {
    if (sel.kind === "node") renderer.reveal(sel.id);
    renderer.select(sel);
    if (sel.kind === "node") renderer.centerOn(sel.id);
  },
  fold: (id) => { renderer.toggleCollapse(id); details.render(); },
  isCollapsed: (id) => layout.collapsed.has(id),
  capture: (id) => {
    tabs.show("tab-captures");
    captures.targetNode(store.node(id));
    $("capture-bpf").focus();
  },
  query: (q) => { tabs.show("tab-query"); console_.setQuery(q); console_.run(); },
  unpin: (id) => { layout.unpin(id); schedule(); },
  flows: (id) => { flows.showFor(store.node(id)); tabs.show("tab-flows"); },
});
details.metrics = metrics;

const tabs = new Tabs(document.querySelector('[role="tablist"]'));
const console_ = new QueryConsole(store, renderer);
const captures = new CapturesPanel(store, async (query) => {
  try {
    const r = await gremlin(query);
    const n = renderer.highlight(collectNodeIds(r.data, store));
    const first = [...renderer.highlighted][0];
    if (first) renderer.fit(true, [...renderer.highlighted]);
    captures.note(n ? `${n} node${n === 1 ? "" : "s"} highlighted` : "no node of the graph matches this query");
  } catch (err) {
    captures.note(err.message, true);
  }
});
const status = new StatusBar();
const highlightAndShow = (ids, focus) => {
  for (const id of ids) renderer.reveal(id);
  const n = renderer.highlight(ids);
  if (focus) renderer.select({ kind: "node", id: focus });
  return n;
};
const flows = new FlowsPanel(store, {
  highlight: highlightAndShow,
  select: (id) => { renderer.reveal(id); renderer.select({ kind: "node", id }); renderer.centerOn(id); },
});
const alerts = new AlertsPanel(store, { highlight: highlightAndShow });
const rules = new RulesPanel(selectedQuery);
const generator = new GeneratorPanel(store, selectedQuery);
const workflows = new WorkflowsPanel(() => store.node(body.dataset.selected));
const timebar = new TimeBar({
  showPast: (g) => {
    pastView = true;
    store.reset(g.Nodes, g.Edges);
    body.dataset.history = "1";
    schedule();
  },
  markDiff: (added, changed) => {
    for (const id of [...added, ...changed]) if (store.nodes.has(id)) renderer.reveal(id);
    renderer.markDiff(added, changed);
  },
  goLive: () => {
    pastView = false;
    delete body.dataset.history;
    subscriber.queue.length = 0;
    subscriber.sync();
  },
});
new NodeSearch(store, (id) => { renderer.reveal(id); renderer.select({ kind: "node", id }); renderer.centerOn(id); });

let capturesTimer = null;
tabs.onChange((id) => {
  clearInterval(capturesTimer);
  if (id === "tab-captures") {
    captures.refresh();
    capturesTimer = setInterval(() => { if (!document.hidden) captures.refresh(); }, 5000);
  }
  flows.show(id === "tab-flows");
  if (id === "tab-alerts") alerts.refresh();
  if (id === "tab-rules") rules.refresh();
  if (id === "tab-generator") {
    generator.refresh();
    capturesTimer = setInterval(() => { if (!document.hidden) generator.refresh(); }, 3000);
  }
  if (id === "tab-workflows") workflows.refresh();
});

// ------------------------------------------------------------------ connection state
const connEl = $("conn-state");
let retryTicker = null;

function showConnState(state, detail) {
  body.dataset.wsState = state;
  connEl.dataset.state = state;
  clearInterval(retryTicker);
  const label = {
    connecting: subscriber.attempt > 0 ? `Reconnecting… (attempt ${subscriber.attempt + 1})` : "Connecting…",
    syncing: "Synchronising…",
    connected: "Live",
  }[state];
  if (label) {
    connEl.textContent = label;
    connEl.title = state === "connected" ? "Receiving live topology updates" : "";
    return;
  }
  const render = () => {
    const s = Math.max(0, Math.ceil((subscriber.retryAt - Date.now()) / 1000));
    connEl.textContent = `Disconnected — retrying in ${s} s`;
  };
  connEl.title = `${detail || "disconnected"} — click to reconnect now`;
  render();
  retryTicker = setInterval(render, 1000);
}
connEl.addEventListener("click", () => { if (subscriber.state === "disconnected") subscriber.reconnectNow(); });

// ------------------------------------------------------------------ filter
const filterForm = $("filter-form");
const filterInput = $("filter-input");
const filterError = $("filter-error");
const filterActive = $("filter-active");
const initialFilter = new URLSearchParams(location.search).get("filter") || "";
filterInput.value = initialFilter;

function showFilterError(msg, filter) {
  if (!msg) { filterError.hidden = true; filterError.textContent = ""; delete body.dataset.filterError; return; }
  let text = `Filter rejected by the analyzer: ${msg}`;
  const f = (filter || "").trim();
  if (f && !/\.\s*subgraph\s*\(\s*\)\s*$/i.test(f) && !/^g$/i.test(f)) {
    text += "\nA filter must be G or end with .SubGraph(), e.g. G.V().Has('Type', 'netns').SubGraph()";
  }
  text += `\nStill showing: ${subscriber.appliedFilter || "the whole topology"}`;
  filterError.textContent = text;
  filterError.hidden = false;
  body.dataset.filterError = msg;
}

function showAppliedFilter(f) {
  filterActive.hidden = !f;
  filterActive.title = f;
  body.dataset.filter = f;
  const url = new URL(location.href);
  if (f) url.searchParams.set("filter", f); else url.searchParams.delete("filter");
  history.replaceState(null, "", url);
}

filterForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  showFilterError("");
  const f = filterInput.value.trim();
  if (!subscriber.sync(f)) {
    subscriber.filter = f;   // applied by the SyncRequest sent on (re)connection
    filterError.textContent = "Not connected: the filter will be applied once the analyzer is reachable.";
    filterError.hidden = false;
  }
});
$("filter-clear").addEventListener("click", () => {
  filterInput.value = "";
  showFilterError("");
  subscriber.sync("");
});

// ------------------------------------------------------------------ subscriber
const subscriber = new Subscriber({
  filter: initialFilter,
  handlers: {
    onState: showConnState,
    onAlert: (obj) => alerts.fire(obj),
    onMessages: () => {
      if (pastView) return;
      if (subscriber.queue.length > MAX_QUEUE) {
        subscriber.queue.length = 0;
        subscriber.sync();
      }
      schedule();
    },
    onSyncReply: (msg, ok, error, filter) => {
      if (ok) {
        syncs++;
        showFilterError("");
        showAppliedFilter(filter);
      } else {
        showFilterError(error, filter);
      }
    },
  },
});

// ------------------------------------------------------------------ frame loop
function schedule() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}

// Writing thousands of positions makes the browser re-render the whole SVG. While the layout
// runs, positions are written every frame only if that rendering is cheap; otherwise at most
// one frame in three is spent rendering, the others run layout ticks only.
let drawStart = 0;          // when the last position write happened (0: none pending)
let renderCost = 0;         // measured: write + style + paint of the last draw, ms
let nextDrawAt = 0;
let nextApplyAt = 0;        // events are applied in batches no closer than this

function frame(now) {
  frameRequested = false;
  const work0 = performance.now();
  if (perf.firstApplied && !perf.firstPainted) perf.firstPainted = now;   // the frame after the first draw
  if (drawStart) {
    renderCost = now - drawStart;
    drawStart = 0;
    nextDrawAt = renderCost < 40 ? 0 : now + 2 * renderCost;
  }
  // Apply the queued events. When that was expensive (big graph, structural change), the
  // next batch waits a little so that events coalesce instead of costing a rebuild each.
  let structural = false;
  if (pastView) subscriber.queue.length = Math.min(subscriber.queue.length, MAX_QUEUE);
  if ((subscriber.queue.length && !pastView && now >= nextApplyAt) || !store.changes.empty) {
    const t0 = performance.now();
    if (!pastView) {
      const msgs = subscriber.drain();
      for (const m of msgs) store.apply(m);
      if (msgs.length) lastEventAt = Date.now();
    }
    const changes = store.takeChanges();
    if (!changes.empty) {
      layout.sync(changes);
      renderer.apply(changes);
      metrics.record(changes.updatedNodes);
      if (changes.removedNodes.size) metrics.forget(changes.removedNodes);
      details.changed(changes);
      updateCounters();
      structural = changes.structure;
      if (changes.reset && !perf.firstApplied) perf.firstApplied = -1;
      const tab = tabs.current;
      if (tab === "tab-captures") captures.updateCounters();
      else if (tab === "tab-generator") generator.update();
    }
    const cost = performance.now() - t0;
    nextApplyAt = cost > 8 ? now + Math.min(500, 3 * cost) : 0;
  }
  layout.step(LAYOUT_BUDGET_MS);
  const running = layout.running;
  if (structural || !running || performance.now() >= nextDrawAt) {
    const t = performance.now();
    if (renderer.draw()) drawStart = t;
  }
  if (perf.firstApplied === -1) { perf.firstApplied = performance.now(); schedule(); }
  perf.frames.push(performance.now() - work0);
  if (perf.frames.length > 5000) perf.frames.splice(0, 1000);
  const state = layout.frozen ? "frozen" : running ? "running" : "stable";
  if (!running && renderer.labelsDirty && !drawStart && performance.now() - renderer.viewChangedAt > 120) renderer.declutter();
  if (state === "stable" && body.dataset.layout === "running") saveSoon();
  body.dataset.layout = state;
  if (running || (subscriber.queue.length && !pastView) || drawStart || renderer.forceDraw || (!running && renderer.labelsDirty)) schedule();
}

let shownCounts = "";
function updateCounters() {
  const n = store.nodes.size, e = store.edges.size;
  const counts = `${n} node${n === 1 ? "" : "s"} · ${e} edge${e === 1 ? "" : "s"}`;
  if (counts !== shownCounts) {            // the <title> is in the SVG: a change costs it a layout
    shownCounts = counts;
    document.title = `Skydive · ${counts}`;
    $("st-counts").textContent = counts;
    $("graph-title").textContent = `Topology graph: ${counts}`;
    $("graph-empty").hidden = n > 0;
    body.dataset.nodes = String(n);
    body.dataset.edges = String(e);
  }
  body.dataset.syncs = String(syncs);
  body.dataset.events = String(store.events);
}

setInterval(() => {
  if (!lastEventAt) return;
  const s = Math.round((Date.now() - lastEventAt) / 1000);
  const n = store.events;
  $("st-events").textContent = `${n} update${n === 1 ? "" : "s"} · last ${s < 2 ? "just now" : s + " s ago"}`;
}, 1000);

// ------------------------------------------------------------------ toolbar
$("btn-fit").addEventListener("click", () => { renderer.userView = false; renderer.fit(false); });
$("btn-zoom-in").addEventListener("click", () => renderer.zoom(1.4));
$("btn-zoom-out").addEventListener("click", () => renderer.zoom(1 / 1.4));
const btnLayout = $("btn-layout");
btnLayout.addEventListener("click", () => {
  layout.frozen = !layout.frozen;
  btnLayout.setAttribute("aria-pressed", String(layout.frozen));
  btnLayout.textContent = layout.frozen ? "Resume layout" : "Freeze layout";
  if (!layout.frozen) { layout.movable = null; layout.reheat(0.2); }
  schedule();
});
$("btn-collapse").addEventListener("click", () => { renderer.foldAll("all"); saveSoon(); });
$("btn-expand").addEventListener("click", () => { renderer.foldAll(null); saveSoon(); });
$("btn-relayout").addEventListener("click", () => { layout.relayout(); renderer.userView = false; schedule(); });
$("chk-labels").addEventListener("change", (ev) => {
  svg.classList.toggle("no-labels", !ev.target.checked);
  renderer.labelsDirty = true;             // labels shown again: placed on the current picture
  schedule();
});
$("chk-ownership").addEventListener("change", (ev) => svg.classList.toggle("no-ownership", !ev.target.checked));
document.addEventListener("keydown", (ev) => {
  if (ev.key !== "Escape" || (ev.target.closest && ev.target.closest("input, textarea, select, dialog"))) return;
  renderer.select(null);
  renderer.highlight([]);
});
window.addEventListener("resize", () => { if (!renderer.userView) renderer.fit(false); });

// ------------------------------------------------------------------ login (auth backends)
const loginDialog = $("login-dialog");
setLoginHandler(() => new Promise((resolve) => {
  const form = $("login-form");
  const err = $("login-error");
  err.hidden = true;
  const submit = async (ev) => {
    ev.preventDefault();
    try {
      await login($("login-user").value, $("login-password").value);
      form.removeEventListener("submit", submit);
      loginDialog.close();
      subscriber.reconnectNow();
      resolve();
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    }
  };
  form.addEventListener("submit", submit);
  if (!loginDialog.open) loginDialog.showModal();
}));

// ------------------------------------------------------------------ start
updateCounters();
subscriber.start();
status.start();
window.skydive = { store, layout, renderer, subscriber, details, captures, console: console_, tabs, flows, alerts,
  rules, generator, workflows, timebar, metrics, perf };
