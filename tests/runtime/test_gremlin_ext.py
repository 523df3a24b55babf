"""Extension registry, topology helper steps (Descendants, Ascendants, Neighbors, NextHop) and
node Metrics() with Aggregates/Sum/Count (spec §4.4)."""

import pytest

from skydive_runtime.graph import Graph
from skydive_runtime.gremlin import (ExtensionStep, GremlinError, ListValue, NodesValue, QueryContext,
                                     Registry, TraversalValue, default_registry, execute, parse)
from skydive_runtime.gremlin.values import dedup_elements, paginate, sort_elements

from .gremlin_fixtures import ids


def run(g, q, registry=None):
    return execute(q, QueryContext(g, registry=registry)).to_json_value()


# ---- registry: a custom value type choosing the core steps that apply to it -----------------
class Item:
    """A non-graph record (like a flow) that element filters can read."""
    __slots__ = ("ID", "Metadata", "Host", "Origin", "CreatedAt", "UpdatedAt", "DeletedAt", "Revision")

    def __init__(self, id, md):
        self.ID, self.Metadata = id, md
        self.Host = self.Origin = ""
        self.CreatedAt = self.UpdatedAt = self.DeletedAt = self.Revision = 0


class ItemsValue(TraversalValue):
    kind = "items"

    def __init__(self, items):
        self.items = items

    def to_json_value(self):
        return [dict(i.Metadata, UUID=i.ID) for i in self.items]

    # the core steps that apply to items
    def step_Has(self, step, state):
        return ItemsValue(paginate(step, (i for i in self.items if step.flt.match(i))))

    def step_Count(self, step, state):
        return ListValue(len(self.items))

    def step_Dedup(self, step, state):
        return ItemsValue(dedup_elements(self.items, step.keys or ["Key"]))

    def step_Sort(self, step, state):
        key = step.explicit_key or "Last"
        return ItemsValue(sort_elements(self.items, key, step.descending))

    def step_Limit(self, step, state):
        return ItemsValue(self.items[step.lo:step.hi])

    # an extension step defined on this value type only
    def step_Owners(self, step, state):
        g = state.ctx.graph
        return NodesValue([g.nodes[i.Metadata["Node"]] for i in self.items if i.Metadata.get("Node") in g.nodes],
                          state_graph(state))


def state_graph(state):
    from skydive_runtime.gremlin.values import GraphValue
    from skydive_runtime.gremlin.view import LiveView
    return GraphValue(LiveView(state.ctx.graph), root=True)


class ItemsStep(ExtensionStep):
    name = "Items"

    def validate(self):
        if self.params:
            raise GremlinError("Items accepts no parameter")

    def exec(self, prev, state):
        from skydive_runtime.gremlin.values import GraphValue
        if isinstance(prev, GraphValue):
            return ItemsValue(list(state.ctx.get("items", [])))
        return ExtensionStep.exec(self, prev, state)


class OwnersStep(ExtensionStep):
    name = "Owners"


@pytest.fixture()
def reg():
    r = Registry(parent=default_registry)
    r.register_step("Items", ItemsStep)
    r.register_step("Owners", OwnersStep)
    return r


@pytest.fixture()
def items_ctx(reg):
    g = Graph()
    g.new_node({"Name": "eth0"}, id="n1")
    items = [Item("f1", {"Key": "a", "Last": 3, "Node": "n1"}), Item("f2", {"Key": "a", "Last": 1}),
             Item("f3", {"Key": "b", "Last": 2, "Node": "nx"})]
    return QueryContext(g, registry=reg, items=items)


def test_extension_steps_on_a_custom_value(items_ctx):
    def q(s):
        return execute(s, items_ctx).to_json_value()
    assert q("G.Items().Count()") == 3
    assert [x["UUID"] for x in q("G.Items().Has('Key', 'a')")] == ["f1", "f2"]
    assert [x["UUID"] for x in q("G.Items().Has('Last', Gt(1)).Limit(1)")] == ["f1"]
    assert [x["UUID"] for x in q("G.Items().Dedup()")] == ["f1", "f3"]
    assert [x["UUID"] for x in q("G.Items().Sort()")] == ["f2", "f3", "f1"]
    assert [x["UUID"] for x in q("G.Items().Sort(DESC, 'Last')")] == ["f1", "f3", "f2"]
    assert ids(q("G.Items().Owners()")) == ["n1"]
    assert q("g.items().owners().count()") == 1


def test_core_steps_not_defined_on_a_custom_value_are_invalid(items_ctx):
    for s, step in [("G.Items().Out()", "Out"), ("G.Items().Values('Key')", "Values"),
                    ("G.Items().SubGraph()", "SubGraph"), ("G.V().Owners()", "Owners")]:
        with pytest.raises(GremlinError, match="Invalid step '%s' on " % step):
            execute(s, items_ctx)


def test_registry_scopes(reg):
    assert parse("G.Items().Count()", registry=reg)
    with pytest.raises(GremlinError, match="Expected step function, got: Items"):
        parse("G.Items()")                       # not in the default registry
    with pytest.raises(GremlinError, match="Items accepts no parameter"):
        parse("G.Items(1)", registry=reg)
    # an empty registry (an agent) knows only the core steps
    with pytest.raises(GremlinError, match="Expected step function, got: Descendants"):
        parse("G.V().Descendants()", registry=Registry())
    assert parse("G.V().Descendants()")


def test_register_conflicts():
    r = Registry()
    with pytest.raises(ValueError):
        r.register_step("Has", ItemsStep)
    with pytest.raises(ValueError):
        r.register_step("regex", ItemsStep)
    with pytest.raises(ValueError):
        r.register_step("bad name", ItemsStep)
    r.register_step("Items", ItemsStep)
    with pytest.raises(ValueError):
        r.register_step("ITEMS", ItemsStep)
    r.register_step("ITEMS", ItemsStep, replace=True)
    r.unregister_step("items")
    with pytest.raises(GremlinError):
        parse("G.Items()", registry=r)


def test_plain_factories_and_their_errors():
    r = Registry()

    class Twice:
        name = None

        def __init__(self, params):
            if params:
                raise ValueError("no params please")

        def exec(self, prev, state):
            return ListValue([x.to_dict()["ID"] for x in prev.items] * 2)

    r.register_step("Twice", lambda params, pos: Twice(params))
    g = Graph()
    g.new_node({}, id="a")
    assert execute("G.V().Twice()", QueryContext(g, registry=r)).to_json_value() == ["a", "a"]
    with pytest.raises(GremlinError, match="Twice: no params please"):
        parse("G.V().Twice(1)", registry=r)


def test_a_parsed_query_is_cached_per_registry_version():
    r = Registry()
    with pytest.raises(GremlinError):
        parse("G.Items()", registry=r)
    r.register_step("Items", ItemsStep)
    assert parse("G.Items()", registry=r) is parse("G.Items()", registry=r)


# ---- topology helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def topo():
    """host -own-> netns -own-> veth1 -l2-> veth0 <-own- host ; host -own-> br0 -l2-> veth0"""
    g = Graph("h1")
    host = g.new_node({"Name": "h1", "Type": "host"}, id="host")
    ns = g.new_node({"Name": "ns1", "Type": "netns"}, id="ns")
    v1 = g.new_node({"Name": "veth1", "Type": "veth"}, id="v1")
    v0 = g.new_node({"Name": "veth0", "Type": "veth"}, id="v0")
    br = g.new_node({"Name": "br0", "Type": "bridge"}, id="br")
    own = {"RelationType": "ownership"}
    g.link(host, ns, own, id="e-host-ns")
    g.link(ns, v1, own, id="e-ns-v1")
    g.link(host, v0, own, id="e-host-v0")
    g.link(host, br, own, id="e-host-br")
    g.link(v1, v0, {"RelationType": "layer2", "Type": "veth"}, id="e-v1-v0")
    g.link(br, v0, {"RelationType": "layer2"}, id="e-br-v0")
    return g


def test_descendants(topo):
    assert ids(run(topo, "G.V('host').Descendants()")) == ["host", "ns", "v0", "br"]
    assert ids(run(topo, "G.V('host').Descendants(2)")) == ["host", "ns", "v0", "br", "v1"]
    assert ids(run(topo, "G.V('host').Descendants(0)")) == ["host", "ns", "v0", "br", "v1"]
    assert ids(run(topo, "G.V('v1').Descendants()")) == ["v1"]
    assert ids(run(topo, "G.V('v1').Descendants('RelationType', 'layer2')")) == ["v1", "v0"]
    assert ids(run(topo, "G.V('ns').Descendants('RelationType', 'layer2', 'RelationType', 'ownership', 3)")) \
        == ["ns", "v1", "v0"]
    with pytest.raises(GremlinError, match="maximum depth"):
        parse("G.V().Descendants('x')")


def test_ascendants(topo):
    assert ids(run(topo, "G.V('v1').Ascendants()")) == ["v1", "ns"]
    assert ids(run(topo, "G.V('v1').Ascendants(0)")) == ["v1", "ns", "host"]
    assert sorted(ids(run(topo, "G.V('v0').Ascendants('RelationType', 'layer2')"))) == ["br", "v0", "v1"]


def test_neighbors(topo):
    assert sorted(ids(run(topo, "G.V('v1').Neighbors()"))) == ["ns", "v0", "v1"]
    assert sorted(ids(run(topo, "G.V('v1').Neighbors(2)"))) == ["br", "host", "ns", "v0", "v1"]
    assert ids(run(topo, "G.V('v1').Neighbors(0)")) == ["v1"]
    assert sorted(ids(run(topo, "G.V('v1').Neighbors('RelationType', 'ownership', 5)"))) == ["br", "host", "ns", "v0", "v1"]
    assert sorted(ids(run(topo, "G.V('v1').Neighbors('Type', 'veth')"))) == ["v0", "v1"]
    assert run(topo, "G.V('v1').Neighbors(2).Count()") == 5


def test_topology_helpers_chain_with_core_steps(topo):
    assert run(topo, "G.V().Has('Type', 'host').Descendants().Has('Type', 'veth').Values('Name')") == ["veth0"]
    sub = run(topo, "G.V('host').Descendants(0).SubGraph()")
    assert len(sub[0]["Nodes"]) == 5 and len(sub[0]["Edges"]) == 6
    with pytest.raises(GremlinError, match="Invalid step 'Descendants' on edges"):
        run(topo, "G.E().Descendants()")


def test_next_hop():
    g = Graph()
    g.new_node({"Name": "ns", "RoutingTables": [
        {"ID": 254, "Src": "10.0.0.2", "Routes": [
            {"Protocol": 2, "Prefix": "10.0.0.0/24", "NextHops": [{"IfIndex": 3}]},
            {"Protocol": 4, "Prefix": "10.1.0.0/16", "NextHops": [{"IP": "10.0.0.254", "IfIndex": 3, "Priority": 10}]},
            {"Protocol": 4, "Prefix": "10.1.2.0/24", "NextHops": [{"IP": "10.0.0.253", "IfIndex": 4}]},
            {"Protocol": 4, "Prefix": "0.0.0.0/0", "NextHops": [{"IP": "10.0.0.1", "IfIndex": 3}]}]}],
        "Neighbors": [{"IP": "10.0.0.1", "MAC": "aa:bb:cc:dd:ee:ff", "State": ["NUD_REACHABLE"]}]}, id="ns")
    g.new_node({"Name": "plain"}, id="plain")
    assert run(g, "G.V().NextHop('10.0.0.7')") == [{"ns": {"IfIndex": 3}}]
    assert run(g, "G.V().NextHop('10.1.5.5')") == [{"ns": {"Priority": 10, "IP": "10.0.0.254", "IfIndex": 3}}]
    assert run(g, "G.V().NextHop('10.1.2.9')") == [{"ns": {"IP": "10.0.0.253", "IfIndex": 4}}]
    assert run(g, "G.V().NextHop('8.8.8.8')") == [{"ns": {"IP": "10.0.0.1", "MAC": "aa:bb:cc:dd:ee:ff", "IfIndex": 3}}]
    assert run(g, "G.V('plain').NextHop('8.8.8.8')") == []
    with pytest.raises(GremlinError, match="valid IP address"):
        parse("G.V().NextHop('nope')")
    with pytest.raises(GremlinError, match="NextHop accepts one parameter"):
        parse("G.V().NextHop()")


# ---- Metrics() on nodes -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def mg():
    g = Graph()
    g.new_node({"Name": "eth0", "LastUpdateMetric": {"RxBytes": 1000, "TxBytes": 10, "RxPackets": 10,
                                                      "Start": 10_000, "Last": 20_000}}, id="a")
    g.new_node({"Name": "eth1", "LastUpdateMetric": {"RxBytes": 400, "TxBytes": 0, "Start": 15_000, "Last": 25_000}}, id="b")
    g.new_node({"Name": "eth2", "SFlow": {"LastUpdateMetric": {"RxBytes": 7, "Start": 1, "Last": 2}}}, id="c")
    g.new_node({"Name": "eth3", "Ovs": {"LastUpdateMetric": {"TxBytes": 5, "Start": 1, "Last": 2}}}, id="d")
    g.new_node({"Name": "lo"}, id="e")
    return g


def test_metrics_shape(mg):
    v = run(mg, "G.V().Metrics()")
    assert isinstance(v, list) and len(v) == 1
    assert list(v[0]) == ["c", "a", "b"]      # sorted by Start
    assert v[0]["a"] == [{"RxBytes": 1000, "TxBytes": 10, "RxPackets": 10, "Start": 10_000, "Last": 20_000}]
    assert v[0]["c"] == [{"RxBytes": 7, "Start": 1, "Last": 2}]     # SFlow fallback
    assert run(mg, "G.V('e').Metrics()") == []
    assert run(mg, "G.V().Metrics('Ovs')") == [{"d": [{"TxBytes": 5, "Start": 1, "Last": 2}]}]
    assert run(mg, "G.V().Metrics('SFlow').Count()") == 1
    assert run(mg, "G.V().Metrics().Count()") == 3


def test_metrics_sum(mg):
    assert run(mg, "G.V().Has('Name', Within('eth0', 'eth1')).Metrics().Sum()") \
        == {"RxBytes": 1400, "TxBytes": 10, "RxPackets": 10, "Start": 10_000, "Last": 25_000}
    assert run(mg, "G.V().Has('Name', Within('eth0', 'eth1')).Metrics().Sum('RxBytes')") == 1400
    assert run(mg, "G.V().Has('Name', 'lo').Metrics().Sum()") is None


def test_metrics_aggregates(mg):
    v = run(mg, "G.V().Has('Name', Within('eth0', 'eth1')).Metrics().Aggregates(5)")
    agg = v[0]["Aggregated"]
    # window [10s, 25s] in 5 s slices: eth0 spreads 250/slice over 10-20s, eth1 200/slice over 15-25s
    assert [(m["Start"], m["Last"]) for m in agg] == [(10_000, 15_000), (15_000, 20_000), (20_000, 25_000)]
    assert [m["RxBytes"] for m in agg] == [500, 500 + 200, 200]
    assert [m.get("TxBytes", 0) for m in agg] == [5, 5, 0]
    assert "TxBytes" not in agg[2]          # omitempty
    assert run(mg, "G.V().Has('Name', Within('eth0', 'eth1')).Metrics().Aggregates(5).Sum('RxBytes')") == 1400
    v = run(mg, "G.V().Has('Name', Within('eth0', 'eth1')).Metrics().Aggregates()")
    assert [m["RxBytes"] for m in v[0]["Aggregated"]] == [1400]
    assert run(mg, "G.V('e').Metrics().Aggregates()") == [{"Aggregated": []}]
    with pytest.raises(GremlinError, match="positive number"):
        parse("G.V().Metrics().Aggregates(0)")
    with pytest.raises(GremlinError, match="Invalid step 'Aggregates' on nodes"):
        run(mg, "G.V().Aggregates()")


def test_metrics_does_not_mutate_the_graph(mg):
    before = {n.ID: repr(n.Metadata) for n in mg.nodes.values()}
    run(mg, "G.V().Metrics().Aggregates(1)")
    run(mg, "G.V().Metrics().Sum()")
    assert {n.ID: repr(n.Metadata) for n in mg.nodes.values()} == before
