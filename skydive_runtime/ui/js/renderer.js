// SVG rendering of the topology: one <g class="node" data-id> per node, one <path class="edge"
// data-id> per edge, one <rect class="group-box" data-group> per owner (host, netns, bridge...).
// Elements are created/updated/removed from the store's ChangeSet only; positions are written
// only for nodes that moved since the last frame.

import { OWNERSHIP, LAYER2, rel } from "./graphstore.js";
import { nodeType, nodeName, typeClass, iconFor, radiusFor, captureState, isDown, isOpenStack } from "./style.js";

const SVGNS = "http://www.w3.org/2000/svg";
const MIN_K = 0.03, MAX_K = 4;

function el(name, attrs) {
  const e = document.createElementNS(SVGNS, name);
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}

function truncate(s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; }

export class Renderer {
  constructor(svg, store, layout, handlers = {}) {
    this.svg = svg;
    this.store = store;
    this.layout = layout;
    this.handlers = handlers;              // onSelect(kind, id), onViewChange()
    this.viewport = svg.querySelector("#viewport");
    this.gGroups = svg.querySelector("#layer-groups");
    this.gEdges = svg.querySelector("#layer-edges");
    this.gNodes = svg.querySelector("#layer-nodes");
    this.nodeEls = new Map();              // id -> record
    this.edgeEls = new Map();              // id -> record
    this.groupEls = new Map();             // owner id -> rect
    this.proxyEls = new Map();             // "a|b" -> {line, a, b}: links through folded groups
    this.bundleEls = new Map();            // bundle id -> {g, label, lx, ly}: many similar leaves as one
    // elements are created when first shown: a hosts-first view of 5,000 nodes makes a few hundred
    this.pendingNodes = new Set();
    this.pendingEdges = new Set();
    this.order = [];                       // node ids, deepest ownership level first
    this.depths = new Map();
    this.view = { k: 1, tx: 0, ty: 0 };
    this.userView = false;                 // the user panned/zoomed: stop auto-fitting
    this.selected = null;                  // {kind, id}
    this.highlighted = new Set();
    this.diffAdded = new Set();            // "what changed since": nodes added / changed
    this.diffChanged = new Set();
    this.forceDraw = true;
    this.labelsDirty = true;
    this.viewChangedAt = 0;
    this._bindEvents();
  }

  // ------------------------------------------------------------------ element lifecycle
  apply(changes) {
    const store = this.store;
    if (changes.reset) {
      for (const id of [...this.edgeEls.keys()]) if (!store.edges.has(id)) this._removeEdge(id);
      for (const id of [...this.nodeEls.keys()]) if (!store.nodes.has(id)) this._removeNode(id);
      for (const id of [...this.pendingNodes]) if (!store.nodes.has(id)) this.pendingNodes.delete(id);
      for (const id of [...this.pendingEdges]) if (!store.edges.has(id)) this.pendingEdges.delete(id);
      for (const [id, n] of store.nodes) this._upsertNode(id, n);
      for (const [id, e] of store.edges) this._upsertEdge(id, e);
    } else {
      for (const id of changes.removedEdges) this._removeEdge(id);
      for (const id of changes.removedNodes) this._removeNode(id);
      for (const id of changes.addedNodes) this._upsertNode(id, store.node(id));
      for (const id of changes.updatedNodes) this._upsertNode(id, store.node(id));
      for (const id of changes.addedEdges) this._upsertEdge(id, store.edge(id));
      for (const id of changes.updatedEdges) this._upsertEdge(id, store.edge(id));
    }
    if (changes.structure || changes.reset) this._restructure();
    if (this.selected && !(this.selected.kind === "node" ? store.nodes : store.edges).has(this.selected.id)) {
      this.select(null);
    }
    this.forceDraw = true;
  }

  _upsertNode(id, n) {
    if (!n) return;
    let r = this.nodeEls.get(id);
    if (!r && this.layout.hiddenBy.has(id)) { this.pendingNodes.add(id); return; }
    if (!r) {
      this.pendingNodes.delete(id);
      const g = el("g", { class: "node", "data-id": id });
      const ring = el("circle", { class: "capture-ring" });
      const shape = el("circle", { class: "shape" });
      const use = el("use");
      const label = el("text", { class: "label" });
      g.append(ring, shape, use, label);
      // the <title> tooltip is created on first hover (thousands of them slow rendering down)
      r = { g, title: null, ring, shape, use, label, type: null, name: null, group: false, cls: "", lx: NaN, ly: NaN, rad: 0 };
      this.nodeEls.set(id, r);
      this.gNodes.appendChild(g);
    }
    const type = nodeType(n);
    const name = nodeName(n);
    const group = this.store.isGroup(id);
    const m = n.Metadata || {};
    if (type !== r.type || group !== r.group) {
      r.type = type; r.group = group;
      const rad = radiusFor(type, group);
      r.rad = rad;
      r.g.setAttribute("data-type", type);
      r.shape.setAttribute("r", rad);
      r.ring.setAttribute("r", rad + 4);
      r.use.setAttribute("href", "#" + iconFor(type));
      const s = rad * 1.35;
      r.use.setAttribute("x", -s / 2); r.use.setAttribute("y", -s / 2);
      r.use.setAttribute("width", s); r.use.setAttribute("height", s);
      r.label.setAttribute("y", rad + 12);
      if (group && !r.expander) {
        // the Expand / Collapse button of a node holding others (top right)
        r.expander = el("g", { class: "expander", role: "button" });
        r.expander.append(el("circle", { r: 6.5 }), el("path", { class: "h", d: "M-3.5 0h7" }), el("path", { class: "v", d: "M0-3.5v7" }));
        r.g.append(r.expander);
      }
      if (r.expander) {
        r.expander.setAttribute("transform", `translate(${(rad * 0.78).toFixed(1)},${(-rad * 0.78).toFixed(1)})`);
        if (!group) { r.expander.remove(); r.expander = null; }
      }
    }
    const os = isOpenStack(n);
    if (os !== !!r.os) {
      if (os) {
        r.os = el("use", { class: "os-mark", href: "#icon-openstack", width: 12, height: 12, x: r.rad * 0.3, y: r.rad * 0.3 });
        r.g.append(r.os);
      } else { r.os.remove(); r.os = null; }
    }
    if (name !== r.name) {
      r.name = name;
      r.label.textContent = truncate(name, 24);
    }
    if (r.title) this._nodeTitle(r, n);
    const cap = captureState(n);
    let cls = `node ${typeClass(type, n)}`;
    if (group) cls += " group";
    if (isDown(n)) cls += " state-down";
    if (os) cls += " openstack";
    if (cap === "active") cls += " captured";
    else if (cap === "error") cls += " captured capture-error";
    if (this.selected && this.selected.kind === "node" && this.selected.id === id) cls += " selected";
    if (this.highlighted.has(id)) cls += " highlighted";
    if (this.diffAdded.has(id)) cls += " diff-added";
    else if (this.diffChanged.has(id)) cls += " diff-changed";
    const p = this.layout.point(id);
    if (p && p.fx !== null) cls += " pinned";
    if (this.layout.collapsed.has(id)) cls += " collapsed";
    if (r.loff) cls += " label-off";
    if (cls !== r.cls) { r.cls = cls; r.g.setAttribute("class", cls); }
    if (cap !== r.cap) { r.cap = cap; r.g.setAttribute("data-captures", cap); }
  }

  _nodeTitle(r, n) {
    const m = n.Metadata || {};
    if (this.store.isGroup(n.ID) && r.expander && !r.extitle) {
      r.extitle = el("title");
      r.expander.append(r.extitle);
    }
    if (r.extitle) r.extitle.textContent = this.layout.collapsed.has(n.ID) ? "Expand" : "Collapse";
    const tip = `${nodeName(n)} (${nodeType(n) || "no type"})` + (m.State ? ` ${m.State}` : "") +
      (Array.isArray(m.IPV4) && m.IPV4.length ? ` ${m.IPV4.join(", ")}` : "");
    if (!r.title) { r.title = el("title"); r.g.prepend(r.title); }
    if (r.title.textContent !== tip) r.title.textContent = tip;
  }

  _edgeTitle(r, e) {
    const pn = this.store.node(e.Parent), cn = this.store.node(e.Child);
    if (!r.title) { r.title = el("title"); r.line.append(r.title); }
    r.title.textContent = `${rel(e) || "edge"}: ${nodeName(pn)} → ${nodeName(cn)}`;
  }

  _removeNode(id) {
    this.pendingNodes.delete(id);
    const r = this.nodeEls.get(id);
    if (!r) return;
    r.g.remove();
    this.nodeEls.delete(id);
    const box = this.groupEls.get(id);
    if (box) { box.remove(); this.groupEls.delete(id); }
    this.highlighted.delete(id);
  }

  _upsertEdge(id, e) {
    if (!e) return;
    let r = this.edgeEls.get(id);
    const hidden = this.layout.hiddenBy;
    if (!r && (hidden.has(e.Parent) || hidden.has(e.Child))) { this.pendingEdges.add(id); return; }
    if (!r) {
      this.pendingEdges.delete(id);
      const line = el("path", { "data-id": id });
      r = { line, title: null, cls: "", parent: e.Parent, child: e.Child };
      this.edgeEls.set(id, r);
      this.gEdges.appendChild(line);
    }
    r.parent = e.Parent; r.child = e.Child;
    const relation = rel(e);
    let cls = "edge " + (relation === OWNERSHIP ? "rel-ownership" : relation === LAYER2 ? "rel-layer2" : "rel-other");
    const t = e.Metadata && e.Metadata.Type;
    if (relation === LAYER2 && typeof t === "string" && /^[a-z0-9_-]+$/i.test(t)) cls += " l2-" + t;
    if (this.selected && this.selected.kind === "edge" && this.selected.id === id) cls += " selected";
    if (cls !== r.cls) { r.cls = cls; r.line.setAttribute("class", cls); }
    if (relation !== r.relation) { r.relation = relation; r.line.setAttribute("data-relation", relation); }
    if (r.title) this._edgeTitle(r, e);
    r.lx = NaN;                              // redraw its coordinates
  }

  _removeEdge(id) {
    this.pendingEdges.delete(id);
    const r = this.edgeEls.get(id);
    if (!r) return;
    r.line.remove();
    this.edgeEls.delete(id);
  }

  // Ownership changed: group flags, group boxes, depth order.
  _restructure() {
    const store = this.store;
    for (const [id, r] of this.nodeEls) {
      if (store.isGroup(id) !== r.group) this._upsertNode(id, store.node(id));
    }
    this._visibility();
    const boxed = (id) => store.isGroup(id) && !this.layout.collapsed.has(id) && !this.layout.hiddenBy.has(id);
    for (const [id, box] of this.groupEls) {
      if (!boxed(id)) { box.remove(); this.groupEls.delete(id); }
    }
    const depths = store.depths();
    this.depths = depths;
    const hiddenBy = this.layout.hiddenBy;       // only the shown nodes make group boxes
    this.order = [...store.nodes.keys()].filter((id) => !hiddenBy.has(id)).sort((a, b) => depths.get(b) - depths.get(a));
    this.owners = this.order.map((id) => store.ownerId(id));
    // outer groups first in the DOM so that inner ones are painted on top
    const groups = this.order.filter(boxed).reverse();
    const orderKey = groups.join(" ");
    const reorder = orderKey !== this._groupOrderKey;
    this._groupOrderKey = orderKey;
    for (const id of groups) {
      let box = this.groupEls.get(id);
      const n = store.node(id);
      if (!box) {
        box = el("rect", { "data-group": id, rx: 10, ry: 10 });
        box._cache = "";
        this.groupEls.set(id, box);
      }
      const d = Math.min(depths.get(id), 2);
      const cls = `group-box ${typeClass(nodeType(n), n)} depth-${d}` +
        (this.selected && this.selected.kind === "node" && this.selected.id === id ? " selected" : "");
      if (box.getAttribute("class") !== cls) box.setAttribute("class", cls);
      if (reorder || !box.parentNode) this.gGroups.appendChild(box);   // paint order by depth
    }
  }

  // A bundle: one <g class="bundle" data-bundle data-owner data-count> drawn like a node,
  // labelled "<count> <type>", with an Expand button (a click opens it).
  _bundles() {
    const bundles = this.layout.bundles;
    for (const [id, r] of this.bundleEls) if (!bundles.has(id)) { r.g.remove(); this.bundleEls.delete(id); }
    for (const b of bundles.values()) {
      let r = this.bundleEls.get(b.id);
      if (!r) {
        const g = el("g", { class: `bundle ${typeClass(b.type)}`, "data-bundle": b.id, "data-owner": b.owner, "data-type": b.type });
        const back = el("circle", { class: "shape back", r: 15, cx: 4, cy: -4 });
        const shape = el("circle", { class: "shape", r: 15 });
        const use = el("use", { href: "#" + iconFor(b.type), x: -10, y: -10, width: 20, height: 20 });
        const label = el("text", { class: "label", y: 28 });
        const exp = el("g", { class: "expander", role: "button", transform: "translate(12,-12)" });
        exp.append(el("circle", { r: 6.5 }), el("path", { class: "h", d: "M-3.5 0h7" }), el("path", { class: "v", d: "M0-3.5v7" }));
        const title = el("title");
        g.append(title, back, shape, use, label, exp);
        r = { g, label, title, lx: NaN, ly: NaN, n: -1 };
        this.bundleEls.set(b.id, r);
        this.gNodes.appendChild(g);
      }
      if (r.n !== b.members.length) {
        r.n = b.members.length;
        r.label.textContent = `${r.n} ${b.type}`;
        r.title.textContent = `${r.n} ${b.type} interfaces of ${nodeName(this.store.node(b.owner))}: click to show them`;
        r.g.setAttribute("data-count", String(r.n));
      }
      r.lx = NaN;
    }
  }

  openBundle(id) {
    if (!this.layout.openBundle(id)) return false;
    this._afterFold([]);
    return true;
  }

  // Nodes folded into a collapsed group are not displayed, nor are their edges; the
  // collapsed group shows how many nodes it holds.
  _visibility() {
    this._bundles();
    const hidden = this.layout.hiddenBy;
    for (const id of [...this.pendingNodes]) if (!hidden.has(id)) this._upsertNode(id, this.store.node(id));
    for (const id of [...this.pendingEdges]) {
      const e = this.store.edge(id);
      if (!e) this.pendingEdges.delete(id);
      else if (!hidden.has(e.Parent) && !hidden.has(e.Child)) this._upsertEdge(id, e);
    }
    const counts = new Map();
    for (const top of hidden.values()) counts.set(top, (counts.get(top) || 0) + 1);
    for (const [id, r] of this.nodeEls) {
      const hide = hidden.has(id);
      if (hide !== !!r.hidden) {
        r.hidden = hide;
        if (hide) r.g.setAttribute("display", "none"); else r.g.removeAttribute("display");
        r.lx = NaN;
      }
      const n = counts.get(id) || 0;
      if (n || r.badge) {
        if (!r.badge) {
          r.badge = el("text", { class: "fold-count" });
          r.g.append(r.badge);
        }
        // written only when they change: a text change makes the browser lay the SVG text out again
        const text = n ? `${n}` : "";
        if (text !== r.badgeText) { r.badgeText = text; r.badge.textContent = text; }
        if (r.badgeRad !== r.rad) {
          r.badgeRad = r.rad;
          r.badge.setAttribute("x", r.rad * 0.78 + 8);
          r.badge.setAttribute("y", -r.rad * 0.78 + 4);
        }
        if (r.g.classList.contains("collapsed") !== n > 0) {
          r.g.classList.toggle("collapsed", n > 0);
          r.cls = r.g.getAttribute("class");
        }
      }
    }
    const proxies = new Map();
    for (const [id, r] of this.edgeEls) {
      const hide = hidden.has(r.parent) || hidden.has(r.child);
      if (hide !== !!r.hidden) {
        r.hidden = hide;
        if (hide) r.line.setAttribute("display", "none"); else r.line.removeAttribute("display");
        r.lx = NaN;
      }
      if (!hide) continue;
      // a non-ownership link leaving a folded group is drawn once between the visible ends
      const e = this.store.edge(id);
      const relation = rel(e);
      if (!e || relation === OWNERSHIP) continue;
      const a = hidden.get(r.parent) || r.parent, b = hidden.get(r.child) || r.child;
      if (a === b) continue;
      const key = a < b ? `${a}|${b}` : `${b}|${a}`;
      if (!proxies.has(key)) proxies.set(key, { a, b, relation, n: 0 });
      proxies.get(key).n++;
    }
    for (const b of this.layout.bundles.values()) {      // the bundle's owner link
      if (hidden.has(b.owner)) continue;
      proxies.set(`${b.owner}|${b.id}`, { a: b.owner, b: b.id, relation: OWNERSHIP, n: b.members.length });
    }
    for (const [key, pr] of this.proxyEls) {
      if (!proxies.has(key)) { pr.line.remove(); this.proxyEls.delete(key); }
    }
    for (const [key, want] of proxies) {
      let pr = this.proxyEls.get(key);
      if (!pr) {
        pr = { line: el("path", { "data-proxy": key }), a: want.a, b: want.b, lx: NaN };
        this.proxyEls.set(key, pr);
        this.gEdges.appendChild(pr.line);
      }
      const cls = want.relation === OWNERSHIP ? "edge rel-ownership bundle-link"
        : `edge proxy ${want.relation === LAYER2 ? "rel-layer2" : "rel-other"}`;
      if (cls !== pr.cls) { pr.cls = cls; pr.line.setAttribute("class", cls); }
      if (want.n !== pr.n) { pr.n = want.n; pr.line.setAttribute("data-links", String(want.n)); }
      pr.lx = NaN;
    }
  }

  // ------------------------------------------------------------------ per-frame drawing
  draw() {
    const force = this.forceDraw;
    this.forceDraw = false;
    let moved = false;
    const movedIds = new Set();
    for (const [id, r] of this.nodeEls) {
      if (r.hidden) continue;
      const p = this.layout.point(id);
      if (!p) continue;
      if (force || Math.abs(p.x - r.lx) > 0.25 || Math.abs(p.y - r.ly) > 0.25 || Number.isNaN(r.lx)) {
        r.lx = p.x; r.ly = p.y;
        const tf = `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`;
        if (tf === r.tf) continue;                       // a forced draw writes only what changed
        r.tf = tf;
        r.g.setAttribute("transform", tf);
        movedIds.add(id);
        moved = true;
      }
    }
    for (const r of this.edgeEls.values()) {
      if (r.hidden) continue;
      if (!force && !Number.isNaN(r.lx) && !movedIds.has(r.parent) && !movedIds.has(r.child)) continue;
      const a = this.layout.point(r.parent), b = this.layout.point(r.child);
      if (!a || !b) continue;
      r.lx = a.x;
      const d = `M${a.x.toFixed(1)} ${a.y.toFixed(1)}L${b.x.toFixed(1)} ${b.y.toFixed(1)}`;
      if (d !== r.d) { r.d = d; r.line.setAttribute("d", d); }
    }
    for (const [id, r] of this.bundleEls) {
      const p = this.layout.point(id);
      if (!p) continue;
      if (force || Math.abs(p.x - r.lx) > 0.25 || Math.abs(p.y - r.ly) > 0.25 || Number.isNaN(r.lx)) {
        r.lx = p.x; r.ly = p.y;
        const tf = `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`;
        if (tf === r.tf) continue;
        r.tf = tf;
        r.g.setAttribute("transform", tf);
        movedIds.add(id);
        moved = true;
      }
    }
    for (const pr of this.proxyEls.values()) {
      if (!force && !Number.isNaN(pr.lx) && !movedIds.has(pr.a) && !movedIds.has(pr.b)) continue;
      const a = this.layout.point(pr.a), b = this.layout.point(pr.b);
      if (!a || !b) continue;
      pr.lx = a.x;
      const d = `M${a.x.toFixed(1)} ${a.y.toFixed(1)}L${b.x.toFixed(1)} ${b.y.toFixed(1)}`;
      if (d !== pr.d) { pr.d = d; pr.line.setAttribute("d", d); }
    }
    if (moved || force) { this._drawGroups(); this.labelsDirty = true; }
    // auto-fit while the whole picture is laid out; a local layout (new nodes) leaves the view alone
    if (!this.userView && (moved || force) && !this.layout.movable) this.fit(false);
    return moved;
  }

  _drawGroups() {
    if (this.groupEls.size === 0) return;
    const boxes = new Map();
    for (const b of this.layout.bundles.values()) {       // a bundle counts in its owner's box
      const p = this.layout.point(b.id);
      if (!p) continue;
      const own = [p.x - 15, p.y - 19, p.x + 19, p.y + 30];
      const ob = boxes.get(b.owner);
      if (!ob) boxes.set(b.owner, own);
      else { ob[0] = Math.min(ob[0], own[0]); ob[1] = Math.min(ob[1], own[1]); ob[2] = Math.max(ob[2], own[2]); ob[3] = Math.max(ob[3], own[3]); }
    }
    const owners = this.owners;
    const hidden = this.layout.hiddenBy;
    for (let i = 0; i < this.order.length; i++) {
      const id = this.order[i];
      if (hidden.has(id)) continue;
      const p = this.layout.point(id);
      if (!p) continue;
      let b = boxes.get(id);
      const own = [p.x - p.r, p.y - p.r, p.x + p.r, p.y + p.r + 14];   // + label
      if (!b) b = own;
      else {
        b[0] = Math.min(b[0], own[0]); b[1] = Math.min(b[1], own[1]);
        b[2] = Math.max(b[2], own[2]); b[3] = Math.max(b[3], own[3]);
      }
      const box = this.groupEls.get(id);
      if (box) {
        b = [b[0] - 10, b[1] - 10, b[2] + 10, b[3] + 6];
        const key = b.map((v) => v.toFixed(0)).join(",");
        if (key !== box._cache) {
          box._cache = key;
          box.setAttribute("x", b[0].toFixed(0)); box.setAttribute("y", b[1].toFixed(0));
          box.setAttribute("width", (b[2] - b[0]).toFixed(0)); box.setAttribute("height", (b[3] - b[1]).toFixed(0));
        }
      }
      const owner = owners[i];
      if (owner !== undefined && owner !== id) {
        const ob = boxes.get(owner);
        if (!ob) boxes.set(owner, b.slice());
        else {
          ob[0] = Math.min(ob[0], b[0]); ob[1] = Math.min(ob[1], b[1]);
          ob[2] = Math.max(ob[2], b[2]); ob[3] = Math.max(ob[3], b[3]);
        }
      }
    }
  }

  // ------------------------------------------------------------------ labels
  // Labels never overlap: once the layout is still (and after a zoom), labels are placed
  // greedily by priority (selected, hosts, groups, most linked) and the ones that would cover
  // an already placed label are hidden (the node's tooltip still names it). The boxes are the
  // rendered ones (getBoundingClientRect: what is painted, whatever the browser's font scaling
  // and rounding at this zoom; a hidden label is `visibility: hidden`, so it keeps its box).
  declutter() {
    this.labelsDirty = false;
    const zoomedOut = this.svg.classList.contains("zoomed-out");
    const cand = [];
    for (const [id, r] of this.nodeEls) {
      if (r.hidden || !r.name) continue;
      if (zoomedOut && !r.group) continue;
      const sel = this.selected && this.selected.id === id;
      cand.push({ r, prio: (sel ? 1e9 : 0) + (r.type === "host" ? 1e8 : 0) + (r.group ? 1e7 : 0) + this.store.edgesOf(id).size });
    }
    for (const r of this.bundleEls.values()) cand.push({ r, prio: 5e7 });
    // all reads first (one style/layout pass), then the class writes
    const items = [];
    for (const c of cand) {
      const b = c.r.label.getBoundingClientRect();
      if (!(b.width > 0)) continue;          // not displayed (labels off): left as it is
      items.push({ r: c.r, prio: c.prio, x0: b.left - 2, x1: b.right + 2, y0: b.top - 1, y1: b.bottom + 1 });
    }
    items.sort((a, b) => b.prio - a.prio);
    const cell = 80, grid = new Map();
    let hidden = 0;
    for (const it of items) {
      const gx0 = Math.floor(it.x0 / cell), gx1 = Math.floor(it.x1 / cell);
      const gy0 = Math.floor(it.y0 / cell), gy1 = Math.floor(it.y1 / cell);
      let clash = false;
      for (let gx = gx0; gx <= gx1 && !clash; gx++) {
        for (let gy = gy0; gy <= gy1 && !clash; gy++) {
          const list = grid.get(gx + "," + gy);
          if (!list) continue;
          for (const o of list) {
            if (o.x0 < it.x1 && it.x0 < o.x1 && o.y0 < it.y1 && it.y0 < o.y1) { clash = true; break; }
          }
        }
      }
      if (!clash) {
        for (let gx = gx0; gx <= gx1; gx++) {
          for (let gy = gy0; gy <= gy1; gy++) {
            const kk = gx + "," + gy;
            if (!grid.has(kk)) grid.set(kk, []);
            grid.get(kk).push(it);
          }
        }
      } else hidden++;
      if (clash !== !!it.r.loff) {
        it.r.loff = clash;
        it.r.g.classList.toggle("label-off", clash);
        if (it.r.cls !== undefined) it.r.cls = it.r.g.getAttribute("class");
      }
    }
    for (const r of this.nodeEls.values()) {
      if (r.loff && (r.hidden || (zoomedOut && !r.group))) { r.loff = false; r.g.classList.remove("label-off"); r.cls = r.g.getAttribute("class"); }
    }
    this.svg.dataset.labelsHidden = String(hidden);
    return hidden;
  }

  // ------------------------------------------------------------------ view (pan / zoom)
  _applyView() {
    const { k, tx, ty } = this.view;
    if (k !== this._lastK) {
      this._lastK = k;
      this.labelsDirty = true;
      this.viewChangedAt = performance.now();
      if (this.handlers.onActivity) this.handlers.onActivity();       // labels re-placed once the zoom stops
    }
    const tf = `translate(${tx.toFixed(1)},${ty.toFixed(1)}) scale(${k.toFixed(4)})`;
    if (tf !== this._viewTf) { this._viewTf = tf; this.viewport.setAttribute("transform", tf); }
    const threshold = this.nodeEls.size > 1000 ? 0.8 : 0.55;
    this.svg.classList.toggle("zoomed-out", k < threshold);
    if (this.handlers.onViewChange) this.handlers.onViewChange(this.view);
  }

  // cached: reading the layout box in the middle of a frame would force a synchronous layout
  size() {
    if (!this._size) {
      const r = this.svg.getBoundingClientRect();
      this._size = { w: r.width || 800, h: r.height || 600 };
    }
    return this._size;
  }

  fit(user = true, ids = null) {
    if (user) this.userView = !!ids;
    const b = this.layout.bounds(ids);
    if (!b) return;
    const { w, h } = this.size();
    // room for the group boxes around the nodes (and labels), the toolbar and the legend
    const top = 88, bottom = 56, side = 16, margin = 24;
    const x0 = b.x0 - margin, x1 = b.x1 + margin, y0 = b.y0 - margin, y1 = b.y1 + margin;
    let k = Math.min((w - 2 * side) / (x1 - x0), (h - top - bottom) / (y1 - y0));
    k = Math.max(MIN_K, Math.min(ids ? 2 : 1.6, k));
    this.view.k = k;
    this.view.tx = w / 2 - ((x0 + x1) / 2) * k;
    this.view.ty = top + (h - top - bottom) / 2 - ((y0 + y1) / 2) * k;
    this._applyView();
  }

  zoom(factor, cx, cy) {
    const { w, h } = this.size();
    if (cx === undefined) { cx = w / 2; cy = h / 2; }
    const k = Math.max(MIN_K, Math.min(MAX_K, this.view.k * factor));
    const f = k / this.view.k;
    this.view.tx = cx - (cx - this.view.tx) * f;
    this.view.ty = cy - (cy - this.view.ty) * f;
    this.view.k = k;
    this.userView = true;
    this._applyView();
  }

  centerOn(id) {
    const p = this.layout.point(id);
    if (!p) return;
    const { w, h } = this.size();
    if (this.view.k < 0.7) this.view.k = 1;
    this.view.tx = w / 2 - p.x * this.view.k;
    this.view.ty = h / 2 - p.y * this.view.k;
    this.userView = true;
    this._applyView();
  }

  toWorld(clientX, clientY) {
    const r = this.svg.getBoundingClientRect();
    return { x: (clientX - r.left - this.view.tx) / this.view.k, y: (clientY - r.top - this.view.ty) / this.view.k };
  }

  // ------------------------------------------------------------------ collapse / expand
  setCollapsed(id, on) {
    if (!this.layout.setCollapsed(id, on)) return false;
    this._afterFold([id]);
    return true;
  }

  toggleCollapse(id) { return this.setCollapsed(id, !this.layout.collapsed.has(id)); }

  reveal(id) {
    if (this.layout.reveal(id)) this._afterFold([]);
  }

  // collapse every group of one of these types (or expand everything with types = null)
  foldAll(types) {
    const ids = [];
    for (const [id, n] of this.store.nodes) {
      if (!this.store.isGroup(id)) continue;
      const want = types === "all" ? true : types ? types.has(nodeType(n)) : false;
      if (want !== this.layout.collapsed.has(id)) ids.push(id);
    }
    this.layout.bundling = types !== null;        // Expand all also opens the bundles
    if (types === "all") this.layout.openBundles.clear();
    const n = types ? this.layout.setCollapsedMany(ids, true) : this.layout.setCollapsedMany(ids, false);
    if (!n) this.layout._rebuild();
    this._afterFold(ids);
    return n;
  }

  _afterFold(ids) {
    this._restructure();
    for (const id of ids) {
      const r = this.nodeEls.get(id);
      if (r) { r.cls = ""; this._upsertNode(id, this.store.node(id)); }
    }
    this.forceDraw = true;
    if (this.handlers.onActivity) this.handlers.onActivity();
  }

  // ------------------------------------------------------------------ selection / highlight
  select(sel) {
    const prev = this.selected;
    this.selected = sel && sel.id ? sel : null;
    for (const s of [prev, this.selected]) {
      if (!s) continue;
      if (s.kind === "node") {
        const r = this.nodeEls.get(s.id);
        if (r) { r.cls = ""; this._upsertNode(s.id, this.store.node(s.id)); }
        const box = this.groupEls.get(s.id);
        if (box) box.classList.toggle("selected", !!this.selected && this.selected.id === s.id);
      } else {
        const r = this.edgeEls.get(s.id);
        if (r) { r.cls = ""; this._upsertEdge(s.id, this.store.edge(s.id)); }
      }
    }
    if (this.handlers.onSelect) this.handlers.onSelect(this.selected);
  }

  markDiff(added, changed) {
    const before = new Set([...this.diffAdded, ...this.diffChanged]);
    this.diffAdded = new Set(added);
    this.diffChanged = new Set(changed);
    for (const id of new Set([...before, ...added, ...changed])) {
      const r = this.nodeEls.get(id);
      if (r) { r.cls = ""; this._upsertNode(id, this.store.node(id)); }
    }
  }

  highlight(ids) {
    const before = this.highlighted;
    this.highlighted = new Set([...ids].filter((id) => this.nodeEls.has(id)));
    for (const id of new Set([...before, ...this.highlighted])) {
      const r = this.nodeEls.get(id);
      if (r) { r.cls = ""; this._upsertNode(id, this.store.node(id)); }
    }
    this.svg.classList.toggle("dimmed", this.highlighted.size > 0);
    return this.highlighted.size;
  }

  // ------------------------------------------------------------------ pointer interaction
  _bindEvents() {
    const svg = this.svg;
    if (window.ResizeObserver && svg.parentNode) {
      // The <svg> gets its pane's size in px: sized in %, each layout of the page around it
      // (a status bar text, a panel) re-lays out every SVG <text> (a viewport change for Chromium)
      const pane = svg.parentNode;
      new ResizeObserver(() => {
        const w = pane.clientWidth, h = pane.clientHeight;
        if (w > 0 && h > 0) { svg.style.width = `${w}px`; svg.style.height = `${h}px`; }
        this._size = null;
        if (!this.userView) this.fit(false);
      }).observe(pane);
    }
    svg.addEventListener("pointerover", (ev) => {
      const t = ev.target;
      if (!t.closest) return;
      const g = t.closest(".node");
      if (g) {
        const r = this.nodeEls.get(g.getAttribute("data-id"));
        const n = this.store.node(g.getAttribute("data-id"));
        if (r && n) this._nodeTitle(r, n);
        return;
      }
      const l = t.closest(".edge");
      if (l) {
        const r = this.edgeEls.get(l.getAttribute("data-id"));
        const e = this.store.edge(l.getAttribute("data-id"));
        if (r && e) this._edgeTitle(r, e);
      }
    });
    let drag = null;     // {mode: "pan"|"node", id, x0, y0, moved, tx, ty}
    svg.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      const bundle = ev.target.closest && ev.target.closest(".bundle");
      if (bundle) {
        ev.stopPropagation();
        this.openBundle(bundle.getAttribute("data-bundle"));
        if (this.handlers.onFold) this.handlers.onFold(null);
        return;
      }
      const exp = ev.target.closest && ev.target.closest(".expander");
      if (exp) {
        ev.stopPropagation();
        const id = exp.closest(".node").getAttribute("data-id");
        this.toggleCollapse(id);
        if (this.handlers.onFold) this.handlers.onFold(id);
        return;
      }
      const nodeG = ev.target.closest && ev.target.closest(".node");
      const edgeL = !nodeG && ev.target.closest && ev.target.closest(".edge");
      drag = { x0: ev.clientX, y0: ev.clientY, moved: false, tx: this.view.tx, ty: this.view.ty };
      if (nodeG) { drag.mode = "node"; drag.id = nodeG.getAttribute("data-id"); }
      else if (edgeL) { drag.mode = "edge"; drag.id = edgeL.getAttribute("data-id"); }
      else drag.mode = "pan";
      svg.setPointerCapture(ev.pointerId);
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x0, dy = ev.clientY - drag.y0;
      if (!drag.moved && dx * dx + dy * dy < 16) return;
      if (!drag.moved) {
        drag.moved = true;
        if (drag.mode === "node") this.layout.dragStart(drag.id);
        if (drag.mode === "pan") svg.classList.add("panning");
      }
      if (drag.mode === "node") {
        const w = this.toWorld(ev.clientX, ev.clientY);
        this.layout.dragMove(drag.id, w.x, w.y);
        this.userView = true;
        if (this.handlers.onActivity) this.handlers.onActivity();
      } else if (drag.mode === "pan") {
        this.view.tx = drag.tx + dx; this.view.ty = drag.ty + dy;
        this.userView = true;
        this._applyView();
      }
    });
    const end = (ev) => {
      if (!drag) return;
      const d = drag;
      drag = null;
      svg.classList.remove("panning");
      try { svg.releasePointerCapture(ev.pointerId); } catch (_) { /* already released */ }
      if (d.moved) {
        if (d.mode === "node") {
          this.layout.dragEnd();
          const r = this.nodeEls.get(d.id);
          if (r) { r.cls = ""; this._upsertNode(d.id, this.store.node(d.id)); }
        }
        return;
      }
      if (ev.type !== "pointerup") return;
      if (d.mode === "node") this.select({ kind: "node", id: d.id });
      else if (d.mode === "edge") this.select({ kind: "edge", id: d.id });
      else this.select(null);
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener("dblclick", (ev) => {
      // with pointer capture the event targets the <svg>: find what is under the pointer
      const under = document.elementFromPoint(ev.clientX, ev.clientY);
      if (under && under.closest && under.closest(".expander")) return;
      const nodeG = under && under.closest && under.closest(".node");
      if (!nodeG) { this.zoom(1.6, ev.clientX - svg.getBoundingClientRect().left, ev.clientY - svg.getBoundingClientRect().top); return; }
      const id = nodeG.getAttribute("data-id");
      if (this.store.isGroup(id)) { this.toggleCollapse(id); return; }
      this.layout.unpin(id);
      const r = this.nodeEls.get(id);
      if (r) { r.cls = ""; this._upsertNode(id, this.store.node(id)); }
      if (this.handlers.onActivity) this.handlers.onActivity();
    });
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      const factor = Math.exp(-ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.0015));
      this.zoom(factor, ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
  }
}
