"""The graph engine: revisions, events, indexes, ownership, dotted keys and list matching."""

import pytest

from skydive_runtime.graph import Edge, Graph, GraphError, GraphListener, Node, SchemaError, validate
from skydive_runtime.graph.filters import (
    NE, NEE, Between, FilterError, Inside, Ipv4Range, Regex, Within, filter_from_pairs)


class Recorder(GraphListener):
    def __init__(self):
        self.events = []

    def on_node_added(self, node):
        self.events.append(("NodeAdded", node.ID))

    def on_node_updated(self, node, ops):
        self.events.append(("NodeUpdated", node.ID, tuple(ops)))

    def on_node_deleted(self, node):
        self.events.append(("NodeDeleted", node.ID))

    def on_edge_added(self, edge):
        self.events.append(("EdgeAdded", edge.ID))

    def on_edge_deleted(self, edge):
        self.events.append(("EdgeDeleted", edge.ID))


@pytest.fixture
def g():
    return Graph("h1", "analyzer.h1")


def test_node_json_matches_upstream(g):
    n = g.new_node({"Name": "eth0", "Type": "veth"}, id="n1")
    d = n.to_dict()
    assert list(d) == ["ID", "Metadata", "Host", "Origin", "CreatedAt", "UpdatedAt", "DeletedAt", "Revision"]
    assert d["DeletedAt"] is None and d["Revision"] == 1 and d["Host"] == "h1"
    assert isinstance(d["CreatedAt"], int) and d["CreatedAt"] > 1_500_000_000_000


def test_decode_normalises_numbers_and_rejects_bad_fields():
    n = Node.from_dict({"ID": "x", "Metadata": {"MTU": 1500.0, "Ratio": 0.5}, "Host": "h"})
    assert n.Metadata["MTU"] == 1500 and isinstance(n.Metadata["MTU"], int)
    assert n.CreatedAt > 0 and n.UpdatedAt > 0
    with pytest.raises(ValueError, match="No ID"):
        Node.from_dict({"Metadata": {}})
    with pytest.raises(ValueError, match="parent ID wrong format"):
        Edge.from_dict({"ID": "e", "Child": "b"})
    with pytest.raises(ValueError, match="Revision"):
        Node.from_dict({"ID": "x", "Revision": "two"})


def test_revision_bumps_and_partial_ops(g):
    rec = Recorder()
    g.add_listener(rec)
    n = g.new_node({"Name": "a", "Type": "t"})
    assert g.add_metadata(n, "Ovs.Port", 3)
    assert n.Revision == 2 and n.Metadata["Ovs"] == {"Port": 3}
    assert not g.add_metadata(n, "Ovs.Port", 3), "no change, no revision"
    assert n.Revision == 2
    g.update_metadata(n, {"MTU": 1500}, deletes=("Ovs",))
    assert n.Revision == 3
    assert rec.events[-1] == ("NodeUpdated", n.ID, ((1, "MTU", 1500), (2, "Ovs", None)))
    g.set_metadata(n, {"Name": "a", "Type": "t", "MTU": 9000})
    assert rec.events[-1][2] == ((1, "MTU", 9000),)


def test_delete_node_removes_edges_first(g):
    rec = Recorder()
    a, b, c = (g.new_node({"Name": x, "Type": "t"}) for x in "abc")
    g.link(a, b, {"RelationType": "ownership"})
    g.link(c, a, {"RelationType": "layer2"})
    g.add_listener(rec)
    g.del_node(a)
    kinds = [e[0] for e in rec.events]
    assert kinds == ["EdgeDeleted", "EdgeDeleted", "NodeDeleted"]
    assert not g.edges and set(g.nodes) == {b.ID, c.ID}
    assert a.DeletedAt > 0


def test_node_shared_by_two_origins(g):
    """A node two agents publish (graph.claim) stays until the last one releases it, whichever
    way (its own delete, the origin's disconnect)."""
    sw = g.new_node({"Name": "tor", "Type": "switch"}, id="sw", origin="agent.a")
    g.claim("sw", "agent.b")
    assert g.release("sw", "agent.a") is False and g.nodes["sw"].Origin == "agent.b" and not g.claims
    assert g.release("sw", "agent.b") is True and "sw" not in g.nodes
    sw = g.new_node({"Name": "tor", "Type": "switch"}, id="sw", origin="agent.a")
    g.claim("sw", "agent.b")
    g.claim("sw", "agent.c")
    g.del_origin("agent.b")                       # not its Origin: only the claim goes
    assert "sw" in g.nodes and g.claims["sw"] == {"agent.a", "agent.c"}
    g.del_origin("agent.a")
    assert g.nodes["sw"].Origin == "agent.c"
    g.del_origin("agent.c")
    assert "sw" not in g.nodes and not g.claims
    g.new_node({"Name": "tor", "Type": "switch"}, id="sw", origin="agent.a")
    g.claim("sw", "agent.b")
    assert g.release("sw", None) is True and not g.claims     # not an agent's claim: deleted


def test_ownership_is_unique_per_child(g):
    a, b, c = (g.new_node({"Name": x, "Type": "t"}) for x in "abc")
    g.link(a, c, {"RelationType": "ownership"})
    g.link(b, c, {"RelationType": "ownership"})
    owners = g.parents(c, filter_from_pairs("RelationType", "ownership"))
    assert owners == [b]
    # layer2 links are not unique
    g.link(a, c, {"RelationType": "layer2"})
    g.link(b, c, {"RelationType": "layer2"})
    assert len(g.in_edges(c)) == 3


def test_link_ids_are_deterministic_and_conflicts_refused(g):
    a, b = g.new_node({"Name": "a", "Type": "t"}), g.new_node({"Name": "b", "Type": "t"})
    e1 = g.link(a, b, {"RelationType": "layer2"})
    assert g.link(a, b, {"RelationType": "layer2"}) is e1
    with pytest.raises(GraphError, match="Edge ID conflict"):
        g.add_edge(Edge(e1.ID, a.ID, b.ID, {"RelationType": "x"}))
    with pytest.raises(GraphError, match="Parent node not found"):
        g.add_edge(Edge("e2", "nope", b.ID, {"RelationType": "x"}))
    with pytest.raises(GraphError, match="Node ID conflict"):
        g.add_node(Node(a.ID, {}))


def test_index_follows_updates(g):
    n = g.new_node({"Name": "eth0", "Type": "veth", "IPV4": ["10.0.0.1/24"]})
    f = filter_from_pairs("Name", "eth0")
    assert g.lookup_nodes(f) == [n]
    g.add_metadata(n, "Name", "eth1")
    assert g.lookup_nodes(f) == []
    assert g.lookup_nodes(filter_from_pairs("Name", "eth1")) == [n]
    assert g.lookup_nodes(filter_from_pairs("IPV4", "10.0.0.1/24")) == [n]
    assert g.lookup_nodes(filter_from_pairs("IPV4", "10.0.0.1")) == [], "a bare IP does not match the CIDR"
    g.del_node(n)
    assert g.lookup_nodes(filter_from_pairs("Name", "eth1")) == []
    assert g.node_index.candidates([("Name", "eth1")]) == ()


def test_dotted_keys_lists_and_special_getters(g):
    n = g.new_node({"Name": "n", "Type": "t", "Captures": [{"ID": "c1", "State": "active"}, {"ID": "c2"}],
                    "Neutron": {"IPV4": ["10.1.0.2/24"]}, "Flag": True, "Count": 1}, host="hx")
    assert g.lookup_nodes(filter_from_pairs("Captures.ID", "c2")) == [n]
    assert g.lookup_nodes(filter_from_pairs("Metadata.Neutron.IPV4", Ipv4Range("10.1.0.0/16"))) == [n]
    assert g.lookup_nodes(filter_from_pairs("@Host", "hx")) == [n]
    assert g.lookup_nodes(filter_from_pairs("Captures.ID", NEE("c3"))) == [n]
    assert g.lookup_nodes(filter_from_pairs("Missing", NEE("x"))) == [n]
    assert g.lookup_nodes(filter_from_pairs("Missing", NE("x"))) == []
    # bool and int do not mix
    assert g.lookup_nodes(filter_from_pairs("Flag", 1)) == []
    assert g.lookup_nodes(filter_from_pairs("Count", True)) == []
    assert g.lookup_nodes(filter_from_pairs("Count", 1.0)) == [n]


def test_predicates_boundaries():
    assert Between(1, 3).match(1) and not Between(1, 3).match(3)
    assert not Inside(1, 3).match(1) and Inside(1, 3).match(2)
    assert Within(1, "a").match(1.0) and not Within(1, "a").match("b")
    assert Regex("et.*").match("eth0") and not Regex("th").match("eth0")
    with pytest.raises(FilterError):
        Regex("^eth")
    with pytest.raises(FilterError):
        Ipv4Range("10.0.0.0/99")


def test_schema():
    validate(Node("a", {"Name": "a", "Type": "host"}))
    with pytest.raises(SchemaError, match="Type"):
        validate(Node("a", {"Name": "a"}))
    with pytest.raises(SchemaError, match="Path"):
        validate(Node("a", {"Name": "a", "Type": "netns"}))
    with pytest.raises(SchemaError, match="UUID"):
        validate(Node("a", {"Name": "a", "Type": "ovsport"}))
    with pytest.raises(SchemaError, match="RelationType"):
        validate(Edge("e", "a", "b", {}))


def test_failing_listener_does_not_break_graph(g):
    class Broken(GraphListener):
        def on_node_added(self, node):
            raise RuntimeError("boom")
    rec = Recorder()
    g.add_listener(Broken())
    g.add_listener(rec)
    n = g.new_node({"Name": "a", "Type": "t"})
    assert n.ID in g.nodes and rec.events == [("NodeAdded", n.ID)]


def test_del_origin_and_roundtrip(g):
    a = g.new_node({"Name": "a", "Type": "t"}, origin="agent.x")
    b = g.new_node({"Name": "b", "Type": "t"}, origin="agent.y")
    g.link(b, a, {"RelationType": "ownership"})
    copy = Graph.from_dict(g.to_dict())
    assert set(copy.nodes) == {a.ID, b.ID} and len(copy.edges) == 1
    g.del_origin("agent.x")
    assert set(g.nodes) == {b.ID} and not g.edges
