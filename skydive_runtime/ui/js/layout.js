// Force-directed layout sized for thousands of nodes.
//
// - repulsion through a Barnes-Hut quadtree: O(n log n) per tick, never O(n²);
// - springs on edges: short and stiff for ownership (children gather around their host /
//   netns / bridge), longer and softer for layer2 and other relations;
// - a new graph is seeded hierarchically (each owner's subtree on a ring around it), so the
//   simulation only has to refine it; the number of ticks is capped (alpha decay) and each
//   animation frame gets a time budget;
// - positions survive a re-sync (reconnect, filter change) for the nodes that are still there,
//   and a reload (saved per node in localStorage): the same graph gives the same picture;
// - hosts first: every group (node owning others) starts folded until the user expands it;
// - a few new nodes are laid out alone, near their owner: the rest of the picture stays still.

import { OWNERSHIP, LAYER2, rel } from "./graphstore.js";
import { nodeType, radiusFor } from "./style.js";

const ALPHA_MIN = 0.002;
const MAX_TICKS = 400;                   // per reheat: the simulation always stops
const LOCAL_TICKS = 250;                 // a node of a local layout moves this many ticks at most
const VELOCITY_KEEP = 0.6;               // d3's velocityDecay 0.4
const THETA2 = 0.9 * 0.9;                // Barnes-Hut opening criterion
const CHARGE = -70;
const GROUP_CHARGE = -160;
const DIST_MAX2 = 900 * 900;             // repulsion ignored beyond this distance
const GRAVITY = 0.025;
const GROUP_PAD = 36;                    // gap kept between sibling groups (host, netns, bridge)
const MAX_SIBLINGS = 200;                // pairwise group separation only for sets this small

class Point {
  constructor(id) {
    this.id = id;
    this.x = 0; this.y = 0; this.vx = 0; this.vy = 0;
    this.fx = null; this.fy = null;      // pinned position (dragged by the user)
    this.r = 10;
    this.charge = CHARGE;
    this.degree = 0;
  }
}

// --------------------------------------------------------------------------- Barnes-Hut
class Quad {
  constructor() {
    this.x0 = 0; this.y0 = 0; this.size = 0;
    this.kids = null;         // 4 sub-quads once split
    this.pts = null;          // leaf: points (several only when coincident)
    this.value = 0;           // summed charge
    this.cx = 0; this.cy = 0; // charge-weighted centre
  }
}

// Quads are recycled from one tick to the next: no garbage per tick.
const pool = [];
let poolUsed = 0;

function newQuad(x0, y0, size) {
  let q = pool[poolUsed];
  if (!q) pool[poolUsed] = q = new Quad();
  poolUsed++;
  q.x0 = x0; q.y0 = y0; q.size = size;
  q.kids = null; q.pts = null; q.value = 0; q.cx = 0; q.cy = 0;
  return q;
}

function buildQuadtree(points) {
  poolUsed = 0;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const p of points) {
    if (p.x < x0) x0 = p.x; if (p.x > x1) x1 = p.x;
    if (p.y < y0) y0 = p.y; if (p.y > y1) y1 = p.y;
  }
  const size = Math.max(x1 - x0, y1 - y0, 1) * 1.0001;
  const root = newQuad(x0, y0, size);
  for (const p of points) insert(root, p, 0);
  accumulate(root);
  return root;
}

function insert(q, p, depth) {
  for (;;) {
    if (q.kids) {
      const h = q.size / 2;
      const i = (p.x >= q.x0 + h ? 1 : 0) | (p.y >= q.y0 + h ? 2 : 0);
      let k = q.kids[i];
      if (!k) k = q.kids[i] = newQuad(q.x0 + (i & 1 ? h : 0), q.y0 + (i & 2 ? h : 0), h);
      q = k; depth++;
      continue;
    }
    if (!q.pts) { q.pts = [p]; return; }
    const o = q.pts[0];
    if (depth > 40 || (Math.abs(o.x - p.x) < 1e-6 && Math.abs(o.y - p.y) < 1e-6)) { q.pts.push(p); return; }
    // split the leaf and push its points one level down
    const old = q.pts;
    q.pts = null;
    q.kids = [null, null, null, null];
    for (const op of old) insert(q, op, depth);
  }
}

const accOrder = [];

function accumulate(q) {
  // iterative post-order
  const stack = [q], order = accOrder;
  order.length = 0;
  while (stack.length) {
    const n = stack.pop();
    order.push(n);
    if (n.kids) for (const k of n.kids) if (k) stack.push(k);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    let v = 0, w = 0, x = 0, y = 0;
    if (n.kids) {
      for (const k of n.kids) {
        if (!k) continue;
        const a = Math.abs(k.value);
        v += k.value; w += a; x += a * k.cx; y += a * k.cy;
      }
    } else if (n.pts) {
      for (const p of n.pts) {
        const a = Math.abs(p.charge);
        v += p.charge; w += a; x += a * p.x; y += a * p.y;
      }
    }
    n.value = v;
    n.cx = w ? x / w : n.x0; n.cy = w ? y / w : n.y0;
  }
}

function applyCharge(root, p, alpha, stack) {
  stack.length = 0;
  stack.push(root);
  while (stack.length) {
    const q = stack.pop();
    if (!q.value) continue;
    let dx = q.cx - p.x, dy = q.cy - p.y;
    let l = dx * dx + dy * dy;
    const w = q.size;
    if (q.kids && (w * w / THETA2 >= l)) {                 // too close: open the cell
      for (const k of q.kids) if (k) stack.push(k);
      continue;
    }
    if (l >= DIST_MAX2) continue;
    if (q.kids) {                                          // far cell: aggregate
      if (dx === 0) { dx = jiggle(); l += dx * dx; }
      if (dy === 0) { dy = jiggle(); l += dy * dy; }
      if (l < 1) l = Math.sqrt(l);
      const f = q.value * alpha / l;
      p.vx += dx * f; p.vy += dy * f;
      continue;
    }
    for (const o of q.pts) {                               // leaf: each point
      if (o === p) continue;
      let ex = o.x - p.x, ey = o.y - p.y;
      if (ex === 0) ex = jiggle();
      if (ey === 0) ey = jiggle();
      let m = ex * ex + ey * ey;
      if (m < 1) m = Math.sqrt(m);
      const f = o.charge * alpha / m;
      p.vx += ex * f; p.vy += ey * f;
    }
  }
}

// Overlapping nodes (radius + room for the label) are pushed apart; only the quadtree cells
// within reach of a point are visited.
const COLLIDE_PAD = 7;

function applyCollide(root, p, maxR, stack, oneSided) {
  const reach = p.r + maxR + COLLIDE_PAD;
  const x0 = p.x - reach, x1 = p.x + reach, y0 = p.y - reach, y1 = p.y + reach;
  stack.length = 0;
  stack.push(root);
  while (stack.length) {
    const q = stack.pop();
    if (q.x0 > x1 || q.x0 + q.size < x0 || q.y0 > y1 || q.y0 + q.size < y0) continue;
    if (q.kids) { for (const k of q.kids) if (k) stack.push(k); continue; }
    for (const o of q.pts) {
      if (o === p || (!oneSided && o.id < p.id)) continue;            // each pair once (or p's side only)
      let dx = p.x - o.x, dy = p.y - o.y;
      const min = p.r + o.r + COLLIDE_PAD;
      let d2 = dx * dx + dy * dy;
      if (d2 >= min * min) continue;
      if (d2 === 0) { dx = jiggle() * 1e6; dy = jiggle() * 1e6; d2 = dx * dx + dy * dy; }
      const d = Math.sqrt(d2);
      const f = (min - d) / d * 0.35;
      const w = o.r * o.r / (p.r * p.r + o.r * o.r);        // the smaller node moves more
      p.vx += dx * f * w; p.vy += dy * f * w;
      if (!oneSided) { o.vx -= dx * f * (1 - w); o.vy -= dy * f * (1 - w); }
    }
  }
}

function jiggle() { return (Math.random() - 0.5) * 1e-6; }

// a stable angle for a node id (seeding does not depend on Math.random: same graph, same picture)
function angleOf(id) {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) { h ^= id.charCodeAt(i); h = Math.imul(h, 16777619); }
  return ((h >>> 0) / 4294967296) * 2 * Math.PI;
}

const SAVE_KEY = "skydive.layout.v1";
const BUNDLE_MIN = 10;                   // this many leaves of one type under one owner fold into one
export const BUNDLE_PREFIX = "bundle:";
const MAX_SAVED = 50000;

// --------------------------------------------------------------------------- layout
export class Layout {
  constructor(store) {
    this.store = store;
    this.points = new Map();     // id -> Point (kept for removed nodes' ids until pruned)
    this.list = [];              // live points
    this.links = [];
    this.groups = [];
    this.siblingSets = [];
    this.collapsed = new Set();  // group ids whose subtree is folded into them
    this.hostsFirst = true;      // groups start folded unless expanded by the user
    this.expanded = new Set();   // groups the user unfolded (hosts-first view)
    this.movable = null;         // when a Set: only these points move (local layout of new nodes)
    this.saved = new Map();      // id -> [x, y] positions saved by a previous page
    this.bundling = true;        // many similar leaves of an owner are shown as one bundle node
    this.bundles = new Map();    // bundle id -> {id, owner, type, members}
    this.openBundles = new Set();  // bundles the user opened
    this._freshBundles = [];       // bundle points created by the last rebuild (to be laid out)
    this.hiddenBy = new Map();   // hidden node id -> its top-most collapsed ancestor
    this.alpha = 0;
    this.ticks = 0;
    this.frozen = false;
    this.dragging = 0;
    this._stack = [];
    this.version = 0;            // bumped whenever positions change
    this.decay = 1 - Math.pow(ALPHA_MIN, 1 / 300);
    this._localOf = null;        // the movable set that _localTicks counts for
    this._localTicks = new Map();  // movable id -> ticks it has moved
  }

  get running() {
    return !this.frozen && (this.dragging > 0 || (this.alpha >= ALPHA_MIN && this.ticks < MAX_TICKS));
  }

  point(id) { return this.points.get(id); }

  reheat(alpha) {
    if (alpha > this.alpha || !this.running) this.alpha = Math.max(alpha, this.alpha);
    this.ticks = 0;
  }

  // Apply the store's structural changes (nodes/edges added or removed, Type changes).
  sync(changes) {
    const store = this.store;
    if (changes.reset) {
      for (const id of [...this.points.keys()]) if (!store.nodes.has(id) && !id.startsWith(BUNDLE_PREFIX)) this.points.delete(id);
    } else {
      for (const id of changes.removedNodes) this.points.delete(id);
    }
    const fresh = [];
    for (const id of store.nodes.keys()) {
      if (!this.points.has(id)) { const p = new Point(id); this.points.set(id, p); fresh.push(p); }
    }
    if (changes.structure || changes.reset) this._rebuild();
    else {
      for (const id of changes.updatedNodes) {          // a Type change alters the radius only
        const p = this.points.get(id), n = store.node(id);
        if (p && n) p.r = radiusFor(nodeType(n), store.isGroup(id));
      }
    }
    const restored = this._restore(fresh);
    const unplaced = fresh.filter((p) => !restored.has(p.id));
    if (unplaced.length) this._place(unplaced, changes.reset && restored.size === 0);
    for (const p of unplaced) {                      // placed after their offsets were taken
      const top = this.hiddenBy.get(p.id), g = top !== undefined && this.points.get(top);
      if (g) { p.ox = p.x - g.x; p.oy = p.y - g.y; p.oref = top; }
    }
    if (changes.reset) {
      // a re-sync (reconnection, reload with saved positions): the nodes already placed stay
      // where they are, only those never seen before are laid out
      const visibleNew = unplaced.filter((p) => !this.hiddenBy.has(p.id));
      const known = this.list.length - visibleNew.length;
      if (!visibleNew.length) {
        if (restored.size) this.alpha = 0;
      } else if (known > 0 && visibleNew.length <= 0.5 * this.list.length) {
        this.movable = new Set(visibleNew.map((p) => p.id));
        this.reheat(0.3);
      } else {
        this.movable = null;
        this.reheat(visibleNew.length > 0.5 * this.list.length ? 1 : 0.3);
      }
    } else if (changes.structure && fresh.length) {
      // new nodes are laid out alone, near their owner: the rest of the picture does not move
      const visible = fresh.filter((p) => !this.hiddenBy.has(p.id));
      if (visible.length) {
        if (!this.movable || !this.running) this.movable = new Set();
        for (const p of visible) this.movable.add(p.id);
        this.reheat(0.3);
      }
    }
    if (this.movable === null && this.running) this._freshBundles = [];     // in the full layout
    else this._layBundles();
  }

  // new bundle nodes are laid out like new nodes
  _layBundles() {
    if (!this._freshBundles.length) return;
    if (!this.movable || !this.running) this.movable = new Set();
    for (const p of this._freshBundles) this.movable.add(p.id);
    this._freshBundles = [];
    this.reheat(0.3);
  }

  // ---- positions saved across reloads -------------------------------------------------------
  loadSaved(storage = window.localStorage) {
    try {
      const raw = storage && storage.getItem(SAVE_KEY);
      if (!raw) return;
      const data = JSON.parse(raw);
      this.saved = new Map(Object.entries(data.positions || {}));
      this.expanded = new Set(data.expanded || []);
    } catch (err) {
      this.saved = new Map();
    }
  }

  save(storage = window.localStorage) {
    if (!storage) return;
    for (const [id, p] of this.points) this.saved.set(id, [Math.round(p.x * 10) / 10, Math.round(p.y * 10) / 10]);
    if (this.saved.size > MAX_SAVED) {                 // forget the oldest (insertion order)
      const drop = this.saved.size - MAX_SAVED;
      let i = 0;
      for (const id of this.saved.keys()) { if (i++ >= drop) break; this.saved.delete(id); }
    }
    try {
      storage.setItem(SAVE_KEY, JSON.stringify({ positions: Object.fromEntries(this.saved), expanded: [...this.expanded] }));
    } catch (err) { /* quota: positions are a convenience */ }
  }

  _restore(fresh) {
    const done = new Set();
    for (const p of fresh) {
      const s = this.saved.get(p.id);
      if (s) { p.x = s[0]; p.y = s[1]; p.laid = true; done.add(p.id); }
    }
    return done;
  }

  isCollapsed(id) { return this.collapsed.has(id); }

  _computeHidden() {
    const store = this.store;
    const hidden = new Map();
    for (const id of [...this.collapsed]) if (!store.isGroup(id)) this.collapsed.delete(id);
    if (this.hostsFirst) {
      for (const id of store.owned.keys()) if (store.isGroup(id) && !this.expanded.has(id)) this.collapsed.add(id);
    }
    if (this.collapsed.size) {
      // the top-most collapsed ancestor of each node, memoized along the ownership chains
      const memo = new Map();
      const topOf = (id, depth) => {
        if (memo.has(id)) return memo.get(id);
        const owner = store.ownerId(id);
        let top;
        if (owner !== undefined && depth < 64) {
          const above = topOf(owner, depth + 1);
          top = above !== undefined ? above : this.collapsed.has(owner) ? owner : undefined;
        }
        memo.set(id, top);
        return top;
      };
      for (const id of store.nodes.keys()) {
        const top = topOf(id, 0);
        if (top !== undefined) hidden.set(id, top);
      }
    }
    this._computeBundles(hidden);
    // hidden nodes keep their offset to the group that hides them (they come back around it)
    for (const [id, top] of hidden) {
      const p = this.points.get(id), g = this.points.get(top);
      if (!p || !g || p.oref === top) continue;
      const ref = p.oref !== undefined && this.points.get(p.oref);
      const x = ref ? ref.x + p.ox : p.x, y = ref ? ref.y + p.oy : p.y;
      p.ox = x - g.x; p.oy = y - g.y; p.oref = top;
    }
    this.hiddenBy = hidden;
  }

  // Leaves of one Type under one visible owner, BUNDLE_MIN or more, fold into a bundle node
  // (`bundle:<owner>:<type>`, a point of the layout only) until the user opens it.
  _computeBundles(hidden) {
    const store = this.store;
    const bundles = new Map();
    if (this.bundling) {
      for (const [owner, kids] of store.owned) {
        if (hidden.has(owner) || this.collapsed.has(owner) || !store.nodes.has(owner) || kids.size < BUNDLE_MIN) continue;
        const byType = new Map();
        for (const c of kids) {
          if (store.isGroup(c) || hidden.has(c)) continue;
          const t = nodeType(store.node(c)) || "other";
          if (!byType.has(t)) byType.set(t, []);
          byType.get(t).push(c);
        }
        for (const [type, members] of byType) {
          const id = `${BUNDLE_PREFIX}${owner}:${type}`;
          if (members.length < BUNDLE_MIN || this.openBundles.has(id)) continue;
          bundles.set(id, { id, owner, type, members });
          for (const c of members) hidden.set(c, id);
        }
      }
    }
    for (const id of [...this.points.keys()]) if (id.startsWith(BUNDLE_PREFIX) && !bundles.has(id)) this.points.delete(id);
    for (const b of bundles.values()) {
      let p = this.points.get(b.id);
      if (!p) {
        // beside its owner, towards where its members were (their centre is often the owner)
        p = new Point(b.id);
        const o = this.points.get(b.owner);
        let x = 0, y = 0;
        for (const c of b.members) { const q = this.points.get(c); x += q.x; y += q.y; }
        x /= b.members.length; y /= b.members.length;
        const dx = x - o.x, dy = y - o.y, d = Math.hypot(dx, dy);
        const a = d > 1 ? Math.atan2(dy, dx) : angleOf(b.id), ring = o.r + 60;
        p.x = o.x + ring * Math.cos(a); p.y = o.y + ring * Math.sin(a);
        this.points.set(b.id, p);
        this._freshBundles.push(p);
      }
      p.r = 15; p.charge = GROUP_CHARGE;
    }
    this.bundles = bundles;
  }

  // the owner of a node or a bundle
  ownerOf(id) {
    const b = this.bundles.get(id);
    return b ? b.owner : this.store.ownerId(id);
  }

  openBundle(id) {
    const b = this.bundles.get(id);
    if (!b) return false;
    this.openBundles.add(id);
    const bp = this.points.get(id);
    this._rebuild();
    const fresh = new Set();
    for (const c of b.members) {
      const p = this.points.get(c);
      if (!p || this.hiddenBy.has(c)) continue;
      if (p.oref === id && bp) { p.x = bp.x + p.ox; p.y = bp.y + p.oy; p.vx = 0; p.vy = 0; p.oref = undefined; }
      if (!p.laid) fresh.add(c);
    }
    if (fresh.size) { this.movable = fresh; this.reheat(0.2); }
    return true;
  }

  _rebuild() {
    const store = this.store;
    this._computeHidden();
    const hidden = this.hiddenBy;
    this.list = [];
    for (const [id, n] of store.nodes) {
      const p = this.points.get(id);
      const group = store.isGroup(id);
      p.r = radiusFor(nodeType(n), group) + (this.collapsed.has(id) ? 3 : 0);
      p.charge = group || nodeType(n) === "host" ? GROUP_CHARGE : CHARGE;
      p.degree = 0;
      if (!hidden.has(id)) this.list.push(p);
    }
    for (const b of this.bundles.values()) { const p = this.points.get(b.id); p.degree = 0; this.list.push(p); }
    this.subtree = this._subtreeSizes();
    const links = [];
    const proxied = new Set();       // links through a collapsed group: one per pair
    for (const e of store.edges.values()) {
      const a = hidden.get(e.Parent) || e.Parent, b = hidden.get(e.Child) || e.Child;
      const s = this.points.get(a), t = this.points.get(b);
      if (!s || !t || s === t) continue;
      if (a !== e.Parent || b !== e.Child) {
        const key = a < b ? a + "|" + b : b + "|" + a;
        if (proxied.has(key)) continue;
        proxied.add(key);
      }
      const r = rel(e);
      let dist, k;
      if (r === OWNERSHIP) {
        const size = this.collapsed.has(b) ? 1 : this.subtree.get(b) || 1;
        dist = s.r + t.r + 18 + 9 * Math.sqrt(size);
        k = 1.0;
      } else if (r === LAYER2) {
        dist = s.r + t.r + 45;
        k = 0.45;
      } else {
        dist = s.r + t.r + 70;
        k = 0.15;
      }
      s.degree++; t.degree++;
      links.push({ s, t, dist, k, strength: 0, bias: 0 });
    }
    for (const l of links) {
      l.strength = l.k / Math.min(l.s.degree, l.t.degree);
      l.bias = l.s.degree / (l.s.degree + l.t.degree);
    }
    this.links = links;
    this._buildGroups();
    // fewer ticks for big graphs: they start from a good hierarchical seed anyway
    const n = this.list.length;
    const ticks = n > 2000 ? 160 : n > 800 ? 220 : 300;
    this.decay = 1 - Math.pow(ALPHA_MIN, 1 / ticks);
  }

  // Groups = nodes owning others. Each has its subtree's points; sibling groups (same owner,
  // or both roots) are kept apart so that their boxes do not overlap.
  _buildGroups() {
    const store = this.store;
    const groups = new Map();          // id -> {members: Point[], cx, cy, r, sx, sy}
    for (const p of this.list) {
      if (store.isGroup(p.id) && !this.collapsed.has(p.id)) {
        groups.set(p.id, { id: p.id, members: [], cx: 0, cy: 0, r: 0, sx: 0, sy: 0 });
      }
    }
    for (const p of this.list) {
      let cur = p.id;
      const seen = new Set();
      while (cur !== undefined && !seen.has(cur)) {
        seen.add(cur);
        const g = groups.get(cur);
        if (g) g.members.push(p);
        cur = this.ownerOf(cur);
      }
    }
    // children of one owner (or roots): the groups among them, and the leaves, which must
    // stay out of their sibling groups' boxes
    const siblings = new Map();        // owner id ("" for roots) -> {groups, leaves}
    for (const p of this.list) {
      const owner = this.ownerOf(p.id);
      const key = owner === undefined ? "" : owner;
      let set = siblings.get(key);
      if (!set) siblings.set(key, set = { groups: [], leaves: [] });
      const g = groups.get(p.id);
      if (g) set.groups.push(g); else set.leaves.push(p);
    }
    this.groups = [...groups.values()];
    this.siblingSets = [...siblings.values()].filter((set) => set.groups.length > 0 &&
      set.groups.length <= MAX_SIBLINGS && set.groups.length * set.leaves.length <= 40000 &&
      (set.groups.length > 1 || set.leaves.length > 0));
  }

  // Sibling group boxes (the renderer draws each group as the bounding box of its subtree)
  // must not overlap: overlapping pairs are pushed apart along their axis of least overlap.
  _separateGroups(alpha) {
    if (!this.siblingSets.length) return;
    for (const g of this.groups) {
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const p of g.members) {
        if (p.x - p.r < x0) x0 = p.x - p.r; if (p.x + p.r > x1) x1 = p.x + p.r;
        if (p.y - p.r < y0) y0 = p.y - p.r; if (p.y + p.r + 14 > y1) y1 = p.y + p.r + 14;
      }
      g.x0 = x0; g.y0 = y0; g.x1 = x1; g.y1 = y1;
      g.sx = 0; g.sy = 0;
    }
    const k = 0.25 + 0.25 * Math.min(1, alpha * 4);
    for (const { groups: set, leaves } of this.siblingSets) {
      for (const g of set) {                                  // leaves out of sibling boxes
        for (const p of leaves) {
          const ox = Math.min(g.x1, p.x + p.r) - Math.max(g.x0, p.x - p.r) + GROUP_PAD / 2;
          if (ox <= 0) continue;
          const oy = Math.min(g.y1, p.y + p.r + 14) - Math.max(g.y0, p.y - p.r) + GROUP_PAD / 2;
          if (oy <= 0) continue;
          if (ox < oy) p.vx += (p.x < (g.x0 + g.x1) / 2 ? -1 : 1) * ox * k;
          else p.vy += (p.y < (g.y0 + g.y1) / 2 ? -1 : 1) * oy * k;
        }
      }
      for (let i = 0; i < set.length; i++) {
        const a = set[i];
        for (let j = i + 1; j < set.length; j++) {
          const b = set[j];
          const ox = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0) + GROUP_PAD;
          if (ox <= 0) continue;
          const oy = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0) + GROUP_PAD;
          if (oy <= 0) continue;
          const wa = b.members.length / (a.members.length + b.members.length);   // lighter moves more
          if (ox < oy) {
            const dir = (a.x0 + a.x1) < (b.x0 + b.x1) ? -1 : 1;
            a.sx += dir * ox * k * wa; b.sx -= dir * ox * k * (1 - wa);
          } else {
            const dir = (a.y0 + a.y1) < (b.y0 + b.y1) ? -1 : 1;
            a.sy += dir * oy * k * wa; b.sy -= dir * oy * k * (1 - wa);
          }
        }
      }
    }
    for (const g of this.groups) {
      if (!g.sx && !g.sy) continue;
      for (const p of g.members) { p.vx += g.sx; p.vy += g.sy; }
    }
  }

  // subtree sizes, computed on demand (a Map-like get()): a rebuild of a 5,000-node graph
  // only asks for the visible owners' children
  _subtreeSizes() {
    const store = this.store, memo = new Map();
    const get = (id, depth = 0) => {
      let v = memo.get(id);
      if (v !== undefined) return v;
      v = 1;
      if (depth < 64) for (const c of store.children(id)) v += get(c, depth + 1);
      memo.set(id, v);
      return v;
    };
    return { get };
  }


  // Initial positions: near the owner (or a neighbour) when it has one, else hierarchically.
  _place(fresh, whole) {
    const store = this.store;
    const freshSet = new Set(fresh.map((p) => p.id));
    const placed = (id) => !freshSet.has(id);
    if (whole || fresh.length > 50) {
      this._seedHierarchy(freshSet);
      return;
    }
    for (const p of fresh) {
      let anchor = null;
      const owner = store.ownerId(p.id);
      if (owner !== undefined && placed(owner)) anchor = this.points.get(owner);
      if (!anchor) {
        for (const eid of store.edgesOf(p.id)) {
          const e = store.edge(eid);
          const other = e.Parent === p.id ? e.Child : e.Parent;
          if (placed(other)) { anchor = this.points.get(other); break; }
        }
      }
      if (!anchor) {
        // a child of another new node: placed after its owner
        for (const c of store.children(p.id)) {
          if (placed(c)) { anchor = this.points.get(c); break; }
        }
      }
      const a = angleOf(p.id);
      if (anchor) {
        const d = anchor.r + p.r + 25 + (anchor.degree || 0) * 2;
        p.x = anchor.x + d * Math.cos(a); p.y = anchor.y + d * Math.sin(a);
      } else {
        const spread = 40 + 15 * Math.sqrt(this.list.length);
        const f = angleOf(p.id + "/r") / (2 * Math.PI);
        p.x = spread * Math.cos(a) * f; p.y = spread * Math.sin(a) * f;
      }
      freshSet.delete(p.id);
    }
  }

  // Radial tree placement of the new nodes: roots on a sunflower spiral sized by their
  // subtree, each owner's children on a ring around it.
  _seedHierarchy(freshSet) {
    const store = this.store;
    const size = this.subtree;
    const radius = (id) => 22 * Math.sqrt(size.get(id) || 1);
    const roots = [];
    for (const id of store.nodes.keys()) if (store.ownerId(id) === undefined) roots.push(id);
    roots.sort((a, b) => (size.get(b) || 1) - (size.get(a) || 1));
    let area = 0;
    const golden = Math.PI * (3 - Math.sqrt(5));
    roots.forEach((id, i) => {
      const p = this.points.get(id);
      const r = radius(id);
      if (freshSet.has(id)) {
        const d = i === 0 ? 0 : Math.sqrt(area / Math.PI) * 1.15 + r;
        p.x = d * Math.cos(i * golden); p.y = d * Math.sin(i * golden);
      }
      area += Math.PI * (r + 20) * (r + 20);
      this._seedChildren(id, freshSet, radius);
    });
  }

  _seedChildren(rootId, freshSet, radius) {
    const store = this.store;
    const stack = [rootId];
    const seen = new Set();
    while (stack.length) {
      const id = stack.pop();
      if (seen.has(id)) continue;
      seen.add(id);
      const kids = [...store.children(id)];
      if (!kids.length) continue;
      const parent = this.points.get(id);
      const ring = Math.max(parent.r + 28, radius(id) * 0.55);
      const start = angleOf(id);
      kids.forEach((c, j) => {
        const p = this.points.get(c);
        if (freshSet.has(c)) {
          const a = start + (2 * Math.PI * j) / kids.length;
          const d = ring + (kids.length > 12 ? (j % 3) * 14 : 0);
          p.x = parent.x + d * Math.cos(a); p.y = parent.y + d * Math.sin(a);
        }
        stack.push(c);
      });
    }
  }

  // Run ticks for at most budgetMs; returns true if anything moved.
  step(budgetMs = 10) {
    if (!this.running || this.list.length === 0) {
      if (this.alpha < ALPHA_MIN || this.ticks >= MAX_TICKS) this.alpha = 0;
      return false;
    }
    const t0 = performance.now();
    let n = 0;
    do {
      this.tick();
      n++;
    } while (this.running && performance.now() - t0 < budgetMs && n < 20);
    this._expireLocal(n);
    this.version++;
    if (!this.running) for (const p of this.list) p.laid = true;     // a settled position
    return true;
  }

  // A node of a local layout moves for LOCAL_TICKS ticks at most (what a local layout of its own
  // takes from alpha 0.3): under a stream of new nodes only the latest ones move, the set stays
  // small (forces for these only), and once they are all laid the layout stops.
  _expireLocal(n) {
    const movable = this.movable;
    if (!movable || this.dragging) return;
    if (this._localOf !== movable) { this._localOf = movable; this._localTicks = new Map(); }
    const counts = this._localTicks;
    for (const id of movable) {
      const c = (counts.get(id) || 0) + n;
      if (c < LOCAL_TICKS) { counts.set(id, c); continue; }
      movable.delete(id);
      counts.delete(id);
      const p = this.points.get(id);
      if (p) { p.vx = 0; p.vy = 0; p.laid = true; }
    }
    if (movable.size === 0) this.alpha = 0;
  }

  // A local layout (a few new nodes, the rest still): forces are computed for the movable
  // points only (the others do not move), against every point.
  _movingPart() {
    const movable = this.movable;
    if (!movable || movable.size * 4 > this.list.length) return null;
    const c = this._part;
    if (c && c.movable === movable && c.size === movable.size && c.list === this.list && c.links === this.links) return c;
    const points = this.list.filter((p) => movable.has(p.id));
    const links = this.links.filter((l) => movable.has(l.s.id) || movable.has(l.t.id));
    this._part = { movable, size: movable.size, list: this.list, links: this.links, points, linksPart: links };
    return this._part;
  }

  tick() {
    const alpha = this.alpha;
    const list = this.list;
    const part = this._movingPart();
    // springs
    for (const l of part ? part.linksPart : this.links) {
      const s = l.s, t = l.t;
      let x = t.x + t.vx - s.x - s.vx, y = t.y + t.vy - s.y - s.vy;
      if (x === 0) x = jiggle();
      if (y === 0) y = jiggle();
      let d = Math.sqrt(x * x + y * y);
      d = (d - l.dist) / d * alpha * l.strength;
      x *= d; y *= d;
      t.vx -= x * l.bias; t.vy -= y * l.bias;
      s.vx += x * (1 - l.bias); s.vy += y * (1 - l.bias);
    }
    // repulsion and collisions
    if (list.length > 1) {
      const root = buildQuadtree(list);
      const stack = this._stack;
      let maxR = 0;
      for (const p of list) if (p.r > maxR) maxR = p.r;
      const moving = part ? part.points : list;
      for (const p of moving) applyCharge(root, p, alpha, stack);
      for (const p of moving) applyCollide(root, p, maxR, stack, !!part);
    }
    this._separateGroups(alpha);
    // gravity and integration
    const g = GRAVITY * alpha;
    const movable = this.movable;
    for (const p of list) {
      if (p.fx !== null || (movable && !movable.has(p.id))) {
        if (p.fx !== null) { p.x = p.fx; p.y = p.fy; }
        p.vx = 0; p.vy = 0;
        continue;
      }
      p.vx -= p.x * g; p.vy -= p.y * g;
      p.vx *= VELOCITY_KEEP; p.vy *= VELOCITY_KEEP;
      p.x += p.vx; p.y += p.vy;
    }
    this.ticks++;
    if (!this.dragging) this.alpha += (0 - this.alpha) * this.decay;
  }

  // Fold groups' ownership subtrees into them (or unfold them), with one rebuild. Hidden
  // nodes remember their offset to the group that hid them and come back around it.
  setCollapsed(id, on) { return this.setCollapsedMany([id], on) > 0; }

  setCollapsedMany(ids, on) {
    const store = this.store;
    for (const id of ids) { if (on) this.expanded.delete(id); else if (store.isGroup(id)) this.expanded.add(id); }
    const todo = ids.filter((id) => this.points.has(id) && store.isGroup(id) && on !== this.collapsed.has(id));
    if (!todo.length) return 0;
    const depth = new Map(todo.map((id) => [id, store.depth(id)]));
    // collapsing: inner groups first (their nodes keep offsets to them); expanding: outer first
    todo.sort((a, b) => on ? depth.get(b) - depth.get(a) : depth.get(a) - depth.get(b));
    const descendants = (id) => {
      const out = [], stack = [...store.children(id)], seen = new Set([id]);
      while (stack.length) {
        const c = stack.pop();
        if (seen.has(c)) continue;
        seen.add(c);
        out.push(c);
        for (const cc of store.children(c)) stack.push(cc);
      }
      return out;
    };
    if (on) {
      for (const id of todo) for (const b of [...this.openBundles]) if (b.startsWith(`${BUNDLE_PREFIX}${id}:`)) this.openBundles.delete(b);
      const assigned = new Set();
      for (const id of todo) {
        const g = this.points.get(id);
        for (const c of descendants(id)) {
          const p = this.points.get(c);
          if (!p || assigned.has(c) || this.hiddenBy.has(c)) continue;
          assigned.add(c);
          p.ox = p.x - g.x; p.oy = p.y - g.y; p.oref = id;
        }
        this.collapsed.add(id);
      }
      this._rebuild();
    } else {
      for (const id of todo) this.collapsed.delete(id);
      this._rebuild();
      for (const id of todo) {
        const g = this.points.get(id);
        for (const c of descendants(id)) {
          const p = this.points.get(c);
          if (!p || this.hiddenBy.has(c) || p.oref === undefined) continue;
          const ref = this.points.get(p.oref) || g;
          p.x = ref.x + p.ox; p.y = ref.y + p.oy; p.vx = 0; p.vy = 0;
          p.oref = undefined;
        }
      }
    }
    // Nodes coming back where they were laid out before stay there: the same picture after a
    // collapse and an expand. Only those never laid out (first expand) move, with their group.
    if (!on) {
      const fresh = new Set();
      for (const id of todo) for (const p of this.list) if (!p.laid && this._under(p.id, id)) fresh.add(p.id);
      for (const p of this._freshBundles) fresh.add(p.id);
      this._freshBundles = [];
      if (fresh.size) {
        for (const id of todo) fresh.add(id);
        this.movable = fresh;
        this.reheat(0.2);
      }
    }
    return todo.length;
  }

  _under(id, top) {
    let cur = this.ownerOf(id);
    const seen = new Set([id]);
    while (cur !== undefined && !seen.has(cur)) { if (cur === top) return true; seen.add(cur); cur = this.ownerOf(cur); }
    return false;
  }

  // Unfold every collapsed ancestor of a node (so that it can be shown).
  reveal(id) {
    let changed = false;
    let top = this.hiddenBy.get(id);
    while (top !== undefined) {
      if (this.bundles.has(top)) changed = this.openBundle(top) || changed;
      else changed = this.setCollapsed(top, false) || changed;
      const next = this.hiddenBy.get(id);
      if (next === top) break;
      top = next;
    }
    return changed;
  }

  // Discard the positions and lay everything out again.
  relayout() {
    this.movable = null;
    for (const p of this.points.values()) { p.fx = null; p.fy = null; p.vx = 0; p.vy = 0; p.oref = undefined; }
    this._rebuild();
    this._seedHierarchy(new Set(this.points.keys()));
    this.reheat(1);
  }

  bounds(ids) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    const pts = ids ? ids.map((id) => this.points.get(id)).filter(Boolean) : this.list;
    for (const p of pts) {
      if (p.x - p.r < x0) x0 = p.x - p.r; if (p.x + p.r > x1) x1 = p.x + p.r;
      if (p.y - p.r < y0) y0 = p.y - p.r; if (p.y + p.r > y1) y1 = p.y + p.r;
    }
    if (x0 === Infinity) return null;
    return { x0, y0, x1, y1 };
  }

  // Dragging: pin the point while it is held; it stays pinned until unpinned.
  dragStart(id) { const p = this.points.get(id); if (!p) return; this.dragging++; this.movable = null; this.alpha = Math.max(this.alpha, 0.1); this.ticks = 0; }
  dragMove(id, x, y) { const p = this.points.get(id); if (p) { p.fx = x; p.fy = y; p.x = x; p.y = y; } }
  dragEnd() { this.dragging = Math.max(0, this.dragging - 1); }
  unpin(id) { const p = this.points.get(id); if (p) { p.fx = null; p.fy = null; this.reheat(0.1); } }
}
