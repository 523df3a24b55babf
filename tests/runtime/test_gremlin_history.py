"""History: G.At(t) / G.At(t, d) / G.Context(...) (spec §3.4, §4.2) against an in-test history
provider that archives real skydive_runtime.graph revisions as the graph changes."""

import email.utils

import pytest

from skydive_runtime.graph import Graph
from skydive_runtime.gremlin import GremlinError, HistoryProvider, QueryContext, execute, parse

from .gremlin_fixtures import ids

T0 = 1_700_000_000_000          # ms


class ArchivingHistory:
    """Records every revision of a live Graph (a listener), answers the HistoryProvider protocol."""

    def __init__(self, graph):
        self.revs = []           # [element copy, archived_at or None]
        self.current = {}        # id -> entry
        graph.add_listener(self)
        for n in graph.nodes.values():
            self._record(n)
        for e in graph.edges.values():
            self._record(e)

    def _record(self, el):
        entry = [el.copy(), None]
        self.revs.append(entry)
        self.current[(el.kind, el.ID)] = entry

    def _archive(self, el):
        entry = self.current.get((el.kind, el.ID))
        if entry is not None:
            entry[1] = el.UpdatedAt
        self._record(el)

    def _delete(self, el):
        entry = self.current.pop((el.kind, el.ID), None)
        if entry is not None:
            entry[0].DeletedAt = el.DeletedAt

    def on_node_added(self, n):
        self._record(n)

    def on_edge_added(self, e):
        self._record(e)

    def on_node_updated(self, n, ops):
        self._archive(n)

    def on_edge_updated(self, e, ops):
        self._archive(e)

    def on_node_deleted(self, n):
        self._delete(n)

    def on_edge_deleted(self, e):
        self._delete(e)

    @staticmethod
    def _alive(entry, start, end):
        el, archived = entry
        return (el.CreatedAt <= end and (not el.DeletedAt or el.DeletedAt > start)
                and el.UpdatedAt <= end and (archived is None or archived > start))

    def graph_at(self, t_ms):
        best = {}
        for entry in self.revs:
            if self._alive(entry, t_ms, t_ms):
                el = entry[0]
                k = (el.kind, el.ID)
                if k not in best or best[k].Revision < el.Revision:
                    best[k] = el
        g = Graph("h1")
        g.load([e.copy() for e in best.values() if e.kind == "node"],
               [e.copy() for e in best.values() if e.kind == "edge"])
        return g

    def revisions_between(self, start_ms, end_ms):
        alive = [e[0] for e in self.revs if self._alive(e, start_ms, end_ms)]
        return ([e.copy() for e in alive if e.kind == "node"],
                [e.copy() for e in alive if e.kind == "edge"])


class NoHistory:
    def graph_at(self, t_ms):
        raise RuntimeError("Backend does not support history")

    def revisions_between(self, start_ms, end_ms):
        raise RuntimeError("Backend does not support history")


@pytest.fixture()
def hist():
    """host -> eth0 at T0; eth0 renamed at T0+10s; eth1 added at T0+20s; eth0 deleted at T0+30s."""
    g = Graph("h1", "analyzer.h1")
    h = ArchivingHistory(g)
    host = g.new_node({"Name": "h1", "Type": "host"}, id="host", t=T0)
    eth0 = g.new_node({"Name": "eth0", "Type": "device", "MTU": 1500}, id="eth0", t=T0)
    g.link(host, eth0, {"RelationType": "ownership"}, id="own0", t=T0)
    g.update_metadata(eth0, {"Name": "eth0-renamed"}, t=T0 + 10_000)
    eth1 = g.new_node({"Name": "eth1", "Type": "device"}, id="eth1", t=T0 + 20_000)
    g.link(host, eth1, {"RelationType": "ownership"}, id="own1", t=T0 + 20_000)
    g.del_node(eth0, t=T0 + 30_000)
    return g, h


def q(g, h, query, now=T0 + 60_000):
    return execute(query, QueryContext(g, history=h, now=lambda: now)).to_json_value()


def test_provider_satisfies_the_protocol(hist):
    assert isinstance(hist[1], HistoryProvider)


def test_time_point_returns_the_old_revision(hist):
    g, h = hist
    # live: eth0 is gone
    assert sorted(ids(q(g, h, "G.V()"))) == ["eth1", "host"]
    # at T0+5s (int ms > 2^31): the first revision of eth0
    v = q(g, h, "G.At(%d).V('eth0')" % (T0 + 5000))
    assert v[0]["Metadata"]["Name"] == "eth0" and v[0]["Revision"] == 1
    # at T0+15s (int seconds <= 2^31): renamed, revision 2; eth1 not there yet
    v = q(g, h, "G.At(%d).V()" % ((T0 + 15000) // 1000))
    assert sorted(ids(v)) == ["eth0", "host"]
    assert [n["Metadata"]["Name"] for n in v if n["ID"] == "eth0"] == ["eth0-renamed"]
    assert q(g, h, "G.At(%d).V().Has('Name', 'eth0').Count()" % (T0 + 15000)) == 0
    # at T0+25s: eth0 and eth1 both alive, with their ownership edges
    assert sorted(ids(q(g, h, "G.At(%d).V('host').Out()" % (T0 + 25000)))) == ["eth0", "eth1"]
    # before creation: nothing
    assert q(g, h, "G.At(%d)" % (T0 - 1)) == [{"Nodes": None, "Edges": None}]


def test_time_point_result_is_a_graph(hist):
    g, h = hist
    v = q(g, h, "G.At(%d)" % (T0 + 5000))
    assert sorted(n["ID"] for n in v[0]["Nodes"]) == ["eth0", "host"]
    assert [e["ID"] for e in v[0]["Edges"]] == ["own0"]
    assert parse("G.At(1)").returns_graph


def test_context_is_at(hist):
    g, h = hist
    assert q(g, h, "G.Context(%d).V().Count()" % (T0 + 5000)) == 2
    assert q(g, h, "g.at(%d).v().count()" % (T0 + 5000)) == 2


def test_relative_duration_and_now(hist):
    g, h = hist
    now = T0 + 15_000
    assert q(g, h, "G.At('-10s').V('eth0').Values('Name')", now=now) == ["eth0"]
    assert q(g, h, "G.At('-1s').V('eth0').Values('Name')", now=now) == ["eth0-renamed"]
    assert q(g, h, "G.At(NOW).V().Count()", now=now) == 2
    assert q(g, h, "G.At('0s').V().Count()", now=now) == 2


def test_rfc1123_time(hist):
    g, h = hist
    t = email.utils.formatdate((T0 + 5000) / 1000, usegmt=True)     # 'Tue, 14 Nov 2023 22:13:25 GMT'
    assert q(g, h, "G.At('%s').V('eth0').Values('Name')" % t) == ["eth0"]
    t = email.utils.formatdate((T0 + 15000) / 1000, usegmt=True).replace("GMT", "UTC")
    assert q(g, h, "G.At(\"%s\").V('eth0').Values('Name')" % t) == ["eth0-renamed"]


def test_slice_returns_every_revision(hist):
    g, h = hist
    # [T0, T0+40s]: eth0 rev 1 and rev 2, host, eth1
    v = q(g, h, "G.At(%d, 40).V()" % (T0 + 40000))
    assert sorted((n["ID"], n["Revision"]) for n in v) == [("eth0", 1), ("eth0", 2), ("eth1", 1), ("host", 1)]
    assert q(g, h, "G.At(%d, 40).V('eth0').Count()" % (T0 + 40000)) == 1
    assert q(g, h, "G.At(%d, 40).V().Has('@ID', 'eth0').Count()" % (T0 + 40000)) == 2
    assert q(g, h, "G.At(%d, 40).V().Has('@ID', 'eth0').Dedup().Count()" % (T0 + 40000)) == 1
    # window [T0+12s, T0+40s] excludes rev 1 (archived at T0+10s)
    v = q(g, h, "G.At(%d, '28s').V().Has('@ID', 'eth0')" % (T0 + 40000))
    assert [(n["Revision"], n["Metadata"]["Name"]) for n in v] == [(2, "eth0-renamed")]
    # the deleted revision carries its DeletedAt
    assert v[0]["DeletedAt"] == T0 + 30000


def test_slice_adjacency_goes_by_id(hist):
    g, h = hist
    children = q(g, h, "G.At(%d, 40).V('host').Out()" % (T0 + 40000))
    assert sorted((n["ID"], n["Revision"]) for n in children) == [("eth0", 1), ("eth0", 2), ("eth1", 1)]
    assert q(g, h, "G.At(%d, 40).V().Has('Name', 'eth0').In().Values('Name')" % (T0 + 40000)) == ["h1"]
    sub = q(g, h, "G.At(%d, 40).V().Has('Type', 'device').SubGraph()" % (T0 + 40000))
    assert len(sub[0]["Nodes"]) == 3 and sub[0]["Edges"] is None


def test_slice_forever(hist):
    g, h = hist
    assert q(g, h, "G.At(NOW, FOREVER).V().Count()") == 4
    assert q(g, h, "G.At('-1m', FOREVER).V().Count()", now=T0 + 5000) == 0
    assert q(g, h, "G.At('-0s', FOREVER).V().Count()", now=T0 + 5000) == 2


def test_no_provider_is_refused(hist):
    g, _ = hist
    for query in ("G.At('-1m')", "G.Context(NOW, 60)", "G.At(1).V()"):
        with pytest.raises(GremlinError, match="Backend does not support history"):
            execute(query, QueryContext(g))


def test_provider_errors_become_gremlin_errors(hist):
    g, _ = hist
    with pytest.raises(GremlinError, match="Backend does not support history"):
        execute("G.At('-1m', 60)", QueryContext(g, history=NoHistory()))


def test_at_only_on_the_root_graph(hist):
    g, h = hist
    with pytest.raises(GremlinError, match="Invalid step 'Context' on nodes"):
        q(g, h, "G.V().At('-1m')")
    with pytest.raises(GremlinError, match="only valid right after G"):
        q(g, h, "G.V().SubGraph().At('-1m')")
    assert q(g, h, "G.At(%d).At(%d).V().Count()" % (T0 + 5000, T0 + 25000)) == 3


def test_metrics_in_a_slice():
    g = Graph("h1")
    h = ArchivingHistory(g)
    n = g.new_node({"Name": "eth0", "Type": "device"}, id="eth0", t=T0)
    for i in range(1, 4):
        start, last = T0 + (i - 1) * 10_000, T0 + i * 10_000
        g.update_metadata(n, {"LastUpdateMetric": {"RxBytes": 100 * i, "Start": start, "Last": last}}, t=last)
    ctx = QueryContext(g, history=h, now=lambda: T0 + 60_000)
    v = execute("G.At(%d, 40).V().Metrics()" % (T0 + 35000), ctx).to_json_value()
    # node revisions 2..4 carry three metrics; strictly inside [T0-5s, T0+35s]
    assert [m["RxBytes"] for m in v[0]["eth0"]] == [100, 200, 300]
    v = execute("G.At(%d, 40).V().Has('@ID', 'eth0').Metrics().Sum()" % (T0 + 35000), ctx).to_json_value()
    assert v == {"RxBytes": 600, "Start": T0, "Last": T0 + 30000}
    v = execute("G.At(%d, 40).V().Metrics().Aggregates(20)" % (T0 + 35000), ctx).to_json_value()
    # slices of 20 s aligned on the window start T0-5s: [T0-5s, T0+15s), [T0+15s, T0+35s)
    agg = v[0]["Aggregated"]
    assert [(m["Start"] - T0, m["Last"] - T0) for m in agg] == [(-5000, 15000), (15000, 35000)]
    assert agg[0]["RxBytes"] == 100 + 100 and agg[1]["RxBytes"] == 100 + 300
    # a time point context has an empty slice: no metric lies strictly inside it
    assert execute("G.At(%d).V().Metrics()" % (T0 + 35000), ctx).to_json_value() == []
