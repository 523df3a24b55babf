"""The storage layer: SQLite history, resources, reopen, retention, factory and bad input."""

import os
import sqlite3
import threading
import time

import pytest

from skydive_runtime.graph import Graph
from skydive_runtime.storage import (HistoryNotSupported, MemoryStore, SQLiteStore, StoreError, open_store,
                                     parse_retention)
from tests.runtime.storage_backends import clickhouse, make_store, store  # noqa: F401  (fixtures: sqlite and clickhouse)


def _store(tmp_path, **kw):
    return SQLiteStore(str(tmp_path / "skydive.db"), **kw)


def _by_id(elements):
    out = {}
    for e in elements:
        out.setdefault(e.ID, []).append(e)
    return out


# ---- history ------------------------------------------------------------------------------

def test_update_archives_previous_revision(store):
    g = Graph(host_id="h1", origin="analyzer.h1")
    store.attach(g)
    n = g.new_node({"Name": "eth0", "Type": "veth"}, t=1000)
    g.add_metadata(n, "MTU", 1500, t=2000)
    g.add_metadata(n, "MTU", 9000, t=3000)

    nodes, _ = store.revisions_between(0, 10_000)
    revs = sorted((r.Revision, r.UpdatedAt, r.Metadata.get("MTU")) for r in nodes)
    assert revs == [(1, 1000, None), (2, 2000, 1500), (3, 3000, 9000)]

    assert store.graph_at(999).nodes == {}
    for t, rev, mtu in ((1000, 1, None), (1999, 1, None), (2000, 2, 1500), (2999, 2, 1500),
                        (3000, 3, 9000), (50_000, 3, 9000)):
        at = store.graph_at(t)
        assert list(at.nodes) == [n.ID]
        got = at.nodes[n.ID]
        assert (got.Revision, got.Metadata.get("MTU")) == (rev, mtu), t
        assert got.Host == "h1" and got.Origin == "analyzer.h1" and got.CreatedAt == 1000


def test_delete_keeps_deleted_at_and_edges(store):
    g = Graph(host_id="h1")
    store.attach(g)
    a = g.new_node({"Name": "a", "Type": "host"}, t=1000)
    b = g.new_node({"Name": "b", "Type": "veth"}, t=1000)
    e = g.link(a, b, {"RelationType": "ownership"}, t=1100)
    g.add_metadata(b, "State", "UP", t=2000)
    g.del_node(b, t=3000)

    before = store.graph_at(2500)
    assert set(before.nodes) == {a.ID, b.ID}
    assert list(before.edges) == [e.ID]
    assert before.nodes[b.ID].Metadata["State"] == "UP"
    assert before.nodes[b.ID].DeletedAt == 3000
    edge = before.edges[e.ID]
    assert (edge.Parent, edge.Child, edge.Metadata) == (a.ID, b.ID, {"RelationType": "ownership"})

    after = store.graph_at(3000)
    assert set(after.nodes) == {a.ID} and after.edges == {}
    assert store.graph_at(1050).edges == {}          # edge created at 1100

    nodes, edges = store.revisions_between(2500, 2600)
    assert sorted(n.ID for n in nodes) == sorted([a.ID, b.ID])
    assert [x.ID for x in edges] == [e.ID] and edges[0].DeletedAt == 3000


def test_revisions_between_returns_every_revision_in_window(store):
    g = Graph()
    store.attach(g)
    n = g.new_node({"Name": "n", "Type": "veth", "V": 0}, t=1000)
    for i in range(1, 6):
        g.add_metadata(n, "V", i, t=1000 + i * 1000)      # revisions 2..6 at 2000..6000
    other = g.new_node({"Name": "o", "Type": "veth"}, t=8000)

    nodes, _ = store.revisions_between(2500, 4500)       # alive: rev 2 (2000-3000), 3, 4 (4000-5000)
    assert sorted(r.Revision for r in nodes) == [2, 3, 4]
    assert all(r.ID == n.ID for r in nodes)
    nodes, _ = store.revisions_between(3000, 3000)       # one instant: exactly one revision
    assert [r.Revision for r in nodes] == [3]
    nodes, _ = store.revisions_between(0, 999)
    assert nodes == []
    nodes, _ = store.revisions_between(5500, 9000)
    assert sorted((r.ID == other.ID, r.Revision) for r in nodes) == [(False, 5), (False, 6), (True, 1)]


def test_graph_at_picks_highest_revision_and_is_a_graph(store):
    g = Graph()
    store.attach(g)
    n = g.new_node({"Name": "x", "Type": "veth"}, t=1000)
    m = g.new_node({"Name": "y", "Type": "bridge"}, t=1000)
    g.link(m, n, {"RelationType": "layer2"}, t=1000)
    # two updates within the same millisecond: the highest revision wins
    g.add_metadata(n, "A", 1, t=2000)
    g.add_metadata(n, "A", 2, t=2000)
    at = store.graph_at(2000)
    assert at.nodes[n.ID].Revision == 3 and at.nodes[n.ID].Metadata["A"] == 2
    # indexes of the returned graph work
    from skydive_runtime.graph.filters import filter_from_pairs
    assert [x.ID for x in at.lookup_nodes(filter_from_pairs("Type", "bridge"))] == [m.ID]
    assert len(at.out_edges(m)) == 1


def test_attach_records_existing_elements(store):
    g = Graph()
    a = g.new_node({"Name": "pre", "Type": "host"}, t=500)
    store.attach(g)
    assert list(store.graph_at(600).nodes) == [a.ID]
    g.del_node(a, t=700)
    assert store.graph_at(700).nodes == {}
    assert list(store.graph_at(699).nodes) == [a.ID]


def test_history_survives_reopen(make_store):
    s = make_store()
    g = Graph()
    s.attach(g)
    n = g.new_node({"Name": "eth0", "Type": "veth"}, t=1000)
    keep = g.new_node({"Name": "lo", "Type": "device"}, t=1000)
    g.add_metadata(n, "MTU", 1500, t=2000)
    g.del_node(n, t=3000)
    s.close()
    closed_at = int(time.time() * 1000)

    s2 = make_store()
    try:
        assert s2.graph_at(1500).nodes[n.ID].Revision == 1
        assert s2.graph_at(2500).nodes[n.ID].Metadata["MTU"] == 1500
        assert n.ID not in s2.graph_at(3000).nodes
        nodes, _ = s2.revisions_between(0, 5000)
        assert sorted(r.Revision for r in nodes if r.ID == n.ID) == [1, 2]
        # the element still alive at close time is closed at close time, not left alive forever
        assert keep.ID in s2.graph_at(5000).nodes
        assert keep.ID not in s2.graph_at(closed_at + 1000).nodes
        # a new graph can be attached and history goes on
        g2 = Graph()
        s2.attach(g2)
        x = g2.new_node({"Name": "new", "Type": "veth"})
        assert x.ID in s2.graph_at(x.CreatedAt).nodes
    finally:
        s2.close()


_CRASHER = r"""
import sys, time
from skydive_runtime.graph import Graph
from skydive_runtime.storage import SQLiteStore
s = SQLiteStore(sys.argv[1], heartbeat_interval=50)
g = Graph()
s.attach(g)
n = g.new_node({"Name": "a", "Type": "veth"})
s.flush()
time.sleep(0.3)
print(n.ID, n.CreatedAt, flush=True)
time.sleep(60)
"""


def test_crash_leftover_live_revisions_are_closed_on_attach(tmp_path):
    import signal
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", _CRASHER, str(tmp_path / "skydive.db")],
                            stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        line = proc.stdout.readline().split()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    nid, created = line[0], int(line[1])
    crash = int(time.time() * 1000)

    s2 = _store(tmp_path)
    try:
        assert nid in s2.graph_at(created).nodes
        s2.attach(Graph())
        nodes, _ = s2.revisions_between(0, crash + 100_000)
        (rev,) = [r for r in nodes if r.ID == nid]
        # closed at the last heartbeat of the dead process: after its last write, before the kill
        assert created <= rev.DeletedAt <= crash
        assert nid not in s2.graph_at(crash).nodes
        assert nid in s2.graph_at(created).nodes
    finally:
        s2.close()


def test_reads_see_writes_made_just_before(make_store):
    s = make_store(flush_interval=5000)   # the writer would otherwise wait 5 s
    try:
        g = Graph()
        s.attach(g)
        n = g.new_node({"Name": "a", "Type": "veth"})
        t0 = time.monotonic()
        assert n.ID in s.graph_at(n.CreatedAt).nodes
        s.put_resource("alert", "a1", {"UUID": "a1"})
        assert s.get_resource("alert", "a1") == {"UUID": "a1"}
        assert time.monotonic() - t0 < 4.0
    finally:
        s.close()


def test_concurrent_writes_and_reads(make_store):
    s = make_store()
    errors = []
    g = Graph()
    s.attach(g)
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                at = s.graph_at(int(time.time() * 1000))
                for node in at.nodes.values():
                    assert node.Metadata["Type"] == "veth"
                s.list_resources("capture")
        except Exception as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        nodes = []
        for i in range(2000):
            nodes.append(g.new_node({"Name": "n%d" % i, "Type": "veth"}))
            if i % 3 == 0:
                g.add_metadata(nodes[i // 2], "I", i)
            if i % 100 == 0:
                s.put_resource("capture", "c%d" % i, {"UUID": "c%d" % i})
        for n in nodes[:500]:
            g.del_node(n)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    try:
        assert errors == []
        at = s.graph_at(int(time.time() * 1000) + 1)
        assert set(at.nodes) == {n.ID for n in nodes[500:]}
        assert len(s.list_resources("capture")) == 20
    finally:
        s.close()


# ---- resources ----------------------------------------------------------------------------

def test_resource_crud(store):
    assert store.list_resources("capture") == {}
    assert store.get_resource("capture", "nope") is None
    store.put_resource("capture", "c1", {"UUID": "c1", "GremlinQuery": "G.V().Has('Name','eth0')"})
    store.put_resource("capture", "c2", {"UUID": "c2", "GremlinQuery": "G.V()"})
    store.put_resource("alert", "a1", {"UUID": "a1", "Expression": "G.V().Count()"})
    assert store.get_resource("capture", "c1")["GremlinQuery"] == "G.V().Has('Name','eth0')"
    assert sorted(store.list_resources("capture")) == ["c1", "c2"]
    assert list(store.list_resources("alert")) == ["a1"]
    store.put_resource("capture", "c1", {"UUID": "c1", "GremlinQuery": "G.V().Has('Name','eth1')"})
    assert store.get_resource("capture", "c1")["GremlinQuery"] == "G.V().Has('Name','eth1')"
    assert store.delete_resource("capture", "c1") is True
    assert store.delete_resource("capture", "c1") is False
    assert store.get_resource("capture", "c1") is None
    assert list(store.list_resources("capture")) == ["c2"]
    with pytest.raises(StoreError, match="JSON serialisable"):
        store.put_resource("capture", "bad", {"x": object()})
    with pytest.raises(StoreError, match="must be a dict"):
        store.put_resource("capture", "bad", ["x"])
    with pytest.raises(StoreError, match="TTL"):
        store.put_resource("capture", "bad", {}, ttl_ms=-5)


def test_resource_ttl_expiry(store):
    store.put_resource("capture", "short", {"UUID": "short"}, ttl_ms=300)
    store.put_resource("capture", "long", {"UUID": "long"}, ttl_ms=600_000)
    store.put_resource("capture", "forever", {"UUID": "forever"})
    time.sleep(0.6)
    assert store.get_resource("capture", "short") is None
    assert store.get_resource("capture", "long") == {"UUID": "long"}
    assert sorted(store.list_resources("capture")) == ["forever", "long"]
    assert store.delete_resource("capture", "short") is False     # expired counts as gone
    store.put_resource("capture", "soon", {"UUID": "soon"}, ttl_ms=30_000)
    assert sorted(store.list_resources("capture")) == ["forever", "long", "soon"]
    assert store.expire_resources() == [("capture", "short", {"UUID": "short"})]
    assert store.expire_resources() == []
    now = int(time.time() * 1000)
    assert store.expire_resources(now + 60_000) == [("capture", "soon", {"UUID": "soon"})]
    assert store.expire_resources(now + 700_000) == [("capture", "long", {"UUID": "long"})]
    assert list(store.list_resources("capture")) == ["forever"]
    # a resource put again without TTL no longer expires
    store.put_resource("alert", "a", {"UUID": "a"}, ttl_ms=1)
    store.put_resource("alert", "a", {"UUID": "a", "v": 2})
    assert store.expire_resources(now + 10 ** 9) == []
    assert store.get_resource("alert", "a") == {"UUID": "a", "v": 2}


def test_resources_survive_reopen(make_store):
    s = make_store()
    s.put_resource("noderule", "r1", {"UUID": "r1", "Action": "create", "Metadata": {"Name": "x"}})
    s.put_resource("workflow", "w1", {"UUID": "w1", "Name": "w"}, ttl_ms=60_000)
    s.put_resource("alert", "gone", {"UUID": "gone"}, ttl_ms=100)
    s.close()
    time.sleep(0.15)
    s2 = make_store()
    try:
        assert s2.get_resource("noderule", "r1") == {"UUID": "r1", "Action": "create", "Metadata": {"Name": "x"}}
        assert list(s2.list_resources("workflow")) == ["w1"]
        assert s2.list_resources("alert") == {}
        assert s2.expire_resources() == [("alert", "gone", {"UUID": "gone"})]
    finally:
        s2.close()


# ---- retention ----------------------------------------------------------------------------

def test_retention_prunes_old_archived_revisions(make_store):
    s = make_store(retention="1h")
    try:
        now = int(time.time() * 1000)
        old = now - 3 * 3_600_000
        g = Graph()
        s.attach(g)
        n = g.new_node({"Name": "a", "Type": "veth"}, t=old)
        g.add_metadata(n, "X", 1, t=old + 1000)             # rev 1 archived 3h ago: pruned
        g.add_metadata(n, "X", 2, t=now - 1000)             # rev 2 archived now: kept
        gone = g.new_node({"Name": "gone", "Type": "veth"}, t=old)
        g.del_node(gone, t=old + 5)                         # deleted 3h ago: pruned
        assert s.prune() == {"revisions": 2, "flows": 0, "metrics": 0}
        nodes, _ = s.revisions_between(0, now + 1)
        assert sorted((r.ID == n.ID, r.Revision) for r in nodes) == [(True, 2), (True, 3)]
        assert s.graph_at(now).nodes[n.ID].Metadata["X"] == 2   # the live revision is never pruned
    finally:
        s.close()


def test_retention_parsing():
    assert parse_retention("7d") == 7 * 86_400_000
    assert parse_retention("1d12h") == 36 * 3_600_000
    assert parse_retention("90m") == 5_400_000
    assert parse_retention(2) == 2 * 86_400_000
    assert parse_retention("0") is None and parse_retention(None) is None and parse_retention("forever") is None
    for bad in ("7 days", "d", "-1d", "1x", True, [1]):
        with pytest.raises(StoreError, match="retention"):
            parse_retention(bad)


# ---- factory and bad input ----------------------------------------------------------------

def test_open_store_factory(tmp_path):
    s = open_store({"driver": "sqlite", "path": str(tmp_path / "a.db"), "retention": "2d"}, name="sqlite")
    try:
        assert isinstance(s, SQLiteStore) and s.retention_ms == 2 * 86_400_000 and s.supports_history
    finally:
        s.close()
    s = open_store(str(tmp_path / "b.db"))
    s.close()
    assert os.path.exists(tmp_path / "b.db")
    m = open_store({"driver": "memory"})
    assert isinstance(m, MemoryStore) and not m.supports_history
    with pytest.raises(HistoryNotSupported, match="^Backend does not support history$"):
        m.graph_at(1000)
    with pytest.raises(HistoryNotSupported, match="Backend does not support history"):
        m.revisions_between(0, 1000)
    with pytest.raises(StoreError, match=r"storage\.es\.driver: unsupported storage driver 'elasticsearch'"):
        open_store({"driver": "elasticsearch"}, name="es")
    with pytest.raises(StoreError, match="unknown setting.*pth"):
        open_store({"driver": "sqlite", "pth": "/tmp/x"})
    with pytest.raises(StoreError, match=r"storage\.sqlite: retention: invalid duration"):
        open_store({"driver": "sqlite", "path": str(tmp_path / "c.db"), "retention": "soon"}, name="sqlite")


def test_memory_store_resources():
    m = MemoryStore()
    m.put_resource("capture", "c", {"UUID": "c"}, ttl_ms=60_000)
    m.put_resource("capture", "d", {"UUID": "d"})
    m.put_resource("capture", "e", {"UUID": "e"}, ttl_ms=1)
    time.sleep(0.05)
    assert sorted(m.list_resources("capture")) == ["c", "d"]
    now = int(time.time() * 1000)
    assert m.expire_resources() == [("capture", "e", {"UUID": "e"})]
    assert m.expire_resources(now + 120_000) == [("capture", "c", {"UUID": "c"})]
    assert m.delete_resource("capture", "d") and not m.delete_resource("capture", "d")


def test_corrupt_file_is_a_clear_error(tmp_path):
    p = tmp_path / "skydive.db"
    p.write_bytes(b"this is not an sqlite database at all" * 200)
    with pytest.raises(StoreError, match="skydive.db.*(not a database|corrupt)"):
        SQLiteStore(str(p))


def test_foreign_sqlite_file_is_refused(tmp_path):
    p = tmp_path / "other.db"
    conn = sqlite3.connect(str(p))
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a skydive store"):
        SQLiteStore(str(p))


def test_unwritable_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory of store .*afile/sub/skydive.db"):
        SQLiteStore(str(blocker / "sub" / "skydive.db"))
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteStore(str(tmp_path))
    with pytest.raises(StoreError, match="expected a file path"):
        SQLiteStore("")


def test_newer_schema_is_refused(tmp_path):
    s = _store(tmp_path)
    s.close()
    conn = sqlite3.connect(str(tmp_path / "skydive.db"))
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99, newer"):
        _store(tmp_path)


def test_second_open_is_refused_and_closed_store_errors(tmp_path):
    s = _store(tmp_path)
    try:
        with pytest.raises(StoreError, match="already open"):
            _store(tmp_path)
    finally:
        s.close()
    s.close()   # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.list_resources("capture")
    with pytest.raises(StoreError, match="closed"):
        s.put_resource("capture", "x", {})


def test_history_time_must_be_integer_ms(store):
    with pytest.raises(StoreError, match="milliseconds"):
        store.graph_at("yesterday")
    with pytest.raises(StoreError, match="milliseconds"):
        store.revisions_between(float("nan"), 5)
    g = Graph()
    store.attach(g)
    n = g.new_node({"Name": "a", "Type": "veth"}, t=1000)
    assert list(store.graph_at(1000.7).nodes) == [n.ID]


def test_pending_writes_are_kept_when_the_process_exits_without_close(tmp_path):
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import sys\nfrom skydive_runtime.storage import SQLiteStore\n"
            "s = SQLiteStore(sys.argv[1], flush_interval=60000)\n"
            "s.put_resource('capture', 'c1', {'UUID': 'c1'})\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "skydive.db")], cwd=root, check=True, timeout=60)
    s = _store(tmp_path)
    try:
        assert s.get_resource("capture", "c1") == {"UUID": "c1"}
    finally:
        s.close()
