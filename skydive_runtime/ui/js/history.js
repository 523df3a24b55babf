// Time bar: the `At` slider shows the graph as it was (G.At(<ms>) on the analyzer's history;
// live updates are held meanwhile), Live goes back to the live graph.

import { gremlin } from "./api.js";

const $ = (id) => document.getElementById(id);

function graphOf(data) {
  const g = Array.isArray(data) ? data[0] : data;
  return g && typeof g === "object" && Array.isArray(g.Nodes) ? g : null;
}

export class TimeBar {
  // hooks: showPast(graph, atMs) -> void, goLive() -> void
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
}
