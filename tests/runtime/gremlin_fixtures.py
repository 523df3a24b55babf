"""Graphs shared by the Gremlin tests (real skydive_runtime.graph.Graph objects)."""

from skydive_runtime.graph import Graph


def worked_example_graph():
    """The graph of upstream graffiti/graph/traversal/traversal_test.go (spec §4.5)."""
    g = Graph("h1", "analyzer.h1")
    t = 1_600_000_000_000
    n1 = g.new_node({"Value": 1, "Type": "intf", "Bytes": 1024, "List": ["111", "222"], "Map": {"a": 1}}, id="n1", t=t)
    n2 = g.new_node({"Value": 2, "Type": "intf", "Bytes": 2024, "IPV4": ["10.0.0.1", "10.0.1.2"]}, id="n2", t=t + 1)
    n3 = g.new_node({"Value": 3, "IPV4": "192.168.0.34/24", "MTU": 1500}, id="n3", t=t + 2)
    n4 = g.new_node({"Value": 4, "Name": "Node4", "Bytes": 4024, "IPV4": "192.168.1.34", "Indexes": [5, 6]}, id="n4", t=t + 3)
    g.new_edge(n1, n2, {"Direction": "Left", "Name": "e1"}, id="e1", t=t)
    g.new_edge(n2, n3, {"Direction": "Left", "Name": "e2"}, id="e2", t=t)
    g.new_edge(n3, n4, {"Name": "e3"}, id="e3", t=t)
    g.new_edge(n1, n4, {"Name": "e4"}, id="e4", t=t)
    g.new_edge(n1, n3, {"Mode": "Direct", "Name": "e5"}, id="e5", t=t)
    return g


def ids(value):
    """IDs of a node/edge list result, or lists of IDs for paths."""
    out = []
    for x in value:
        if isinstance(x, list):
            out.append([y["ID"] for y in x])
        else:
            out.append(x["ID"])
    return out
