// Topology rules tab: node rules (create a node, e.g. a ToR switch; update matching nodes) and
// edge rules (link two nodes), list / create / delete.

import { ResourceList, h, showError, parseMetadata } from "./resources.js";

const $ = (id) => document.getElementById(id);

function metaText(m) {
  return Object.entries(m || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
}

export class RulesPanel {
  constructor(selectedQuery) {
    this.selectedQuery = selectedQuery;      // () => Gremlin query of the selected node, or ""
    this.error = $("rules-error");
    this.nodes = new ResourceList({
      kind: "noderule", title: "Node rule", tbody: document.querySelector("#noderule-table tbody"),
      countEl: $("noderule-count"), errorEl: this.error,
      row: (r) => [r.Name || "(unnamed)", r.Action, h("div", null, h("code", null, metaText(r.Metadata)),
        r.Query ? h("div", null, h("code", null, r.Query)) : null)],
    });
    this.edges = new ResourceList({
      kind: "edgerule", title: "Edge rule", tbody: document.querySelector("#edgerule-table tbody"),
      countEl: $("edgerule-count"), errorEl: this.error,
      row: (r) => [r.Name || "(unnamed)", h("div", null, h("code", null, r.Src), " → ", h("code", null, r.Dst)),
        (r.Metadata || {}).RelationType || ""],
    });
    $("noderule-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.createNodeRule(); });
    $("edgerule-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.createEdgeRule(); });
    $("rules-refresh").addEventListener("click", () => this.refresh());
    for (const side of ["src", "dst"]) {
      $(`edgerule-${side}-pick`).addEventListener("click", () => { const q = this.selectedQuery(); if (q) $(`edgerule-${side}`).value = q; });
    }
  }

  refresh() { return Promise.all([this.nodes.refresh(), this.edges.refresh()]); }

  async createNodeRule() {
    let metadata;
    try { metadata = parseMetadata($("noderule-metadata").value); } catch (err) { showError(this.error, err.message); return; }
    const body = { Name: $("noderule-name").value.trim(), Action: $("noderule-action").value, Metadata: metadata };
    const q = $("noderule-query").value.trim();
    if (q) body.Query = q;
    if (await this.nodes.create(body)) { $("noderule-name").value = ""; $("noderule-metadata").value = ""; $("noderule-query").value = ""; }
  }

  async createEdgeRule() {
    let metadata;
    try { metadata = parseMetadata($("edgerule-metadata").value); } catch (err) { showError(this.error, err.message); return; }
    metadata.RelationType = $("edgerule-relation").value;
    const body = { Name: $("edgerule-name").value.trim(), Src: $("edgerule-src").value.trim(), Dst: $("edgerule-dst").value.trim(), Metadata: metadata };
    if (await this.edges.create(body)) for (const id of ["edgerule-name", "edgerule-src", "edgerule-dst", "edgerule-metadata"]) $(id).value = "";
  }
}
