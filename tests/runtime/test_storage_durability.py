"""SQLiteStore durability at the store level: commit waiters, values refused before they are
queued, a bad operation that slips through loses only itself, restore of live elements."""

import sqlite3
import threading
import time

import pytest

from skydive_runtime.graph import Graph
from skydive_runtime.storage import InvalidWrite, SQLiteStore, StoreCorrupt, StoreError


def _waiter(store):
    done, result = threading.Event(), []

    def callback(err):
        result.append(err)
        done.set()
    store.when_committed(callback)
    assert done.wait(10)
    return result[0]


def test_when_committed_reports_after_the_commit(tmp_path):
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path, flush_interval=60_000)    # without a waiter nothing would commit for a minute
    store.put_resource("capture", "c1", {"a": 1})
    assert _waiter(store) is None
    conn = sqlite3.connect(path)               # read the file as another process would
    assert conn.execute("SELECT id FROM resources").fetchall() == [("c1",)]
    conn.close()
    store.close()
    err = []
    store.when_committed(err.append)
    assert isinstance(err[0], StoreError) and "closed" in str(err[0])


def test_values_refused_before_they_are_queued(tmp_path):
    store = SQLiteStore(str(tmp_path / "s.db"))
    try:
        for ttl in (2 ** 63, -1, 0, True):
            with pytest.raises(InvalidWrite, match="TTL"):
                store.put_resource("capture", "c", {}, ttl_ms=ttl)
        with pytest.raises(InvalidWrite, match="not valid UTF-8"):
            store.put_resource("capture", "c", {"Name": "\ud800"})
        with pytest.raises(InvalidWrite, match="too large"):
            store.put_resource("capture", "c", {"Name": "x" * (17 * 1024 * 1024)})
        g = Graph(host_id="h", origin="api.h")
        store.attach(g)
        n = g.new_node({"Name": "ok", "Type": "t"})
        bad = g.new_node({"Name": "\udc00", "Type": "t"})          # left out of the history, logged
        n.Revision = 2 ** 64
        g.add_metadata(n, "X", 1)                                  # this revision too
        store.flush()
        assert store.list_resources("capture") == {}
        names = [x.Metadata["Name"] for x in store.graph_at(n.CreatedAt).nodes.values()]
        assert names == ["ok"] and bad.ID not in store.graph_at(n.CreatedAt).nodes
    finally:
        store.close()


def test_a_bad_operation_that_slips_through_loses_only_itself(tmp_path, caplog):
    store = SQLiteStore(str(tmp_path / "s.db"), flush_interval=500)
    try:
        store.put_resource("capture", "good1", {"a": 1})
        store._enqueue(("rp", ("capture", "bad", "\ud800", None)))   # bypasses put_resource's checks
        store.put_resource("capture", "good2", {"a": 2})
        err = _waiter(store)
        assert isinstance(err, StoreError)      # a write queued before the waiter was lost: it is told
        with pytest.raises(StoreError, match="surrogates not allowed"):
            store.flush()                       # and the next flush, as for any lost write
        assert sorted(store.list_resources("capture")) == ["good1", "good2"]
        assert "operation 'rp' lost, the others of its batch are written" in caplog.text
        store.put_resource("capture", "good3", {"a": 3})
        assert _waiter(store) is None
    finally:
        store.close()


def test_live_elements_restored_by_origin(tmp_path):
    path = str(tmp_path / "s.db")

    def keep(origin):
        return not origin.startswith("agent.")

    store = SQLiteStore(path)
    g = Graph(host_id="h", origin="api.h")
    store.attach(g, restore=keep)
    a = g.new_node({"Name": "a", "Type": "t"})
    b = g.new_node({"Name": "b", "Type": "t"}, origin="agent.x")
    g.add_metadata(a, "MTU", 9000)
    g.new_edge(a, b, {"RelationType": "layer2"})
    store.close()      # a clean stop keeps the restorable revisions live

    store = SQLiteStore(path)
    try:
        g2 = Graph(host_id="h", origin="api.h")
        store.attach(g2, restore=keep)
        assert list(g2.nodes) == [a.ID] and g2.nodes[a.ID].Revision == 2 and g2.nodes[a.ID].Metadata["MTU"] == 9000
        assert not g2.edges           # its other end belongs to an agent that has not come back yet
        g2.add_node(b.copy())
        assert len(g2.edges) == 1     # no running loop here: added at once
        store.flush()
        assert len(store.graph_at(int(time.time() * 1000)).edges) == 1   # its new revision is archived
    finally:
        store.close()


def test_empty_file_refused(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"")
    with pytest.raises(StoreCorrupt, match="is empty .0 bytes.*skydive store restore BACKUP --path"):
        SQLiteStore(str(path))
