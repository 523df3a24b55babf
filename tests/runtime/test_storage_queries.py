"""One query suite, two backends: Gremlin history (`G.At`, `G.Context`, slices) and stored flows
(`G.At(...).Flows()`, `Metrics()`) give the same answers from the embedded SQLite store and from
ClickHouse (storage.<name>.driver: clickhouse)."""

import json
import uuid

import pytest

from skydive_runtime.analyzer import flow_steps
from skydive_runtime.graph import Graph
from skydive_runtime.gremlin import QueryContext, execute
from skydive_runtime.storage import SQLiteStore, open_store
from tests.runtime.storage_backends import clickhouse  # noqa: F401  (fixture)
from tests.runtime.test_storage_flows import mkflow

T0 = 1_760_000_000_000

QUERIES = [
    "G.At(%d).V().Count()" % (T0 + 5000),
    "G.At(%d).V().Has('Name', 'eth0-renamed').Values('MTU')" % (T0 + 15_000),
    "G.At(%d).V().Has('Name', 'eth0')" % (T0 + 5000),
    "G.At(%d).V().Has('Type', 'host').Out().Values('Name')" % (T0 + 25_000),
    "G.At(%d).E().Count()" % (T0 + 35_000),
    "G.At(%d, 40).V().Count()" % (T0 + 35_000),
    "G.At(%d, 40).V().Has('@ID', 'eth0').Values('Name')" % (T0 + 35_000),
    "G.Context(%d, 100).V().Dedup().Count()" % (T0 + 100_000),
    "G.At(%d, 40).V().Metrics()" % (T0 + 35_000),
    "G.At(%d, 600).Flows().Count()" % (T0 + 300_000),
    "G.At(%d, 600).Flows().Has('Network', '10.0.0.1').Values('UUID')" % (T0 + 300_000),
    "G.At(%d, 600).Flows().Has('Network.A', '10.0.0.3', 'Application', 'UDP').Count()" % (T0 + 300_000),
    "G.At(%d, 600).Flows().Has('NodeTID', 'tid-2').Dedup('Network.A').Count()" % (T0 + 300_000),
    "G.At(%d, 600).Flows().Has('Transport.A', GT(40010)).Count()" % (T0 + 300_000),
    "G.At(%d, 30).Flows().Values('UUID')" % (T0 + 12_000),
    "G.At(%d, 600).Flows().Has('UUID', '%x').Metrics()" % (T0 + 300_000, 0x1000_0000_0000_0000 + 3),
    "G.At(%d, 600).Flows().Has('CaptureID', 'cap-1').Sort().Limit(3).Values('UUID')" % (T0 + 300_000),
]


def _populate(store):
    g = Graph("h1", "analyzer.h1")
    store.attach(g)
    host = g.new_node({"Name": "h1", "Type": "host"}, id="host", t=T0)
    eth0 = g.new_node({"Name": "eth0", "Type": "device", "MTU": 1500}, id="eth0", t=T0)
    g.link(host, eth0, {"RelationType": "ownership"}, id="own0", t=T0)
    g.update_metadata(eth0, {"Name": "eth0-renamed"}, t=T0 + 10_000)
    for i in range(1, 4):
        g.update_metadata(eth0, {"LastUpdateMetric": {"RxBytes": 100 * i, "Start": T0 + i * 5000,
                                                      "Last": T0 + i * 5000 + 5000}}, t=T0 + 10_000 + i * 5000)
    eth1 = g.new_node({"Name": "eth1", "Type": "device"}, id="eth1", t=T0 + 20_000)
    g.link(host, eth1, {"RelationType": "ownership"}, id="own1", t=T0 + 20_000)
    g.del_node(eth0, t=T0 + 30_000)
    flows = [mkflow(i, a="10.0.0.%d" % (i % 5), b="10.0.0.%d" % (5 + i % 3), node="tid-%d" % (i % 4),
                    capture="cap-%d" % (i % 2), proto=("TCP", "UDP", "ICMPv4")[i % 3]) for i in range(60)]
    store.store_flows(flows)
    later = json.loads(json.dumps(flows[3]))
    later["Last"] += 60_000
    later["LastUpdateMetric"] = dict(later["LastUpdateMetric"], Start=later["LastUpdateMetric"]["Last"],
                                     Last=later["LastUpdateMetric"]["Last"] + 60_000, ABPackets=77)
    store.store_flows([later])
    store.flush()
    return g


def _answers(store, g):
    flow_steps.register()
    ctx = QueryContext(g, history=store, now=lambda: T0 + 400_000, flow_store=store)
    return [execute(q, ctx).to_json_value() for q in QUERIES]


def test_clickhouse_answers_like_the_embedded_store(tmp_path, clickhouse):  # noqa: F811
    sqlite = SQLiteStore(str(tmp_path / "skydive.db"))
    database = "q_" + uuid.uuid4().hex[:12]
    ch = open_store(clickhouse.settings(database, flush_interval=20), name="clickhouse")
    try:
        expected = _answers(sqlite, _populate(sqlite))
        got = _answers(ch, _populate(ch))
        for query, want, have in zip(QUERIES, expected, got):
            assert have == want, query
        # the suite is not trivially empty
        assert expected[0] == 2 and expected[1] == [1500] and expected[9] == 60 and expected[10]
        assert expected[15][0][flows_uuid(3)][-1]["ABPackets"] == 77
    finally:
        sqlite.close()
        ch.close()
        clickhouse.query("DROP DATABASE IF EXISTS %s" % database)


def flows_uuid(i):
    return "%x" % (0x1000_0000_0000_0000 + i)


def test_clickhouse_settings_errors(clickhouse):  # noqa: F811
    from skydive_runtime.storage import StoreError
    with pytest.raises(StoreError, match=r"storage\.ch: unknown setting\(s\) hots for driver clickhouse"):
        open_store({"driver": "clickhouse", "hots": "x"}, name="ch")
    with pytest.raises(StoreError, match=r"storage\.ch: database: expected a ClickHouse database name"):
        open_store({"driver": "clickhouse", "host": clickhouse.address, "database": "a-b;"}, name="ch")
    with pytest.raises(StoreError, match=r"host: expected HOST:PORT"):
        open_store({"driver": "clickhouse", "host": "a:b:c:99999"}, name="ch")
    with pytest.raises(StoreError, match=r"storage\.ch: cannot open store clickhouse://127\.0\.0\.1:1/skydive: "
                                         r"ClickHouse 127\.0\.0\.1:1 cannot be reached"):
        open_store({"driver": "clickhouse", "host": "127.0.0.1:1"}, name="ch")
    with pytest.raises(StoreError, match=r"cannot open store .*(Wrong password|Authentication failed|password)"):
        open_store(dict(clickhouse.settings(), password="wrong"), name="ch")


def test_two_analyzers_share_flows_and_resources(clickhouse):  # noqa: F811
    database = "s_" + uuid.uuid4().hex[:12]
    a = open_store(clickhouse.settings(database, flush_interval=20))
    b = open_store(clickhouse.settings(database, flush_interval=20))
    try:
        f = mkflow(1)
        a.store_flows([f])
        b.store_flows([f])                      # the same flow from two analyzers: stored once
        a.put_resource("capture", "c1", {"UUID": "c1"})
        a.flush()
        assert [x["UUID"] for x in b.query_flows()] == [f["UUID"]]
        assert b.get_resource("capture", "c1") == {"UUID": "c1"}
        assert b.delete_resource("capture", "c1") is True
        assert a.list_resources("capture") == {}
        # history is per recording analyzer: each answers from its own record
        ga, gb = Graph("ha"), Graph("hb")
        a.attach(ga)
        b.attach(gb)
        n = ga.new_node({"Name": "only-a", "Type": "veth"}, t=T0)
        assert list(a.graph_at(T0).nodes) == [n.ID] and b.graph_at(T0).nodes == {}
        days = clickhouse.query("SELECT count(DISTINCT partition) FROM system.parts WHERE database = '%s' "
                                "AND table = 'flows' AND active" % database)
        assert int(days) == 1   # partitioned by day
    finally:
        a.close()
        b.close()
        clickhouse.query("DROP DATABASE IF EXISTS %s" % database)


def test_clickhouse_retention_drops_old_days(clickhouse):  # noqa: F811
    """ClickHouse 18.16 has no table TTL: whole days past retention are dropped as partitions (no
    row mutation), the younger days keep what is not expired; prune_gate holds the periodic
    prune of an analyzer that is not the history master."""
    import time
    from tests.fixtures.processes import wait_until
    database = "r_" + uuid.uuid4().hex[:12]
    now = int(time.time() * 1000)
    old, day = now - 5 * 86_400_000, 86_400_000
    s = open_store(dict(clickhouse.settings(database, flush_interval=20), retention="2d"), name="ch")
    try:
        g = Graph("hr")
        s.attach(g)
        n = g.new_node({"Name": "a", "Type": "veth"}, t=old)
        g.add_metadata(n, "X", 1, t=old + 1000)          # the first revisions, 5 days ago: archived then
        gone = g.new_node({"Name": "gone", "Type": "veth"}, t=old)
        g.del_node(gone, t=old + 5)
        g.add_metadata(n, "X", 2, t=now - 1000)          # its revision of 5 days ago archived now: kept
        gone2 = g.new_node({"Name": "gone2", "Type": "veth"}, t=old - day)   # a day with only expired revisions
        g.del_node(gone2, t=old - day + 5)
        s.store_flows([mkflow(1, start=old, last=old + 5000), mkflow(2, start=now - 5000, last=now)])
        s.flush()

        def parts(table):
            return set(clickhouse.query("SELECT DISTINCT partition FROM system.parts WHERE database = '%s' AND "
                                        "table = '%s' AND active" % (database, table)).split())
        old_day = time.strftime("%Y-%m-%d", time.gmtime(old / 1000))
        old2_day = time.strftime("%Y-%m-%d", time.gmtime((old - day) / 1000))
        assert old_day in parts("flows") and old_day in parts("flow_metrics") and old2_day in parts("revisions")
        counts = s.prune()
        assert counts["flows"] == 1 and counts["metrics"] == 1 and counts["revisions"] == 3, counts
        assert old_day not in parts("flows") and old_day not in parts("flow_metrics")
        assert old2_day not in parts("revisions") and old2_day not in parts("archives")
        assert s.partitions_dropped >= 4
        assert [f["UUID"] for f in s.query_flows()] == [flows_uuid(2)]
        assert s.graph_at(now).nodes[n.ID].Metadata["X"] == 2
        # the day still holding n's revision 2 (created 5 days ago, live until now) is not dropped
        assert old_day in parts("revisions")
        assert int(clickhouse.query("SELECT count() FROM system.mutations WHERE database = '%s' AND table = 'flows'"
                                    % database)) == 0
        # periodic prune: held by the gate, run once it opens
        s.prune_interval_ms = 50
        s.prune_gate = lambda: False
        s.store_flows([mkflow(3, start=old - day, last=old - day + 5000)])
        s.flush()
        time.sleep(0.5)
        assert flows_uuid(3) in [f["UUID"] for f in s.query_flows()]
        s.prune_gate = lambda: True
        wait_until(lambda: flows_uuid(3) not in [f["UUID"] for f in s.query_flows()], timeout=10,
                   message="periodic prune once the gate opens")
    finally:
        s.close()
        clickhouse.query("DROP DATABASE IF EXISTS %s" % database)
