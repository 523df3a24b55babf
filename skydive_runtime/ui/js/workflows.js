// Workflows tab: the analyzer's workflows (GET /api/workflow) with their parameters (node
// parameters get a picker filled from the selected node), Call (POST /api/workflow/<id>/call
// {"Params": [...]}), the result as text and, when it holds flows, as a table.

import { request } from "./api.js";
import { count, rttMs } from "./format.js";
import { h, showError } from "./resources.js";

const $ = (id) => document.getElementById(id);

function flowsIn(x, depth = 0) {
  if (depth > 3 || !x || typeof x !== "object") return null;
  if (Array.isArray(x)) return x.length && x.every((f) => f && typeof f === "object" && f.Metric && f.UUID) ? x : null;
  for (const k of ["Flows", "flows"]) if (Array.isArray(x[k])) return flowsIn(x[k], depth + 1);
  return null;
}

function addr(f, side) {
  const n = f.Network || f.Link || {};
  const t = f.Transport;
  return `${n[side] || ""}${t && t[side] ? ":" + t[side] : ""}`;
}

export class WorkflowsPanel {
  constructor(selectedNode) {
    this.selectedNode = selectedNode;          // () => node or null
    this.select = $("wf-select");
    this.params = $("wf-params");
    this.error = $("wf-error");
    this.result = $("wf-result");
    this.tableWrap = $("wf-table-wrap");
    this.meta = $("wf-meta");
    this.workflows = {};
    this.select.addEventListener("change", () => this.renderParams());
    $("wf-refresh").addEventListener("click", () => this.refresh());
    $("wf-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.call(); });
  }

  async refresh() {
    try {
      const r = await request("GET", "api/workflow");
      this.workflows = r.data && typeof r.data === "object" ? r.data : {};
      showError(this.error, "");
    } catch (err) {
      showError(this.error, `Cannot list workflows: ${err.message}`);
      return;
    }
    const cur = this.select.value;
    this.select.textContent = "";
    const list = Object.entries(this.workflows).map(([id, w]) => ({ ...w, UUID: w.UUID || id }));
    list.sort((a, b) => String(a.Name).localeCompare(String(b.Name)));
    for (const w of list) this.select.append(h("option", { value: w.UUID }, w.Title ? `${w.Name} — ${w.Title}` : w.Name));
    if (cur && this.workflows[cur]) this.select.value = cur;
    this.renderParams();
  }

  current() { return this.workflows[this.select.value]; }

  renderParams() {
    const w = this.current();
    this.params.textContent = "";
    $("wf-abstract").textContent = w ? w.Abstract || w.Description || "" : "No workflow.";
    if (!w) return;
    (w.Parameters || []).forEach((p, i) => {
      const id = `wf-param-${i}`;
      const label = h("label", { for: id }, `${p.Name}${p.Description ? ` — ${p.Description}` : ""}`);
      let input;
      if (p.Type === "boolean") {
        input = h("input", { id, type: "checkbox", "data-type": p.Type });
        input.checked = p.Default === true || p.Default === "true";
        this.params.append(h("div", { class: "row" }, input, label));
        return;
      }
      if (p.Type === "choice") {
        input = h("select", { id, "data-type": p.Type });
        for (const v of p.Values || []) input.append(h("option", { value: v.Value }, v.Description || v.Value));
        if (p.Default !== undefined) input.value = p.Default;
      } else {
        input = h("input", { id, type: p.Type === "integer" ? "number" : "text", "data-type": p.Type || "string", spellcheck: "false" });
        if (p.Default !== undefined && p.Default !== null) input.value = String(p.Default);
      }
      this.params.append(label);
      if (p.Type === "node") {
        input.placeholder = "node TID (pick it in the graph)";
        const pick = h("button", { type: "button", id: `${id}-pick`, onclick: () => {
          const n = this.selectedNode();
          if (n) input.value = (n.Metadata && n.Metadata.TID) || n.ID;
        } }, "Selected node");
        this.params.append(h("div", { class: "pick" }, input, pick));
      } else this.params.append(input);
    });
  }

  async call() {
    const w = this.current();
    if (!w) return;
    const params = [...this.params.querySelectorAll("[data-type]")].map((el) => {
      if (el.dataset.type === "boolean") return el.checked;
      if (el.dataset.type === "integer") return Number(el.value);
      return el.value;
    });
    showError(this.error, "");
    this.result.textContent = "";
    this.tableWrap.hidden = true;
    this.meta.textContent = "running…";
    const t0 = performance.now();
    try {
      const r = await request("POST", `api/workflow/${encodeURIComponent(w.UUID)}/call`, { body: { Params: params } });
      this.meta.textContent = `done (${Math.round(performance.now() - t0)} ms)`;
      this.result.textContent = typeof r.data === "string" ? r.data : JSON.stringify(r.data, null, 2);
      const flows = flowsIn(r.data);
      if (flows) this._flowTable(flows);
    } catch (err) {
      this.meta.textContent = "";
      showError(this.error, `Workflow failed: ${err.message}`);
    }
  }

  _flowTable(flows) {
    const t = h("table", { class: "res flows", id: "wf-flows" },
      h("thead", null, h("tr", null, ...["App.", "A", "B", "AB Pkts", "BA Pkts", "AB Bytes", "BA Bytes", "RTT ms"].map((c) => h("th", { scope: "col" }, c)))));
    const tb = h("tbody");
    for (const f of flows) {
      const m = f.Metric || {};
      tb.append(h("tr", null, h("td", null, f.Application || ""), h("td", null, addr(f, "A")), h("td", null, addr(f, "B")),
        h("td", { class: "num" }, count(m.ABPackets || 0)), h("td", { class: "num" }, count(m.BAPackets || 0)),
        h("td", { class: "num" }, count(m.ABBytes || 0)), h("td", { class: "num" }, count(m.BABytes || 0)), h("td", { class: "num" }, rttMs(m.RTT))));
    }
    t.append(tb);
    this.tableWrap.textContent = "";
    this.tableWrap.append(t);
    this.tableWrap.hidden = false;
  }
}
