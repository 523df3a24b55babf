"""The `clickhouse` backend: flows, flow metrics, topology revisions and resources in ClickHouse.

    storage:
      shared: {driver: clickhouse, host: "10.0.0.5:8123", database: skydive, username: skydive,
               password: secret, retention: 7d}

Every table is a MergeTree partitioned by day (`day`), so that several analyzers can write the
same rows: a flow is keyed by UUID (ReplacingMergeTree by `Last`: the latest state wins), a flow
metric by (UUID, Start), a resource by (kind, id) (the latest write wins; a delete is a
tombstone). Topology revisions are kept per recording analyzer (`recorder` = its host ID): each
analyzer answers `G.At`/`G.Context` from its own record, as the embedded store does. In a
cluster (the analyzers replicate one graph) `record_gate` is set: an analyzer records only the
changes made on it (its agents, its API, its rules), not those a peer sent, and answers from
every analyzer's record; the live revisions of an analyzer whose heartbeat stopped end at its
last heartbeat (it died: its agents are recorded by the analyzer they moved to).

Writes are queued and inserted by one writer thread (JSONEachRow over HTTP, batched); reads
see every write queued before them. ClickHouse 18.16 (Debian 12) has no table TTL: retention is
applied by prune() every prune_interval: the day partitions whose rows are all past retention
are dropped (ALTER TABLE ... DROP PARTITION, no rewrite), the few expired rows of younger days
are deleted (ALTER ... DELETE). Several analyzers share the tables: `prune_gate` (a callable,
set by the analyzer to "master of the history duty") lets only one of them run it.
"""

import datetime
import itertools
import json
import logging
import math
import queue
import re
import threading
import time

from ..common.jsonutil import dumps
from ..common.timeutil import now_ms as _now
from ..graph.elements import Edge, Node
from ..graph.graph import Graph
from .base import (NEVER, InvalidWrite, Store, StoreError, check_resource_key, flow_alive_between, flow_matches,
                   flow_pushdown, normalize_flow_filter, parse_ms, parse_retention, revision_alive_between,
                   validate_resource)
from .clickhouse_http import ClickHouseError, ClickHouseHTTP, parse_host, quote

log = logging.getLogger("skydive.storage")

SETTINGS = ("host", "database", "username", "password", "retention", "prune_interval", "flush_interval",
            "batch_size", "timeout", "heartbeat_interval")
_I64_MIN, _I64_MAX = -2 ** 63, 2 ** 63 - 1
_NO_METRIC = _I64_MIN   # flows.mstart of a flow without a LastUpdateMetric row
DAY_MS = 86_400_000
_EPOCH = datetime.date(1970, 1, 1)
_MAX_DAY = 49_000   # ClickHouse Date ends in 2105
_KEY = "kind, eid, revision, created_at, updated_at, recorder"

_TABLES = (
    "flows (day Date, uuid String, tracking String, node String, capture String, app String, net_a String, "
    "net_b String, link_a String, link_b String, start Int64, last Int64, mstart Int64, ver UInt64, data String) "
    "ENGINE = ReplacingMergeTree(ver) PARTITION BY day ORDER BY uuid SETTINGS index_granularity = 32",
    "flow_metrics (day Date, uuid String, start Int64, last Int64, abp Int64, abb Int64, bap Int64, bab Int64, "
    "rtt Int64) ENGINE = ReplacingMergeTree() PARTITION BY day ORDER BY (uuid, start)",
    "revisions (day Date, recorder String, kind UInt8, eid String, revision Int64, created_at Int64, updated_at Int64, "
    "deleted_at Int64, host String, origin String, parent String, child String, metadata String) "
    "ENGINE = ReplacingMergeTree() PARTITION BY day ORDER BY (%s)" % _KEY,
    "archives (day Date, recorder String, kind UInt8, eid String, revision Int64, created_at Int64, updated_at Int64, "
    "archived_at Int64, a_deleted Int64) ENGINE = ReplacingMergeTree() PARTITION BY day ORDER BY (%s)" % _KEY,
    "resources (kind String, id String, obj String, expires_at Int64, deleted UInt8, ver UInt64) "
    "ENGINE = ReplacingMergeTree(ver) ORDER BY (kind, id)",
    "heartbeats (recorder String, t Int64, ver UInt64) ENGINE = ReplacingMergeTree(ver) ORDER BY recorder",
)
_PUSH_COLUMNS = {"UUID": "uuid", "TrackingID": "tracking", "NodeTID": "node", "CaptureID": "capture",
                 "Application": "app", "Network.A": "net_a", "Network.B": "net_b", "Link.A": "link_a",
                 "Link.B": "link_b"}
_STOP = object()


def _always():
    return True


def _day(ms):
    return (_EPOCH + datetime.timedelta(days=min(max(int(ms) // DAY_MS, 0), _MAX_DAY))).isoformat()


def _int64(v, name):
    if isinstance(v, bool) or not isinstance(v, int) or not _I64_MIN <= v <= _I64_MAX:
        raise InvalidWrite("%s %r is not a 64-bit integer" % (name, v))
    return v


def _int_or_none(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _bound(v, rounding):
    """A time field as an Int64 column: numbers rounded outwards (the exact test is redone on the
    decoded flow), anything else 0 (what the Python filter sees)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
        return 0
    if isinstance(v, float):
        if math.isinf(v):
            return _I64_MAX if v > 0 else _I64_MIN
        v = rounding(v)
    return min(max(int(v), _I64_MIN), _I64_MAX)


_TSV_ESCAPES = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"0": b"\0", b"'": b"'", b"b": b"\b", b"f": b"\f",
                b"r": b"\r"}


def _unescape_tsv(raw):
    """A TabSeparated field of ClickHouse as text."""
    if b"\\" not in raw:
        return raw.decode()
    out, i = bytearray(), 0
    while True:
        j = raw.find(b"\\", i)
        if j < 0 or j + 1 >= len(raw):
            out += raw[i:]
            return out.decode()
        out += raw[i:j]
        c = raw[j + 1:j + 2]
        out += _TSV_ESCAPES.get(c, c)
        i = j + 2


def _text(v):
    return v if isinstance(v, str) else ""


class _Barrier:
    __slots__ = ("callback",)

    def __init__(self, callback):
        self.callback = callback


class _Recorder:
    """The graph listener: each event becomes a revision row or an archive row at once."""

    def __init__(self, store, recorder):
        self.store, self.recorder = store, recorder
        self.live = ({}, {})   # per kind: element ID -> (Revision, CreatedAt, UpdatedAt) of its live revision

    def _row(self, kind, el, deleted_at=0):
        try:
            row = {"day": _day(el.UpdatedAt), "recorder": self.recorder, "kind": kind, "eid": el.ID,
                   "revision": _int64(el.Revision, "Revision"), "created_at": _int64(el.CreatedAt, "CreatedAt"),
                   "updated_at": _int64(el.UpdatedAt, "UpdatedAt"), "deleted_at": _int64(deleted_at or 0, "DeletedAt"),
                   "host": el.Host or "", "origin": el.Origin or "", "parent": getattr(el, "Parent", "") or "",
                   "child": getattr(el, "Child", "") or "", "metadata": dumps(el.Metadata)}
        except (InvalidWrite, TypeError, ValueError) as exc:
            log.warning("storage: %s %r (revision %r) left out of the history: %s",
                        "node" if kind == 0 else "edge", el.ID, el.Revision, exc)
            return None
        return row

    def _archive(self, kind, eid, key, t, deleted):
        rev, created, updated = key
        t = max(t, updated)
        self.store._enqueue("archives", {"day": _day(updated), "recorder": self.recorder, "kind": kind, "eid": eid,
                                         "revision": rev, "created_at": created, "updated_at": updated,
                                         "archived_at": t, "a_deleted": t if deleted else 0})

    def _ours(self):
        gate = self.store.record_gate
        return gate is None or gate()

    def record(self, kind, el):
        if not self._ours():
            return
        row = self._row(kind, el)
        if row is not None:
            self.live[kind][el.ID] = (row["revision"], row["created_at"], row["updated_at"])
            self.store._enqueue("revisions", row)

    def updated(self, kind, el):
        if not self._ours():       # a peer records the new revision; ours (if any) ends here
            prev = self.live[kind].pop(el.ID, None)
            if prev is not None:
                self._archive(kind, el.ID, prev, el.UpdatedAt, False)
            return
        prev = self.live[kind].get(el.ID)
        row = self._row(kind, el)
        if row is None:   # the previous revision stays the live one
            return
        if prev is not None:
            self._archive(kind, el.ID, prev, el.UpdatedAt, False)
        self.live[kind][el.ID] = (row["revision"], row["created_at"], row["updated_at"])
        self.store._enqueue("revisions", row)

    def deleted(self, kind, el):
        if not self._ours():       # recorded by the peer that deleted it; ours (if any) ends here
            prev = self.live[kind].pop(el.ID, None)
            if prev is not None:
                self._archive(kind, el.ID, prev, el.DeletedAt or _now(), True)
            return
        t = el.DeletedAt or _now()
        prev = self.live[kind].pop(el.ID, None)
        if prev is None and self.store.record_gate is not None:
            return         # cluster record: its recorder (or its last heartbeat) ends it
        if prev is None:   # never seen alive (attached later): keep its last state
            row = self._row(kind, el, deleted_at=max(t, el.UpdatedAt if isinstance(el.UpdatedAt, int) else t))
            if row is not None:
                self.store._enqueue("revisions", row)
                self._archive(kind, el.ID, (row["revision"], row["created_at"], row["updated_at"]), t, True)
            return
        self._archive(kind, el.ID, prev, t, True)

    def on_node_added(self, node):
        self.record(0, node)

    def on_node_updated(self, node, ops):
        self.updated(0, node)

    def on_node_deleted(self, node):
        self.deleted(0, node)

    def on_edge_added(self, edge):
        self.record(1, edge)

    def on_edge_updated(self, edge, ops):
        self.updated(1, edge)

    def on_edge_deleted(self, edge):
        self.deleted(1, edge)


class ClickHouseStore(Store):
    name = "clickhouse"

    def __init__(self, host="127.0.0.1:8123", database="skydive", username="default", password="", retention=None,
                 prune_interval=None, flush_interval=None, batch_size=None, timeout=None, heartbeat_interval=None):
        addr, port = parse_host(host)
        if not isinstance(database, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
            raise StoreError("database: expected a ClickHouse database name (letters, digits, _), got %r" % (database,))
        for key, v in (("username", username), ("password", password)):
            if not isinstance(v, str):
                raise StoreError("%s: expected a string, got %r" % (key, v))
        self.retention_ms = parse_retention(retention)
        self.prune_interval_ms = parse_ms(prune_interval, "prune_interval", 300_000)
        self.flush_interval = parse_ms(flush_interval, "flush_interval", 200) / 1000.0
        self.heartbeat_interval = parse_ms(heartbeat_interval, "heartbeat_interval", 5_000) / 1000.0
        timeout_s = parse_ms(timeout, "timeout", 30_000) / 1000.0
        if batch_size is None:
            batch_size = 50_000
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise StoreError("batch_size: expected a positive integer, got %r" % (batch_size,))
        self.batch_size = batch_size
        self.database = database
        self.http = ClickHouseHTTP(addr, port, database, username, password, timeout_s)
        self.stats = {"batches": 0, "rows_written": 0, "flows_rejected": 0, "write_errors": 0,
                      "insert_seconds": 0.0}
        self._queue = queue.SimpleQueue()
        self._closed = False
        self._graph = None
        self._recorder = None
        self._recorder_id = ""
        self._restore = None
        self._pruner = None
        self._ver = itertools.count(time.time_ns())
        self._last_prune = time.monotonic()
        self.prune_gate = _always   # callable: False while another analyzer of the cluster prunes
        self.record_gate = None     # callable: False while the graph applies a peer's change (cluster)
        self.partitions_dropped = 0
        self._create_schema()
        self._writer = threading.Thread(target=self._run, name="clickhouse-store-writer", daemon=True)
        self._writer.start()

    @property
    def location(self):
        return "clickhouse://%s/%s" % (self.http.address, self.database)

    def _create_schema(self):
        try:
            self.http.execute("CREATE DATABASE IF NOT EXISTS %s" % self.database, database=False)
            for table in _TABLES:
                self.http.execute("CREATE TABLE IF NOT EXISTS %s.%s" % (self.database, table))
        except ClickHouseError as exc:
            raise StoreError("cannot open store %s: %s" % (self.location, exc)) from None

    # ---- writer ------------------------------------------------------------------------------
    def _check_open(self):
        if self._closed:
            raise StoreError("store %s is closed" % self.location)

    def _enqueue(self, table, row):
        self._queue.put((table, row))

    def _run(self):
        q = self._queue
        last_beat = 0.0
        while True:
            try:
                op = q.get(timeout=self.heartbeat_interval)
            except queue.Empty:
                op = None
            batch = [] if op is None else [op]
            deadline = time.monotonic() + self.flush_interval
            hurry = op is _STOP or isinstance(op, _Barrier)
            while op is not None and not hurry and len(batch) < self.batch_size:
                remaining = deadline - time.monotonic()
                try:
                    op = q.get(timeout=remaining) if remaining > 0 else q.get_nowait()
                except queue.Empty:
                    break
                batch.append(op)
                hurry = op is _STOP or isinstance(op, _Barrier)
            if self._recorder is not None and time.monotonic() - last_beat >= self.heartbeat_interval:
                last_beat = time.monotonic()
                batch.append(("heartbeats", {"recorder": self._recorder_id, "t": _now(), "ver": next(self._ver)}))
            stop = self._write(batch)
            if stop:
                return
            due = (time.monotonic() - self._last_prune) * 1000 >= self.prune_interval_ms
            if self.retention_ms and due and (self._pruner is None or not self._pruner.is_alive()) and self._may_prune():
                self._last_prune = time.monotonic()   # reads wait for this thread: prune from another one
                self._pruner = threading.Thread(target=self._periodic_prune, name="clickhouse-store-prune", daemon=True)
                self._pruner.start()

    def _may_prune(self):
        try:
            return bool(self.prune_gate())
        except Exception:      # the gate is the analyzer's: never let it stop the writer
            log.exception("storage: retention gate failed")
            return False

    def _periodic_prune(self):
        try:
            self.prune()
        except StoreError as exc:
            log.error("storage: retention on %s failed: %s", self.location, exc)

    def _write(self, batch):
        tables, barriers, stop = {}, [], False
        for op in batch:
            if op is _STOP:
                stop = True
            elif isinstance(op, _Barrier):
                barriers.append(op.callback)
            else:
                tables.setdefault(op[0], []).append(op[1])
        error = None
        t0 = time.monotonic()
        for table, rows in tables.items():
            for attempt in range(3):
                try:
                    self.http.insert(table, rows)
                    self.stats["rows_written"] += len(rows)
                    break
                except ClickHouseError as exc:
                    if attempt == 2 or "cannot be reached" not in str(exc):
                        self.stats["write_errors"] += len(rows)
                        log.error("storage: %d rows for %s.%s lost: %s", len(rows), self.database, table, exc)
                        error = StoreError("writing to store %s failed: %s" % (self.location, exc))
                        break
                    time.sleep(0.5 * (attempt + 1))
        if tables:
            self.stats["batches"] += 1
            self.stats["insert_seconds"] += time.monotonic() - t0
        for callback in barriers:
            try:
                callback(error)
            except Exception:   # a callback must not stop the writer
                log.exception("storage: commit callback failed")
        return stop

    def queue_depth(self):
        return self._queue.qsize()

    def when_committed(self, callback):
        if self._closed or not self._writer.is_alive():
            callback(StoreError("store %s is closed" % self.location))
            return
        self._queue.put(_Barrier(callback))

    def flush(self):
        self._check_open()
        done = threading.Event()
        result = []

        def committed(err):
            result.append(err)
            done.set()
        self.when_committed(committed)
        if not done.wait(max(120.0, self.http.timeout * 3)):
            raise StoreError("store %s: writes not committed after 120 s" % self.location)
        if result[0] is not None:
            raise result[0]

    def _rows(self, sql):
        try:
            return self.http.rows(sql)
        except ClickHouseError as exc:
            raise StoreError("reading store %s failed: %s" % (self.location, exc)) from None

    def _read(self, sql):
        self.flush()
        return self._rows(sql)

    # ---- topology history --------------------------------------------------------------------
    @staticmethod
    def _times(*values):
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not -NEVER < v < NEVER:
                raise StoreError("history times must be milliseconds (numbers), got %s"
                                 % " and ".join(repr(x) for x in values))
        return [int(v) for v in values]

    def _history_rows(self, where_archived, end=None, own=True):
        """[(kind, eid, revision, created, updated, deleted, host, origin, parent, child, metadata, archived,
        recorder)] of this analyzer's record (own) or every analyzer's, updated before `end` when given."""
        rec = "recorder = %s" % quote(self._recorder_id) if own else "1"
        rbound = abound = ""
        if end is not None:
            rbound = " AND updated_at <= %d AND created_at <= %d" % (end, end)
            abound = " AND updated_at <= %d" % end
        return self._read(
            "SELECT kind, eid, revision, created_at, updated_at, if(a_deleted != 0, a_deleted, deleted_at), host, "
            "origin, parent, child, metadata, archived_at, recorder FROM (SELECT %s, deleted_at, host, origin, parent, "
            "child, metadata FROM revisions FINAL WHERE %s%s) ANY LEFT JOIN (SELECT %s, archived_at, a_deleted "
            "FROM archives FINAL WHERE %s%s) USING (%s) WHERE %s ORDER BY updated_at, revision, eid"
            % (_KEY, rec, rbound, _KEY, rec, abound, _KEY, where_archived))

    def _dead_recorders(self):
        """{recorder: its last heartbeat} of the analyzers that stopped beating (cluster record)."""
        stale = _now() - int(3 * self.heartbeat_interval * 1000) - 1000
        rows = self._rows("SELECT recorder, max(t) FROM heartbeats FINAL GROUP BY recorder")
        return {r: int(t) for r, t in rows if int(t) < stale and r != self._recorder_id}

    def _alive_rows(self, start, end):
        shared = self.record_gate is not None
        rows = self._history_rows("(archived_at = 0 OR archived_at > %d)" % start, end, own=not shared)
        dead = self._dead_recorders() if shared else {}
        out = []
        for r in rows:
            archived = r[11] or (dead.get(r[12]) if dead else None)
            if revision_alive_between(r[3], r[4], r[5] or None, archived or None, start, end):
                out.append(r)
        return out

    @staticmethod
    def _element(row):
        kind, eid, rev, created, updated, deleted, host, origin, parent, child, md = row[:11]
        kw = dict(metadata=json.loads(md), host=host, origin=origin, created_at=created, updated_at=updated,
                  deleted_at=deleted or 0, revision=rev)
        return Node(eid, **kw) if kind == 0 else Edge(eid, parent, child, **kw)

    def graph_at(self, t_ms):
        t_ms, = self._times(t_ms)
        best = {}
        for row in self._alive_rows(t_ms, t_ms):
            key = (row[0], row[1])
            cur = best.get(key)
            if cur is None or (row[2], row[4]) > (cur[2], cur[4]):
                best[key] = row
        nodes, edges = [], []
        for row in best.values():
            (nodes if row[0] == 0 else edges).append(self._element(row))
        g = Graph()
        g.load(sorted(nodes, key=lambda n: n.CreatedAt), sorted(edges, key=lambda e: e.CreatedAt))
        return g

    def revisions_between(self, start_ms, end_ms):
        start_ms, end_ms = self._times(start_ms, end_ms)
        if end_ms < start_ms:
            start_ms, end_ms = end_ms, start_ms
        nodes, edges = [], []
        for row in self._alive_rows(start_ms, end_ms):
            (nodes if row[0] == 0 else edges).append(self._element(row))
        return nodes, edges

    def attach(self, graph, restore=None):
        """Revisions this analyzer (graph.host_id) left live: those restore() accepts are put back
        into the graph, the others are closed at the last heartbeat of the previous run."""
        self._check_open()
        if self._graph is graph:
            return
        if self._graph is not None:
            raise StoreError("store %s already archives another graph" % self.location)
        self._recorder_id = getattr(graph, "host_id", "") or ""
        rec = _Recorder(self, self._recorder_id)
        beat = self._read("SELECT max(t) FROM heartbeats FINAL WHERE recorder = %s" % quote(self._recorder_id))
        t = beat[0][0] if beat and beat[0][0] else _now()
        live = self._history_rows("archived_at = 0")
        restored = [0, 0]
        for row in live:
            el = self._element(row)
            keep = restore is not None and restore(row[7])
            if keep and row[0] == 0 and el.ID not in graph.nodes:
                graph.add_node(el)
                restored[0] += 1
            elif keep and row[0] == 1 and el.ID not in graph.edges and el.Parent in graph.nodes and el.Child in graph.nodes:
                graph.add_edge(el)
                restored[1] += 1
            else:
                rec._archive(row[0], row[1], (row[2], row[3], row[4]), t, True)
                continue
            rec.live[row[0]][row[1]] = (row[2], row[3], row[4])
        if any(restored):
            log.info("storage: %d nodes and %d edges of the previous run restored", *restored)
        self._recorder = rec
        self._graph = graph
        self._restore = restore
        for kind, elements in ((0, graph.nodes), (1, graph.edges)):
            for el in list(elements.values()):
                if el.ID not in rec.live[kind]:
                    rec.record(kind, el)
        graph.add_listener(rec)

    def detach(self):
        """Stop recording; the live revisions the restore() of attach() would not put back are closed."""
        if self._graph is None:
            return
        graph, rec = self._graph, self._recorder
        graph.remove_listener(rec)
        t = _now()
        for kind, elements in ((0, graph.nodes), (1, graph.edges)):
            for eid, key in rec.live[kind].items():
                el = elements.get(eid)
                if el is None or self._restore is None or not self._restore(el.Origin or ""):
                    rec._archive(kind, eid, key, t, True)
        self._graph = None
        self._recorder = None
        self.flush()

    # ---- resources ---------------------------------------------------------------------------
    _check_kind_id = staticmethod(check_resource_key)

    def put_resource(self, kind, id, obj, ttl_ms=None):
        self._check_open()
        text, ttl_ms = validate_resource(kind, id, obj, ttl_ms)
        expires = 0 if ttl_ms is None else min(_now() + ttl_ms, _I64_MAX)
        self._enqueue("resources", {"kind": kind, "id": id, "obj": text, "expires_at": expires, "deleted": 0,
                                    "ver": next(self._ver)})

    def _alive_resources(self, where):
        return self._read("SELECT kind, id, obj FROM resources FINAL WHERE deleted = 0 AND (expires_at = 0 OR "
                          "expires_at > %d) AND %s ORDER BY kind, id" % (_now(), where))

    def get_resource(self, kind, id):
        self._check_kind_id(kind, id)
        rows = self._alive_resources("kind = %s AND id = %s" % (quote(kind), quote(id)))
        return json.loads(rows[0][2]) if rows else None

    def list_resources(self, kind):
        return {rid: json.loads(obj) for _k, rid, obj in self._alive_resources("kind = %s" % quote(kind))}

    def _tombstone(self, kind, id):
        self._enqueue("resources", {"kind": kind, "id": id, "obj": "", "expires_at": 0, "deleted": 1,
                                    "ver": next(self._ver)})

    def delete_resource(self, kind, id):
        if self.get_resource(kind, id) is None:   # unknown or expired (expire_resources still reports it)
            return False
        self._tombstone(kind, id)
        self.flush()
        return True

    def forget_resource(self, kind, id):
        self._check_open()
        self._check_kind_id(kind, id)
        self._tombstone(kind, id)

    def expire_resources(self, now_ms=None):
        t = _now() if now_ms is None else now_ms
        rows = self._read("SELECT kind, id, obj FROM resources FINAL WHERE deleted = 0 AND expires_at != 0 AND "
                          "expires_at <= %d ORDER BY expires_at" % t)
        for kind, rid, _obj in rows:
            self._tombstone(kind, rid)
        if rows:
            self.flush()
        return [(k, i, json.loads(o)) for k, i, o in rows]

    # ---- flows -------------------------------------------------------------------------------
    def store_flows(self, flows):
        self._check_open()
        if isinstance(flows, dict):
            flows = [flows]
        batch = list(flows)
        for f in batch:
            if not isinstance(f, dict):
                raise StoreError("a flow must be a dict, got %s" % type(f).__name__)
            u = f.get("UUID")
            if not isinstance(u, str) or not u:
                raise StoreError("a flow needs a non-empty string UUID, got %r" % (u,))
        for f in batch:
            try:
                row, metric = self._flow_rows(f)
            except (InvalidWrite, TypeError, ValueError, RecursionError) as exc:
                self.stats["flows_rejected"] += 1
                log.warning("storage: flow %r not stored: %s", f.get("UUID"), exc)
                continue
            self._enqueue("flows", row)
            if metric is not None:
                self._enqueue("flow_metrics", metric)

    @staticmethod
    def _flow_rows(f):
        data = json.dumps(f, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
        start, last = _bound(f.get("Start"), math.floor), _bound(f.get("Last"), math.ceil)
        net, link = f.get("Network"), f.get("Link")
        net = net if isinstance(net, dict) else {}
        link = link if isinstance(link, dict) else {}
        metric, mstart = None, _NO_METRIC
        m = f.get("LastUpdateMetric")
        if isinstance(m, dict) and _int_or_none(m.get("Start")) is not None:
            ms = _int64(_int_or_none(m.get("Start")), "LastUpdateMetric.Start")
            ml = _int_or_none(m.get("Last"))
            metric = {"day": _day(ms), "uuid": f["UUID"], "start": ms,
                      "last": _int64(ms if ml is None else ml, "LastUpdateMetric.Last")}
            for col, key in (("abp", "ABPackets"), ("abb", "ABBytes"), ("bap", "BAPackets"), ("bab", "BABytes"),
                             ("rtt", "RTT")):
                metric[col] = _int64(_int_or_none(m.get(key)) or 0, "LastUpdateMetric." + key)
            mstart = ms
        row = {"day": _day(start), "uuid": f["UUID"], "tracking": _text(f.get("TrackingID")),
               "node": _text(f.get("NodeTID")), "capture": _text(f.get("CaptureID")), "app": _text(f.get("Application")),
               "net_a": _text(net.get("A")), "net_b": _text(net.get("B")), "link_a": _text(link.get("A")),
               "link_b": _text(link.get("B")), "start": start, "last": last, "mstart": mstart, "ver": max(last, 0),
               "data": data}
        return row, metric

    def query_flows(self, filter=None, start_ms=None, end_ms=None, limit=None):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise StoreError("limit must be a non-negative integer, got %r" % (limit,))
        flt = normalize_flow_filter(filter)
        where = []
        for disjunction in flow_pushdown(flt):
            where.append("(" + " OR ".join("%s IN (%s)" % (_PUSH_COLUMNS[field], ",".join(quote(v) for v in sorted(values)))
                                           for field, values in disjunction) + ")")
        if start_ms is not None:
            where.append("last >= %d" % _bound(start_ms, math.floor))
        if end_ms is not None:
            where.append("start <= %d" % _bound(end_ms, math.ceil))
        if limit == 0:
            return []
        self.flush()
        # the matching UUIDs first (small columns; any version of a flow may match: a superset, the
        # latest states are read by FINAL and filtered again below), then their records by primary
        # key; sorted here (an ORDER BY would make ClickHouse read every granule of the records)
        sql = "SELECT start, uuid, data FROM flows FINAL"
        if where:
            sql += " WHERE uuid IN (SELECT uuid FROM flows WHERE %s)" % " AND ".join(where)
        try:
            body = self.http.execute(sql + " FORMAT TabSeparated")
        except ClickHouseError as exc:
            raise StoreError("reading flows from store %s failed: %s" % (self.location, exc)) from None
        rows = []
        for line in body.split(b"\n"):
            if line:
                start, uuid, data = line.split(b"\t", 2)
                rows.append((int(start), _unescape_tsv(uuid), data))
        rows.sort(key=lambda r: (r[0], r[1]))
        out = []
        for _start, _uuid, data in rows:
            f = json.loads(_unescape_tsv(data))
            if flow_alive_between(f, start_ms, end_ms) and flow_matches(flt, f):
                out.append(f)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def flow_metrics(self, uuids, start_ms=None, end_ms=None):
        if isinstance(uuids, str):
            uuids = [uuids]
        wanted = [u for u in dict.fromkeys(uuids) if isinstance(u, str) and u]
        if not wanted:
            return {}
        lo = _I64_MIN if start_ms is None else _bound(start_ms, math.floor)
        hi = _I64_MAX if end_ms is None else _bound(end_ms, math.ceil)
        rows = self._read("SELECT uuid, start, last, abp, abb, bap, bab, rtt FROM flow_metrics FINAL WHERE uuid IN (%s) "
                          "AND start <= %d AND last >= %d ORDER BY uuid, start"
                          % (",".join(quote(u) for u in wanted), hi, lo))
        found = {}
        for u, start, last, abp, abb, bap, bab, rtt in rows:
            m = {"ABPackets": abp, "ABBytes": abb, "BAPackets": bap, "BABytes": bab, "Start": start, "Last": last}
            if rtt:
                m["RTT"] = rtt
            found.setdefault(u, []).append(m)
        return {u: found[u] for u in wanted if u in found}

    # ---- retention -------------------------------------------------------------------------------
    def _mutate(self, table, where):
        try:
            self.http.execute("ALTER TABLE %s DELETE WHERE %s" % (table, where))
        except ClickHouseError as exc:
            raise StoreError("retention on store %s failed: %s" % (self.location, exc)) from None

    def _wait_mutations(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self._rows("SELECT count() FROM system.mutations WHERE database = %s AND is_done = 0"
                              % quote(self.database))
            if not left[0][0]:
                return
            time.sleep(0.05)
        raise StoreError("retention on store %s: deletes not done after %ds" % (self.location, timeout))

    def _expired_days(self, cutoff):
        """{table: [day, ...]}: the partitions every row of which is past retention."""
        live_revs = "SELECT day FROM revisions WHERE (%s) NOT IN (SELECT %s FROM archives WHERE archived_at < %d)" % (
            _KEY, _KEY, cutoff)
        live_metrics = ("SELECT day FROM flow_metrics WHERE (uuid, start) IN "
                        "(SELECT uuid, mstart FROM flows FINAL WHERE last >= %d)" % cutoff)
        sql = {   # in this order: the archives say which revisions are gone, the flows which metrics
            "revisions": "SELECT day FROM revisions GROUP BY day HAVING max(updated_at) < %d AND day NOT IN (%s)"
                         % (cutoff, live_revs),
            "flow_metrics": "SELECT day FROM flow_metrics GROUP BY day HAVING max(last) < %d AND day NOT IN (%s)"
                            % (cutoff, live_metrics),
            "flows": "SELECT day FROM flows GROUP BY day HAVING max(last) < %d" % cutoff,
            "archives": "SELECT day FROM archives GROUP BY day HAVING max(archived_at) < %d" % cutoff,
        }
        return {t: [r[0] for r in self._read(q)] for t, q in sql.items()}

    def _drop_partitions(self, cutoff):
        """Whole days past retention: DROP PARTITION (counted in what prune() returns)."""
        counts = {"revisions": 0, "flows": 0, "metrics": 0}
        for table, days in self._expired_days(cutoff).items():
            for day in days:
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
                    continue
                if table == "revisions":
                    counts["revisions"] += self._rows("SELECT count() FROM archives FINAL WHERE day = %s AND "
                                                      "archived_at < %d" % (quote(day), cutoff))[0][0]
                elif table in ("flows", "flow_metrics"):
                    key = "flows" if table == "flows" else "metrics"
                    counts[key] += self._rows("SELECT count() FROM %s FINAL WHERE day = %s" % (table, quote(day)))[0][0]
                try:
                    self.http.execute("ALTER TABLE %s DROP PARTITION %s" % (table, quote(day)))
                except ClickHouseError as exc:
                    raise StoreError("retention on store %s failed: %s" % (self.location, exc)) from None
                self.partitions_dropped += 1
                log.info("storage: retention dropped the %s partition of %s", table, day)
        return counts

    def prune(self, now_ms=None):
        now = _now() if now_ms is None else now_ms
        self._last_prune = time.monotonic()
        self.expire_resources(now)
        if not self.retention_ms:
            return {"revisions": 0, "flows": 0, "metrics": 0}
        cutoff = now - self.retention_ms
        counts = self._drop_partitions(cutoff)
        old_revs = "(%s) IN (SELECT %s FROM archives WHERE archived_at < %d)" % (_KEY, _KEY, cutoff)
        old_flows = "uuid IN (SELECT uuid FROM flows FINAL WHERE last < %d)" % cutoff
        old_metrics = "(%s OR (last < %d AND (uuid, start) NOT IN (SELECT uuid, mstart FROM flows FINAL)))" % (old_flows, cutoff)
        left = {"revisions": self._rows("SELECT count() FROM archives FINAL WHERE archived_at < %d" % cutoff)[0][0],
                "flows": self._rows("SELECT count() FROM flows FINAL WHERE last < %d" % cutoff)[0][0],
                "metrics": self._rows("SELECT count() FROM flow_metrics FINAL WHERE %s" % old_metrics)[0][0]}
        counts = {k: counts[k] + left[k] for k in counts}
        if left["revisions"]:
            self._mutate("revisions", old_revs)
            self._wait_mutations()
            self._mutate("archives", "archived_at < %d" % cutoff)
        if left["metrics"]:
            self._mutate("flow_metrics", old_metrics)
            self._wait_mutations()
        if left["flows"]:
            self._mutate("flows", "last < %d" % cutoff)
        self._wait_mutations()
        if any(counts.values()):
            log.info("storage: retention pruned %d revisions, %d flows, %d flow metrics",
                     counts["revisions"], counts["flows"], counts["metrics"])
        return counts

    def disk_usage(self):
        """{table: (rows, bytes on disk)} of the active parts."""
        rows = self._read("SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND database = %s "
                          "GROUP BY table" % quote(self.database))
        return {t: (int(r), int(b)) for t, r, b in rows}

    def close(self):
        if self._closed:
            return
        try:
            if self._graph is not None and self._writer.is_alive():
                self.detach()
        finally:
            self._closed = True
            if self._writer.is_alive():
                self._queue.put(_STOP)
                self._writer.join(60)
            self.http.close()
