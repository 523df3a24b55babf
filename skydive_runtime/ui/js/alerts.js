// Alerts tab: list / create (Gremlin expression, trigger, action) / delete, and the live feed
// of fired alerts (`Alert` messages on /ws/subscriber) with their time and matching nodes.

import { ResourceList, h, showError } from "./resources.js";
import { nodeName } from "./style.js";

const $ = (id) => document.getElementById(id);
const MAX_FEED = 200;

export class AlertsPanel {
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;            // highlight(ids)
    this.error = $("alert-error");
    this.list = new ResourceList({
      kind: "alert", title: "Alert", tbody: document.querySelector("#alert-table tbody"),
      countEl: $("alert-count"), errorEl: this.error,
      row: (a) => [h("div", null, h("div", { class: "name" }, a.Name || "(unnamed)"), h("code", null, a.Expression || "")),
        a.Trigger || "graph", a.Action || "—"],
    });
    this.feed = $("alert-feed");
    this.fired = 0;
    $("alert-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.create(); });
    $("alert-refresh").addEventListener("click", () => this.list.refresh());
    $("alert-feed-clear").addEventListener("click", () => { this.feed.textContent = ""; this.fired = 0; $("alert-feed-count").textContent = "0"; });
  }

  refresh() { return this.list.refresh(); }

  async create() {
    const body = {};
    for (const [k, id] of [["Name", "alert-name"], ["Expression", "alert-expression"], ["Trigger", "alert-trigger"],
      ["Action", "alert-action"], ["Description", "alert-description"]]) {
      const v = $(id).value.trim();
      if (v) body[k] = v;
    }
    if (await this.list.create(body)) for (const id of ["alert-name", "alert-expression", "alert-trigger", "alert-action", "alert-description"]) $(id).value = "";
  }

  // an `Alert` notification: {UUID, Timestamp, ReasonData}
  fire(obj) {
    if (!obj || typeof obj !== "object") return;
    this.fired++;
    $("alert-feed-count").textContent = String(this.fired);
    const alert = this.list.items[obj.UUID];
    const title = h("strong", null, alert ? alert.Name || alert.Expression : obj.UUID || "alert");
    const ids = [];
    const walk = (x, d) => {
      if (d > 4 || !x || typeof x !== "object") return;
      if (Array.isArray(x)) { x.forEach((y) => walk(y, d + 1)); return; }
      if (typeof x.ID === "string" && this.store.nodes.has(x.ID)) ids.push(x.ID);
      else if (Array.isArray(x.Nodes)) walk(x.Nodes, d + 1);
    };
    walk(obj.ReasonData, 0);
    const when = obj.Timestamp ? new Date(obj.Timestamp) : new Date();
    const names = ids.slice(0, 8).map((id) => nodeName(this.store.node(id))).join(", ") + (ids.length > 8 ? ` +${ids.length - 8}` : "");
    const reason = ids.length ? names : JSON.stringify(obj.ReasonData).slice(0, 200);
    const li = h("li", { "data-alert": obj.UUID || "" },
      h("time", { datetime: when.toISOString() }, when.toLocaleTimeString()), " ",
      title, " ",
      ids.length ? h("button", { type: "button", class: "linklike", title: "Highlight the matching nodes",
        onclick: () => this.actions.highlight(ids) }, reason) : h("span", { class: "hint" }, reason));
    this.feed.prepend(li);
    while (this.feed.children.length > MAX_FEED) this.feed.lastElementChild.remove();
    if (!alert) {            // fired at its registration, before the list knew it
      this.list.refresh().then(() => {
        const a = this.list.items[obj.UUID];
        if (a) title.textContent = a.Name || a.Expression;
      });
    }
  }

  showError(msg) { showError(this.error, msg); }
}
