// Time bar: the `At` slider shows the graph as it was (G.At(<ms>) on the analyzer's history;
// live updates are held meanwhile), Live goes back to the live graph. "Changes since" asks the
// analyzer's topology diff (POST /api/topology/diff) and marks the added and changed nodes; the
// removed ones are listed (they are no longer in the graph).

import { gremlin, request } from "./api.js";

const $ = (id) => document.getElementById(id);

function graphOf(data) {
  const g = Array.isArray(data) ? data[0] : data;
  return g && typeof g === "object" && Array.isArray(g.Nodes) ? g : null;
}

export class TimeBar {
  // hooks: showPast(graph, atMs) -> void, goLive() -> void, markDiff(added, changed, removed) -> void
  constructor(hooks) {
    this.hooks = hooks;
    this.slider = $("time-slider");
    this.label = $("time-label");
    this.note = $("time-note");
    this.liveBtn = $("time-live");
    this.at = null;                    // ms shown, null = live
    this.slider.addEventListener("input", () => { this.label.textContent = this._text(Number(this.slider.value)); });
    this.slider.addEventListener("change", () => this.go(Number(this.slider.value)));
    this.liveBtn.addEventListener("click", () => { this.slider.value = "0"; this.go(0); });
    this.diffSel = $("time-diff");
    this.diffSel.addEventListener("change", () => this.diff(Number(this.diffSel.value)));
    this.lastDiff = null;
  }

  _text(offsetS) {
    if (!offsetS) return "now";
    const t = new Date(Date.now() + offsetS * 1000);
    const m = Math.round(-offsetS / 60);
    return `${t.toLocaleTimeString()} (${m ? `${m} min` : `${-offsetS} s`} ago)`;
  }

  get live() { return this.at === null; }

  async go(offsetS) {
    this.note.textContent = "";
    if (!offsetS) {
      this.at = null;
      this.liveBtn.setAttribute("aria-pressed", "true");
      this.label.textContent = "now";
      document.body.dataset.at = "";
      this.hooks.goLive();
      return;
    }
    this.label.textContent = this._text(offsetS);
    return this.goAt(Date.now() + offsetS * 1000);
  }

  // the graph at a time (ms since the epoch)
  async goAt(at) {
    this.note.className = "hint";
    try {
      const r = await gremlin(`G.At(${Math.round(at)})`);
      const g = graphOf(r.data);
      if (!g) throw new Error("the analyzer returned no graph");
      this.at = at;
      this.liveBtn.setAttribute("aria-pressed", "false");
      document.body.dataset.at = String(Math.round(at));
      this.hooks.showPast(g, at);
      this.note.textContent = `graph as it was: ${g.Nodes.length} nodes (live updates held)`;
    } catch (err) {
      this.note.textContent = `history: ${err.message}`;
      this.note.className = "error-text";
    }
  }

  // what changed in the last `seconds` (0: clear the marks)
  diff(seconds) {
    this.note.className = "hint";
    if (!seconds) {
      this.lastDiff = null;
      this.hooks.markDiff([], [], []);
      this.note.textContent = "";
      this._removed([]);
      delete document.body.dataset.diff;
      return null;
    }
    return this.diffFrom(`-${seconds}s`, seconds >= 60 ? `${seconds / 60} min` : `${seconds} s`);
  }

  // from: a time the analyzer parses (ms, RFC3339, "-5m"...); label: how the note names it
  async diffFrom(from, label = String(from)) {
    try {
      const r = await request("POST", "api/topology/diff", { body: { From: from } });
      const d = r.data || {};
      const nodes = d.Nodes || {};
      const added = (nodes.Added || []).map((n) => n.ID);
      const changed = (nodes.Changed || []).map((n) => n.ID);
      const removed = nodes.Removed || [];
      this.lastDiff = d;
      this.hooks.markDiff(added, changed, removed);
      this.note.textContent = `since ${label}: ${added.length} added, ${changed.length} changed, ${removed.length} removed`;
      this._removed(removed);
      document.body.dataset.diff = `${added.length} ${changed.length} ${removed.length}`;
      return d;
    } catch (err) {
      this.note.textContent = `changes: ${err.message}`;
      this.note.className = "error-text";
      return null;
    }
  }

  // the removed nodes are no longer in the graph: listed by name (and type, host)
  _removed(nodes) {
    const box = $("time-removed");
    const ul = box.querySelector("ul");
    ul.textContent = "";
    box.hidden = !nodes.length;
    box.querySelector("summary").textContent = `${nodes.length} removed`;
    for (const n of nodes) {
      const m = n.Metadata || {};
      const li = document.createElement("li");
      li.dataset.id = n.ID;
      li.textContent = `${m.Name || n.ID} (${m.Type || "no type"}${n.Host ? ", " + n.Host : ""})`;
      ul.append(li);
    }
  }
}
