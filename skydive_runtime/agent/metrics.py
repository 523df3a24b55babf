"""The agent's /metrics (Prometheus text, api/metrics.py): graph, analyzer link, flows sent,
capture packet and drop counters, queues."""

from ..api.metrics import capture_counters, queued_messages


def agent_metrics(agent):
    g = agent.graph
    fam = [("skydive_graph_nodes", "gauge", "Nodes in the agent's graph", [({}, len(g.nodes))]),
           ("skydive_graph_edges", "gauge", "Edges in the agent's graph", [({}, len(g.edges))])]
    fw = agent.forwarder
    if fw is not None:
        fam += [("skydive_analyzer_connected", "gauge", "1 when the link to the analyzer is up",
                 [({"analyzer": link.address}, link.connected) for link in fw.links]),
                ("skydive_analyzer_queue_depth", "gauge", "Graph and flow messages waiting for the analyzer link",
                 [({"analyzer": link.address}, len(link.queue) if link.queue is not None else 0) for link in fw.links]),
                ("skydive_analyzer_messages_sent_total", "counter", "Messages sent to the analyzer",
                 [({"analyzer": link.address}, link.sent) for link in fw.links]),
                ("skydive_analyzer_syncs_total", "counter", "Full graph syncs sent to the analyzer",
                 [({"analyzer": link.address}, link.syncs) for link in fw.links])]
    if agent.captures is not None:
        fam.append(("skydive_flows_sent_total", "counter", "Flow updates sent to the analyzer",
                    [({}, agent.captures.flows_sent)]))
    received, dropped = capture_counters(g, host=agent.host_id)
    fam += [("skydive_capture_packets_total", "counter", "Packets captured, per capture", received),
            ("skydive_capture_dropped_total", "counter", "Packets dropped by captures, per capture", dropped)]
    if agent.ws is not None:
        fam.append(("skydive_ws_queued_messages", "gauge", "Frames waiting in WebSocket send queues",
                    queued_messages(agent.ws.server)))
    return fam
