"""Graph WebSocket endpoints: subscriber, publisher, pubsub and agent topology (graffiti/endpoints).

`mount_graph_ws(app, graph, options, ...)` adds them to an aiohttp application; the analyzer
mounts all four, the agent mounts `/ws/subscriber` and `/ws/publisher` on its own graph.

Every live graph event is serialised once and the same frame is queued on every unfiltered
subscriber. Subscribers with a Gremlin filter are re-evaluated once per loop iteration after a
burst of changes and receive the diff against what they were last sent.
"""

import asyncio
import json
import logging

from ..graph import Edge, Node, SchemaError, validate
from ..graph.elements import MAX_INT
from ..graph.events import GraphListener
from ..graph.metadata import diff_ops
from .query import QueryError, at_query
from .ws import Endpoint, WSServer, envelope

log = logging.getLogger(__name__)

SUBSCRIBER = "/ws/subscriber"
PUBLISHER = "/ws/publisher"
PUBSUB = "/ws/pubsub"
AGENT = "/ws/agent/topology"


def _ops_json(ops):
    out = []
    for op, key, value in ops:
        if op == 2:
            out.append({"Type": 2, "Key": key})
        else:
            out.append({"Type": 1, "Key": key, "Value": value})
    return out


def partial_obj(element, ops):
    return {"ID": element.ID, "UpdatedAt": element.UpdatedAt, "Revision": element.Revision,
            "Ops": _ops_json(ops)}


class Frozen:
    """A copy of an element taken by a query in the worker thread (under graph.lock): what the
    diffs and the frames need, immune to later in-place changes of the live element."""
    __slots__ = ("ID", "Revision", "UpdatedAt", "Metadata", "_dict")

    def __init__(self, element):
        self._dict = json.loads(json.dumps(element.to_dict()))
        self.ID, self.Revision, self.UpdatedAt = element.ID, element.Revision, element.UpdatedAt
        self.Metadata = self._dict.get("Metadata") or {}

    def to_dict(self):
        return self._dict


class GraphBroadcaster(GraphListener):
    """Fans graph events out to the subscribers of every subscribing endpoint."""

    def __init__(self, graph, engine):
        self.graph = graph
        self.engine = engine
        self.subscribers = []
        self.source = None           # the connection whose message is being applied (pubsub: no echo)
        self._dirty = set()
        self._flush_scheduled = False
        self._deleted = {}           # id -> dict of elements deleted since the last flush
        self.frames_built = 0
        self.changes = 0             # graph events so far: tells whether a query result is still current

    # ---- registration ---------------------------------------------------------------------------
    def add(self, conn):
        if conn not in self.subscribers:
            self.subscribers.append(conn)

    def remove(self, conn):
        if conn in self.subscribers:
            self.subscribers.remove(conn)
        self._dirty.discard(conn)

    # ---- listener -----------------------------------------------------------------------------------
    def on_node_added(self, node):
        self._emit("NodeAdded", node, None)

    def on_node_updated(self, node, ops):
        self._emit("NodeUpdated", node, ops)

    def on_node_deleted(self, node):
        self._emit("NodeDeleted", node, None)

    def on_edge_added(self, edge):
        self._emit("EdgeAdded", edge, None)

    def on_edge_updated(self, edge, ops):
        self._emit("EdgeUpdated", edge, ops)

    def on_edge_deleted(self, edge):
        self._emit("EdgeDeleted", edge, None)

    def _emit(self, type_, element, ops):
        self.changes += 1
        if not self.subscribers:
            return
        frame = pframe = None
        deleted = type_.endswith("Deleted")
        for conn in self.subscribers:
            if conn.closed or conn is self.source or not conn.wants("Graph"):
                continue
            st = conn.state
            if st.get("filter"):
                if deleted and element.ID not in self._deleted:
                    self._deleted[element.ID] = element.to_dict()
                self._dirty.add(conn)
                continue
            if ops is not None and conn.update_policy == "partial":
                if pframe is None:
                    pframe = envelope("Graph", type_.replace("Updated", "PartiallyUpdated"),
                                      partial_obj(element, ops))
                conn.send_frame(pframe)
            else:
                if frame is None:
                    frame = envelope("Graph", type_, element.to_dict())
                    self.frames_built += 1
                conn.send_frame(frame)
        if self._dirty and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_event_loop().call_soon(self.flush)

    # ---- filtered subscribers ---------------------------------------------------------------------
    def snapshot(self, conn, nodes, edges):
        """Remember what a filtered subscriber has been sent."""
        partial = conn.update_policy == "partial"
        conn.state["nodes"] = {n.ID: self._mark(n, partial) for n in nodes}
        conn.state["edges"] = {e.ID: self._mark(e, partial) for e in edges}

    @staticmethod
    def _mark(element, partial):
        md = json.loads(json.dumps(element.Metadata)) if partial else None
        return (element.Revision, element.UpdatedAt, md)

    async def subgraph(self, query, at=None):
        """(nodes, edges, changes) of a graph query run off the loop: Frozen copies, and the
        event count they are current for."""
        if at:
            query = at_query(query, at)

        def render(result):
            nodes, edges = self.engine.subgraph_of(query, result)
            return [Frozen(n) for n in nodes], [Frozen(e) for e in edges], self.changes
        return await self.engine.run_off_loop(query, render)

    def catch_up(self, conn, changes):
        """Events came after the result a filtered subscriber was just sent: diff it again."""
        if changes != self.changes:
            self._dirty.add(conn)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_event_loop().call_soon(self.flush)

    def flush(self):
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, set()
        deleted, self._deleted = self._deleted, {}
        for conn in dirty:
            if not conn.closed and conn.state.get("filter"):
                asyncio.ensure_future(self._refresh(conn, conn.state["filter"], deleted))

    async def _refresh(self, conn, flt, deleted):
        try:
            nodes, edges, changes = await self.subgraph(flt)
        except (QueryError, ValueError) as exc:
            log.warning("subscriber %s: filter failed: %s", conn.host_id, exc)
            return
        if conn.closed or conn.state.get("filter") != flt or "nodes" not in conn.state:
            return          # gone, refiltered, or its first snapshot is still being taken
        self._send_diff(conn, nodes, edges, deleted)
        self.catch_up(conn, changes)

    def _send_diff(self, conn, nodes, edges, deleted):
        partial = conn.update_policy == "partial"
        old_nodes = conn.state.get("nodes", {})
        old_edges = conn.state.get("edges", {})
        new_nodes = {n.ID: n for n in nodes}
        new_edges = {e.ID: e for e in edges}

        def gone(eid, kind):
            el = (self.graph.nodes if kind == "node" else self.graph.edges).get(eid)
            return el.to_dict() if el is not None else deleted.get(eid, {"ID": eid})

        send = conn.send
        for eid in old_edges:
            if eid not in new_edges:
                send("Graph", "EdgeDeleted", gone(eid, "edge"))
        for eid in old_nodes:
            if eid not in new_nodes:
                send("Graph", "NodeDeleted", gone(eid, "node"))
        for kind, old, new in (("Node", old_nodes, new_nodes), ("Edge", old_edges, new_edges)):
            for eid, el in new.items():
                prev = old.get(eid)
                if prev is None:
                    send("Graph", kind + "Added", el.to_dict())
                elif prev[0] != el.Revision or prev[1] != el.UpdatedAt:
                    if partial:
                        send("Graph", kind + "PartiallyUpdated", partial_obj(el, diff_ops(prev[2] or {}, el.Metadata)))
                    else:
                        send("Graph", kind + "Updated", el.to_dict())
        self.snapshot(conn, nodes, edges)


class GraphApplier:
    """Applies Graph messages from publishers and agents to the graph (publisher semantics)."""

    def __init__(self, graph, broadcaster, validate_schema=True, force_origin=True, share_nodes=False):
        self.graph = graph
        self.broadcaster = broadcaster
        self.validate_schema = validate_schema
        self.force_origin = force_origin
        # agents: a node ID two agents publish (a switch both see by LLDP) is one node, kept
        # while any of them still publishes it (graph.claim/release)
        self.share_nodes = share_nodes

    def _decode(self, cls, obj, conn):
        el = cls.from_dict(obj)
        if self.validate_schema:
            validate(el)
        if self.force_origin or not el.Origin:
            el.Origin = conn.origin
        return el

    def apply(self, conn, msg):
        type_ = msg.get("Type")
        obj = msg.get("Obj")
        g = self.graph
        prev_source = self.broadcaster.source
        self.broadcaster.source = conn if conn.state.get("no_echo") else None
        try:
            if type_ in ("Sync", "SyncReply"):
                self._sync(conn, obj)
            elif type_ == "NodeAdded":
                node = self._decode(Node, obj, conn)
                if node.ID not in g.nodes:
                    g.add_node(node)
                elif self.share_nodes and g.nodes[node.ID].Origin != node.Origin:
                    g.claim(node.ID, node.Origin)
            elif type_ == "NodeUpdated":
                node = self._decode(Node, obj, conn)
                cur = g.nodes.get(node.ID)
                if cur is None:
                    log.info("publisher %s: NodeUpdated for unknown node %s", conn.host_id, node.ID)
                elif node.Revision > cur.Revision:
                    g.replace_node(node)
            elif type_ == "NodeDeleted":
                eid, deleted_at = self._id_of(obj)
                if eid in g.nodes:
                    g.release(eid, conn.origin if self.share_nodes else None, t=deleted_at)
            elif type_ == "EdgeAdded":
                edge = self._decode(Edge, obj, conn)
                if edge.ID not in g.edges:
                    if edge.Parent in g.nodes and edge.Child in g.nodes:
                        g.add_edge(edge)
                    else:
                        log.info("publisher %s: edge %s has an unknown end", conn.host_id, edge.ID)
            elif type_ == "EdgeUpdated":
                edge = self._decode(Edge, obj, conn)
                cur = g.edges.get(edge.ID)
                if cur is not None and edge.Revision > cur.Revision:
                    g.replace_edge(edge)
            elif type_ == "EdgeDeleted":
                eid, deleted_at = self._id_of(obj)
                if eid in g.edges:
                    g.del_edge(eid, t=deleted_at)
            elif type_ in ("NodePartiallyUpdated", "EdgePartiallyUpdated"):
                self._partial(conn, type_, obj)
            else:
                log.info("publisher %s: unexpected Graph message %r dropped", conn.host_id, type_)
        except (ValueError, SchemaError) as exc:   # decode/schema error: the element is dropped
            log.info("publisher %s: %s dropped: %s", conn.host_id, type_, exc)
        finally:
            self.broadcaster.source = prev_source

    @staticmethod
    def _id_of(obj):
        if not isinstance(obj, dict) or not isinstance(obj.get("ID"), str) or not obj.get("ID"):
            raise ValueError("No ID found for graph element")
        t = obj.get("DeletedAt")
        return obj["ID"], t if isinstance(t, int) and not isinstance(t, bool) and 0 < t < MAX_INT else None

    def _partial(self, conn, type_, obj):
        if not isinstance(obj, dict):
            raise ValueError("partial update must be an object")
        eid = obj.get("ID")
        if not isinstance(eid, str):
            raise ValueError("No ID found for graph element")
        el = (self.graph.nodes if type_.startswith("Node") else self.graph.edges).get(eid)
        if el is None:
            log.info("publisher %s: %s for unknown element %s", conn.host_id, type_, eid)
            return
        rev = obj.get("Revision")
        if not isinstance(rev, int) or isinstance(rev, bool):
            raise ValueError("partial update without a Revision")
        if not 0 < rev < MAX_INT:
            raise ValueError("Revision of %s must be below 2^63-1, got %d" % (eid, rev))
        if rev <= el.Revision:
            return
        changes, deletes = {}, []
        for op in obj.get("Ops") or ():
            if not isinstance(op, dict) or not isinstance(op.get("Key"), str):
                raise ValueError("bad partial update operation %r" % (op,))
            if op.get("Type") == 2:
                deletes.append(op["Key"])
                changes.pop(op["Key"], None)
            else:
                changes[op["Key"]] = op.get("Value")
        t = obj.get("UpdatedAt")
        if not isinstance(t, int) or isinstance(t, bool) or not 0 < t < MAX_INT:
            t = None
        el.Revision = rev - 1            # the graph bumps it back to the publisher's revision
        if not self.graph.update_metadata(el, changes, t=t, deletes=deletes):
            el.Revision = rev

    def _sync(self, conn, obj):
        if not isinstance(obj, dict):
            raise ValueError("Sync object must be {Nodes, Edges}")
        nodes, edges = [], []
        for d in obj.get("Nodes") or ():
            try:
                nodes.append(self._decode(Node, d, conn))
            except (ValueError, SchemaError) as exc:
                log.info("publisher %s: sync node dropped: %s", conn.host_id, exc)
        for d in obj.get("Edges") or ():
            try:
                edges.append(self._decode(Edge, d, conn))
            except (ValueError, SchemaError) as exc:
                log.info("publisher %s: sync edge dropped: %s", conn.host_id, exc)
        self.graph.del_origin(conn.origin)
        self.graph.load(nodes, edges)
        if self.share_nodes:
            for node in nodes:
                cur = self.graph.nodes.get(node.ID)
                if cur is not None and cur is not node:
                    self.graph.claim(node.ID, node.Origin)


class SubscriberEndpoint(Endpoint):
    path = SUBSCRIBER

    def __init__(self, graph, broadcaster, engine, path=SUBSCRIBER):
        self.graph = graph
        self.broadcaster = broadcaster
        self.engine = engine
        self.path = path

    def on_connect(self, conn):
        if conn.gremlin_filter:
            try:
                self.engine.check_graph_query(conn.gremlin_filter)
            except QueryError as exc:
                conn.state["refusal"] = str(exc)
                return False
            conn.state["filter"] = conn.gremlin_filter
            asyncio.ensure_future(self._first_snapshot(conn, conn.gremlin_filter))
        self.broadcaster.add(conn)
        return True

    async def _first_snapshot(self, conn, flt):
        """What a filtered subscriber is taken to have at connect time, computed off the loop."""
        try:
            nodes, edges, changes = await self.broadcaster.subgraph(flt)
        except (QueryError, ValueError) as exc:
            log.info("websocket %s %s refused: %s", self.path, conn.host_id, exc)
            await conn.close(code=1008, message=str(exc)[:120].encode())
            return
        if not conn.closed and conn.state.get("filter") == flt and "nodes" not in conn.state:
            self.broadcaster.snapshot(conn, nodes, edges)
            self.broadcaster.catch_up(conn, changes)

    def on_disconnect(self, conn):
        self.broadcaster.remove(conn)

    def on_message(self, conn, msg):
        if msg.get("Namespace") == "Graph" and msg.get("Type") == "SyncRequest":
            self.sync_request(conn, msg)

    def sync_request(self, conn, msg):
        obj = msg.get("Obj")
        if obj is None:
            obj = {}
        if not isinstance(obj, dict):
            conn.reply(msg, "SyncReply", "invalid SyncRequest object", 400)
            return
        flt = obj.get("GremlinFilter")
        if flt is not None and not isinstance(flt, str):
            conn.reply(msg, "SyncReply", "GremlinFilter must be a string", 400)
            return
        at = obj.get("Time")
        if at is not None and (not isinstance(at, int) or isinstance(at, bool)):
            conn.reply(msg, "SyncReply", "Time must be an integer (ms)", 400)
            return
        new_filter = conn.state.get("filter")
        if flt is not None:
            new_filter = flt or None
        if new_filter or at:     # a query: in the worker thread
            asyncio.ensure_future(self._sync_query(conn, msg, new_filter, at))
            return
        conn.state["filter"] = None
        conn.reply(msg, "SyncReply", {"Nodes": [n.to_dict() for n in self.graph.nodes.values()],
                                      "Edges": [e.to_dict() for e in self.graph.edges.values()]})

    async def _sync_query(self, conn, msg, new_filter, at):
        try:
            nodes, edges, changes = await self.broadcaster.subgraph(new_filter or "G", at=at or None)
        except (QueryError, ValueError) as exc:      # ValueError: an undecodable historical element
            conn.reply(msg, "SyncReply", str(exc), 400)
            return
        if conn.closed:
            return
        conn.state["filter"] = new_filter
        conn.reply(msg, "SyncReply", {"Nodes": [n.to_dict() for n in nodes],
                                      "Edges": [e.to_dict() for e in edges]})
        if new_filter and not at:
            self.broadcaster.snapshot(conn, nodes, edges)
            self.broadcaster.catch_up(conn, changes)


class PublisherEndpoint(Endpoint):
    path = PUBLISHER

    def __init__(self, graph, applier, path=PUBLISHER, auth="api", default_persistence="Persistent"):
        self.graph = graph
        self.applier = applier
        self.path = path
        self.auth = auth
        self.default_persistence = default_persistence

    def on_message(self, conn, msg):
        if msg.get("Namespace") != "Graph":
            return
        if msg.get("Type") == "SyncRequest":
            conn.reply(msg, "SyncReply", self.graph.to_dict())
            return
        self.applier.apply(conn, msg)

    def on_disconnect(self, conn):
        policy = conn.persistence or self.default_persistence
        if policy == "DeleteOnDisconnect" and conn.received_any:
            self.graph.del_origin(conn.origin)


class PubSubEndpoint(SubscriberEndpoint):
    """Publisher and subscriber on one socket; the client's own changes are not echoed back."""

    path = PUBSUB

    def __init__(self, graph, broadcaster, engine, applier):
        SubscriberEndpoint.__init__(self, graph, broadcaster, engine, path=PUBSUB)
        self.publisher = PublisherEndpoint(graph, applier, path=PUBSUB)

    def on_connect(self, conn):
        conn.state["no_echo"] = True
        return SubscriberEndpoint.on_connect(self, conn)

    def on_message(self, conn, msg):
        if msg.get("Namespace") == "Graph" and msg.get("Type") == "SyncRequest":
            self.sync_request(conn, msg)
        else:
            self.publisher.on_message(conn, msg)

    def on_disconnect(self, conn):
        SubscriberEndpoint.on_disconnect(self, conn)
        self.publisher.on_disconnect(conn)


class GraphWS:
    """The graph endpoints of one service, sharing one broadcaster."""

    def __init__(self, server, graph, engine, broadcaster):
        self.server = server
        self.graph = graph
        self.engine = engine
        self.broadcaster = broadcaster

    def subscribers(self):
        return self.broadcaster.subscribers


def mount_graph_ws(app, graph, options, engine, authenticators=None,
                   endpoints=(SUBSCRIBER, PUBLISHER), server=None):
    """Add the graph WebSocket endpoints to app. Returns a GraphWS (its .server is the registry).

    options: ws.WSOptions; engine: query.QueryEngine on the same graph; authenticators:
    {"api": Authenticator, "cluster": Authenticator} (None = no auth).
    """
    server = server or WSServer(options, authenticators)
    broadcaster = GraphBroadcaster(graph, engine)
    graph.add_listener(broadcaster)
    pub_applier = GraphApplier(graph, broadcaster, validate_schema=True, force_origin=True)
    for path in endpoints:
        if path == SUBSCRIBER:
            server.add_endpoint(app, SubscriberEndpoint(graph, broadcaster, engine))
        elif path == PUBLISHER:
            server.add_endpoint(app, PublisherEndpoint(graph, pub_applier))
        elif path == PUBSUB:
            server.add_endpoint(app, PubSubEndpoint(graph, broadcaster, engine, pub_applier))
        elif path == AGENT:
            agent_applier = GraphApplier(graph, broadcaster, validate_schema=False, force_origin=False, share_nodes=True)
            server.add_endpoint(app, PublisherEndpoint(graph, agent_applier, path=AGENT, auth="cluster",
                                                       default_persistence="DeleteOnDisconnect"))
        else:
            raise ValueError("unknown graph websocket endpoint %r" % path)
    return GraphWS(server, graph, engine, broadcaster)
