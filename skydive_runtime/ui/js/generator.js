// Generator tab: packet injection between two nodes or queries (POST /api/injectpacket), with
// its progress (the source node's `PacketInjections[].PacketCount`, live) and deletion.

import { ResourceList, h } from "./resources.js";

const $ = (id) => document.getElementById(id);

export class GeneratorPanel {
  constructor(store, selectedQuery) {
    this.store = store;
    this.selectedQuery = selectedQuery;
    this.list = new ResourceList({
      kind: "injectpacket", title: "Injection", tbody: document.querySelector("#gen-table tbody"),
      countEl: $("gen-count-badge"), errorEl: $("gen-error"),
      row: (i) => [h("div", null, h("code", null, i.Src), " → ", h("code", null, i.Dst || i.DstIP || "")),
        `${i.Type} ×${i.Count}`, h("span", { class: "progress", "data-id": i.UUID }, this.progressText(i))],
    });
    $("gen-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.start(); });
    $("gen-refresh").addEventListener("click", () => this.list.refresh());
    for (const side of ["src", "dst"]) {
      $(`gen-${side}-pick`).addEventListener("click", () => { const q = this.selectedQuery(); if (q) $(`gen-${side}`).value = q; });
    }
  }

  refresh() { return this.list.refresh(); }

  // packets sent so far, from the source nodes' PacketInjections entries
  sent(id) {
    let n = 0, active = false;
    for (const node of this.store.nodes.values()) {
      const inj = node.Metadata && node.Metadata.PacketInjections;
      if (!Array.isArray(inj)) continue;
      for (const e of inj) if (e && e.ID === id) { n += e.PacketCount || 0; active = active || e.State === "active"; }
    }
    return { n, active };
  }

  progressText(i) {
    const { n, active } = this.sent(i.UUID);
    const total = (i.Count || 1) * 1;
    if (active) return `sending: ${Math.min(n, total)} / ${total}`;
    return n ? `${n} / ${total} sent` : "done or waiting";
  }

  // called on graph updates: refresh the progress cells
  update() {
    for (const el of document.querySelectorAll("#gen-table .progress")) {
      const i = this.list.items[el.dataset.id];
      if (i) el.textContent = this.progressText(i);
    }
  }

  async start() {
    const num = (id) => { const v = $(id).value.trim(); return v === "" ? 0 : Number(v); };
    const body = {
      Src: $("gen-src").value.trim(), Dst: $("gen-dst").value.trim(), Type: $("gen-type").value,
      Count: num("gen-count"), Interval: num("gen-interval"), TTL: num("gen-ttl"), ICMPID: num("gen-id"),
      SrcPort: num("gen-sport"), DstPort: num("gen-dport"), Payload: $("gen-payload").value,
    };
    const dstip = $("gen-dstip").value.trim();
    if (dstip) body.DstIP = dstip;
    await this.list.create(body);
  }
}
