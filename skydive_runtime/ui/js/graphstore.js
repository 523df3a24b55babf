// The client-side copy of the (possibly filtered) topology, fed by /ws/subscriber messages.
//
// Every mutation is recorded in a ChangeSet; the renderer and the layout consume the
// accumulated ChangeSet once per animation frame, so a burst of events costs one DOM pass.

export const OWNERSHIP = "ownership";
export const LAYER2 = "layer2";

export class ChangeSet {
  constructor() { this.clear(); }
  clear() {
    this.reset = false;              // the whole graph was replaced (SyncReply)
    this.addedNodes = new Set();
    this.updatedNodes = new Set();
    this.removedNodes = new Set();
    this.addedEdges = new Set();
    this.updatedEdges = new Set();
    this.removedEdges = new Set();
    this.structure = false;          // nodes/edges added or removed (layout must know)
  }
  get empty() {
    return !this.reset && !this.structure && this.updatedNodes.size === 0 && this.updatedEdges.size === 0;
  }
}

// Dotted-key partial update (NodePartiallyUpdated ops): Type 1 = set, 2 = delete.
function applyOps(metadata, ops) {
  for (const op of ops || []) {
    const path = String(op.Key || "").split(".");
    if (!path[0]) continue;
    let obj = metadata;
    for (let i = 0; i < path.length - 1; i++) {
      if (typeof obj[path[i]] !== "object" || obj[path[i]] === null) {
        if (op.Type === 2) { obj = null; break; }
        obj[path[i]] = {};
      }
      obj = obj[path[i]];
    }
    if (!obj) continue;
    const last = path[path.length - 1];
    if (op.Type === 2) delete obj[last];
    else obj[last] = op.Value;
  }
}

export class GraphStore {
  constructor() {
    this.nodes = new Map();        // id -> node JSON
    this.edges = new Map();        // id -> edge JSON
    this.adj = new Map();          // node id -> Set(edge id) (both directions)
    this.ownerOf = new Map();      // child id -> ownership edge id
    this.owned = new Map();        // parent id -> Set(child id)
    this.changes = new ChangeSet();
    this.events = 0;               // messages applied since load
    this._depths = null;
  }

  // ---- queries -----------------------------------------------------------------------------
  node(id) { return this.nodes.get(id); }
  edge(id) { return this.edges.get(id); }
  edgesOf(id) { return this.adj.get(id) || new Set(); }
  ownerId(id) {
    const eid = this.ownerOf.get(id);
    const e = eid && this.edges.get(eid);
    return e ? e.Parent : undefined;
  }
  children(id) { return this.owned.get(id) || new Set(); }
  isGroup(id) { const c = this.owned.get(id); return !!c && c.size > 0; }
  // id -> number of ownership ancestors, for every node; cached until ownership changes
  depths() {
    if (this._depths) return this._depths;
    const d = new Map();
    for (const id of this.nodes.keys()) {
      if (d.has(id)) continue;
      const chain = [];
      const seen = new Set();
      let cur = id;
      while (cur !== undefined && !d.has(cur) && !seen.has(cur)) { seen.add(cur); chain.push(cur); cur = this.ownerId(cur); }
      let base = cur !== undefined && d.has(cur) ? d.get(cur) + 1 : 0;   // a cycle counts as a root
      for (let i = chain.length - 1; i >= 0; i--) d.set(chain[i], base++);
    }
    this._depths = d;
    return d;
  }

  // number of ownership ancestors (0 for a root)
  depth(id) {
    let d = 0;
    let cur = this.ownerId(id);
    const seen = new Set([id]);
    while (cur !== undefined && !seen.has(cur)) { seen.add(cur); d++; cur = this.ownerId(cur); }
    return d;
  }

  takeChanges() {
    const c = this.changes;
    this.changes = new ChangeSet();
    return c;
  }

  // ---- mutations ---------------------------------------------------------------------------
  reset(nodes, edges) {
    this.nodes.clear(); this.edges.clear(); this.adj.clear(); this.ownerOf.clear(); this.owned.clear();
    this.changes.clear();
    this.changes.reset = true;
    this.changes.structure = true;
    for (const n of nodes || []) this._putNode(n);
    for (const e of edges || []) this._putEdge(e);
  }

  addNode(n) {
    if (!n || typeof n.ID !== "string") return;
    if (this.nodes.has(n.ID)) { this.updateNode(n); return; }
    this._putNode(n);
    this.changes.removedNodes.delete(n.ID);
    this.changes.addedNodes.add(n.ID);
    this.changes.structure = true;
  }

  updateNode(n) {
    if (!n || !this.nodes.has(n.ID)) { this.addNode(n); return; }
    const cur = this.nodes.get(n.ID);
    Object.assign(cur, n);
    if (!cur.Metadata) cur.Metadata = {};
    if (!this.changes.addedNodes.has(n.ID)) this.changes.updatedNodes.add(n.ID);
  }

  partialUpdateNode(obj) {
    const cur = obj && this.nodes.get(obj.ID);
    if (!cur) return;
    applyOps(cur.Metadata, obj.Ops);
    if (obj.UpdatedAt !== undefined) cur.UpdatedAt = obj.UpdatedAt;
    if (obj.Revision !== undefined) cur.Revision = obj.Revision;
    if (!this.changes.addedNodes.has(cur.ID)) this.changes.updatedNodes.add(cur.ID);
  }

  deleteNode(id) {
    if (typeof id === "object" && id) id = id.ID;
    if (!this.nodes.has(id)) return;
    for (const eid of [...this.edgesOf(id)]) this.deleteEdge(eid);
    this.nodes.delete(id);
    this._depths = null;
    this.adj.delete(id);
    this.owned.delete(id);
    const c = this.changes;
    c.updatedNodes.delete(id);
    if (c.addedNodes.has(id)) c.addedNodes.delete(id);
    else c.removedNodes.add(id);
    c.structure = true;
  }

  addEdge(e) {
    if (!e || typeof e.ID !== "string") return;
    if (this.edges.has(e.ID)) { this.updateEdge(e); return; }
    if (!this.nodes.has(e.Parent) || !this.nodes.has(e.Child)) return;   // dangling: ignored
    this._putEdge(e);
    this.changes.removedEdges.delete(e.ID);
    this.changes.addedEdges.add(e.ID);
    this.changes.structure = true;
  }

  updateEdge(e) {
    if (!e || !this.edges.has(e.ID)) { this.addEdge(e); return; }
    const cur = this.edges.get(e.ID);
    const relBefore = rel(cur);
    if (e.Parent !== cur.Parent || e.Child !== cur.Child) {   // endpoints changed: re-insert
      this.deleteEdge(e.ID);
      this.addEdge(e);
      return;
    }
    Object.assign(cur, e);
    if (!cur.Metadata) cur.Metadata = {};
    if (relBefore !== rel(cur)) {
      this._unindexOwnership(cur, relBefore);
      this._indexOwnership(cur);
      this.changes.structure = true;
    }
    if (!this.changes.addedEdges.has(e.ID)) this.changes.updatedEdges.add(e.ID);
  }

  partialUpdateEdge(obj) {
    const cur = obj && this.edges.get(obj.ID);
    if (!cur) return;
    const relBefore = rel(cur);
    applyOps(cur.Metadata, obj.Ops);
    if (obj.UpdatedAt !== undefined) cur.UpdatedAt = obj.UpdatedAt;
    if (obj.Revision !== undefined) cur.Revision = obj.Revision;
    if (relBefore !== rel(cur)) {
      this._unindexOwnership(cur, relBefore);
      this._indexOwnership(cur);
      this.changes.structure = true;
    }
    if (!this.changes.addedEdges.has(cur.ID)) this.changes.updatedEdges.add(cur.ID);
  }

  deleteEdge(id) {
    if (typeof id === "object" && id) id = id.ID;
    const e = this.edges.get(id);
    if (!e) return;
    this.edges.delete(id);
    const a = this.adj.get(e.Parent); if (a) a.delete(id);
    const b = this.adj.get(e.Child); if (b) b.delete(id);
    this._unindexOwnership(e, rel(e));
    const c = this.changes;
    c.updatedEdges.delete(id);
    if (c.addedEdges.has(id)) c.addedEdges.delete(id);
    else c.removedEdges.add(id);
    c.structure = true;
  }

  // ---- websocket message dispatch -----------------------------------------------------------
  apply(msg) {
    const o = msg.Obj;
    this.events++;
    switch (msg.Type) {
      case "NodeAdded": this.addNode(o); break;
      case "NodeUpdated": this.updateNode(o); break;
      case "NodePartiallyUpdated": this.partialUpdateNode(o); break;
      case "NodeDeleted": this.deleteNode(o); break;
      case "EdgeAdded": this.addEdge(o); break;
      case "EdgeUpdated": this.updateEdge(o); break;
      case "EdgePartiallyUpdated": this.partialUpdateEdge(o); break;
      case "EdgeDeleted": this.deleteEdge(o); break;
      case "SyncReply": case "Sync":
        if (o && typeof o === "object") this.reset(o.Nodes, o.Edges);
        break;
      default: this.events--; return false;
    }
    return true;
  }

  // ---- internals ---------------------------------------------------------------------------
  _putNode(n) {
    this._depths = null;
    if (!n.Metadata || typeof n.Metadata !== "object") n.Metadata = {};
    this.nodes.set(n.ID, n);
    if (!this.adj.has(n.ID)) this.adj.set(n.ID, new Set());
  }

  _putEdge(e) {
    if (!this.nodes.has(e.Parent) || !this.nodes.has(e.Child)) return;
    if (!e.Metadata || typeof e.Metadata !== "object") e.Metadata = {};
    this.edges.set(e.ID, e);
    this.adj.get(e.Parent).add(e.ID);
    this.adj.get(e.Child).add(e.ID);
    this._indexOwnership(e);
  }

  _indexOwnership(e) {
    if (rel(e) !== OWNERSHIP || e.Parent === e.Child) return;
    this._depths = null;
    const prev = this.ownerId(e.Child);           // a node has at most one owner: the latest wins
    if (prev !== undefined && prev !== e.Parent) {
      const ps = this.owned.get(prev);
      if (ps) ps.delete(e.Child);
    }
    this.ownerOf.set(e.Child, e.ID);
    let s = this.owned.get(e.Parent);
    if (!s) this.owned.set(e.Parent, s = new Set());
    s.add(e.Child);
  }

  _unindexOwnership(e, relation) {
    if (relation !== OWNERSHIP) return;
    this._depths = null;
    if (this.ownerOf.get(e.Child) === e.ID) this.ownerOf.delete(e.Child);
    if (this.ownerId(e.Child) !== e.Parent) {
      const s = this.owned.get(e.Parent);
      if (s) s.delete(e.Child);
    }
  }
}

export function rel(e) {
  return (e && e.Metadata && e.Metadata.RelationType) || "";
}
