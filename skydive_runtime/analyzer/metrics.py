"""The analyzer's /metrics (Prometheus text, api/metrics.py): graph, agents, peers, events,
flows, store, queues, captures and master state."""

from ..api import graph_ws
from ..api.metrics import capture_counters, queued_messages
from .election import DUTIES


def analyzer_metrics(a):
    g = a.graph
    srv = a.ws.server
    agents = [c for c in srv.connections(graph_ws.AGENT).values() if c.client_type != "analyzer"]
    fam = [
        ("skydive_graph_nodes", "gauge", "Nodes in the live graph", [({}, len(g.nodes))]),
        ("skydive_graph_edges", "gauge", "Edges in the live graph", [({}, len(g.edges))]),
        ("skydive_graph_events_total", "counter", "Graph events (node/edge added, updated, deleted) applied",
         [({}, a.ws.broadcaster.changes)]),
        ("skydive_agents_connected", "gauge", "Agents linked to this analyzer", [({}, len(agents))]),
        ("skydive_ws_queued_messages", "gauge", "Frames waiting in WebSocket send queues", queued_messages(srv)),
    ]
    rep = a.cluster.replication if a.cluster is not None else None
    if rep is not None:
        fam += [("skydive_peers_connected", "gauge", "Analyzers linked by replication", [({}, len(rep.links))]),
                ("skydive_replication_messages_total", "counter", "Replication messages",
                 [({"direction": "received"}, rep.received), ({"direction": "sent"}, rep.sent)])]
    if a.cluster is not None:
        masters = a.cluster.masters()
        fam.append(("skydive_master", "gauge", "1 when this analyzer is the master of the duty",
                    [({"duty": d}, masters.get(d) == a.host_id) for d in DUTIES]))
    flows = a.flows
    if flows is not None:
        fam += [("skydive_flows_live", "gauge", "Flows in the live flow cache", [({}, len(flows.cache))]),
                ("skydive_flows_received_total", "counter", "Flow updates received (agents and peers)",
                 [({}, flows.cache.received)]),
                ("skydive_flows_stored_total", "counter", "Flow updates written to the flow store", [({}, flows.stored)]),
                ("skydive_flows_dropped_total", "counter", "Flow updates over analyzer.flow.max_buffer_size",
                 [({}, flows.dropped)])]
    received, dropped = capture_counters(g)
    fam += [("skydive_capture_packets_total", "counter", "Packets captured, per capture, over every node", received),
            ("skydive_capture_dropped_total", "counter", "Packets dropped by captures, per capture", dropped)]
    fam += store_metrics(a.store, "topology")
    if flows is not None and flows.store is not None and flows.store is not a.store:
        fam += store_metrics(flows.store, "flow")
    return fam


def store_metrics(store, role):
    if store is None:
        return []
    labels = {"backend": store.name, "role": role}
    fam = [("skydive_store_queue_depth", "gauge", "Store writes queued, not yet applied", [(labels, store.queue_depth())])]
    stats = getattr(store, "stats", {}) or {}
    for key, value in sorted(stats.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            fam.append(("skydive_store_%s_total" % key, "counter", "Store statistic %s (seconds: time spent)" % key,
                        [(labels, value)]))
    return fam
