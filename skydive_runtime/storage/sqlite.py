"""The embedded store: one SQLite file (stdlib sqlite3, WAL) holding topology history, API
resources and flows.

Threads: every write is queued and applied by one writer thread, in batches (one transaction
per batch, committed after `flush_interval` ms or `batch_size` rows, or at once when a reader
waits). Reads use one connection per calling thread and first wait for the writes queued
before them, so a read always sees every earlier write. The graph listener runs on the loop
thread and only serialises the element and queues it.

On-disk layout: see docs/storage.md.
"""

import asyncio
import atexit
import fcntl
import hashlib
import itertools
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
import zlib

from ..common.jsonutil import dumps
from ..common.timeutil import now_ms as _now
from ..graph.elements import Edge, Node
from ..graph.graph import Graph
from . import flowcodec
from .base import (MAX_RECORD_BYTES, NEVER, InvalidWrite, Store, StoreCorrupt, StoreError, check_resource_key,
                   flow_alive_between, flow_matches, flow_pushdown, normalize_flow_filter, parse_ms, parse_retention,
                   validate_resource)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x534B5944   # "SKYD"
DEFAULT_PATH = "/var/lib/skydive/skydive.db"

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE history(
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,            -- 0 node, 1 edge
    eid TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER,               -- NULL unless this revision ended with a delete
    archived_at INTEGER NOT NULL,     -- 2^63-1 while the revision is live
    host TEXT NOT NULL,
    origin TEXT NOT NULL,
    parent TEXT,
    child TEXT,
    metadata TEXT NOT NULL);
CREATE INDEX history_archived ON history(archived_at);
CREATE INDEX history_updated ON history(updated_at);
CREATE TABLE resources(
    kind TEXT NOT NULL, id TEXT NOT NULL, obj TEXT NOT NULL, expires_at INTEGER,
    PRIMARY KEY(kind, id)) WITHOUT ROWID;
CREATE TABLE strings(id INTEGER PRIMARY KEY, s TEXT NOT NULL UNIQUE);
CREATE TABLE flows(
    id INTEGER PRIMARY KEY,
    uuid INTEGER NOT NULL,
    tid INTEGER,
    node INTEGER, capture INTEGER, app INTEGER,
    net_a INTEGER, net_b INTEGER, link_a INTEGER, link_b INTEGER,
    start INTEGER,
    dlast INTEGER,                    -- Last - ifnull(Start, 0)
    mdelta INTEGER,                   -- LastUpdateMetric.Start - start when it lives in flow_metrics
    data BLOB NOT NULL);
CREATE UNIQUE INDEX flows_uuid ON flows(uuid);
CREATE INDEX flows_net_a ON flows(net_a);
CREATE INDEX flows_net_b ON flows(net_b);
CREATE INDEX flows_last ON flows((ifnull(start, 0) + dlast));
CREATE TABLE flow_metrics(
    fid INTEGER NOT NULL,             -- flows.id
    start INTEGER NOT NULL,
    dlast INTEGER,                    -- Last - Start
    abp INTEGER, abb INTEGER, bap INTEGER, bab INTEGER, rtt INTEGER,
    PRIMARY KEY(fid, start)) WITHOUT ROWID;
"""

# ---- flow encoding ----------------------------------------------------------------------------
# A flow row keeps the indexed fields as columns (strings through the `strings` dictionary,
# hex ids as 64-bit integers) and the rest as a record (`data`): codec 2 = varint skeleton id
# (flowcodec: the flow's shape, kept once in `strings`) + the binary values; codec 1 (used
# when a store has met too many distinct shapes) = raw deflate of the JSON, primed with a
# preset dictionary. Fields held in columns are named markers in both.

CODEC_JSON, CODEC_SKELETON = 1, 2
MAX_SKELETONS = 20000
_ZDICT = (
    '{"UUID":"\\u0001U","LayersPath":"Ethernet/IPv4/UDP","Application":"\\u0001A","Link":{"Protocol":"ETHERNET",'
    '"A":"\\u0001la","B":"\\u0001lb","ID":0},"Network":{"Protocol":"IPV4","A":"\\u0001na","B":"\\u0001nb","ID":0},'
    '"Transport":{"Protocol":"UDP","A":53,"B":53,"ID":0},"ICMP":{"Type":"ECHO","ID":1},'
    '"LastUpdateMetric":{"ABPackets":1,"ABBytes":98,"BAPackets":1,"BABytes":98,"Start":"\\u0001S",'
    '"Last":"\\u0001L"},"Metric":{"ABPackets":1,"ABBytes":98,"BAPackets":1,"BABytes":98,"Start":"\\u0001S",'
    '"Last":"\\u0001L","RTT":100000},"Start":"\\u0001S","Last":"\\u0001L","TrackingID":"\\u0001T",'
    '"L3TrackingID":"","ParentUUID":"","NodeTID":"\\u0001N","CaptureID":"\\u0001C","RawPacketsCaptured":0}'
).encode()
_WBITS = -12


def _deflate(raw):
    c = zlib.compressobj(6, zlib.DEFLATED, _WBITS, 4, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    return c.compress(raw) + c.flush()


def _inflate(blob):
    d = zlib.decompressobj(_WBITS, _ZDICT)
    return d.decompress(blob) + d.flush()


def _read_varint(buf, i):
    v = shift = 0
    while True:
        c = buf[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7


_U64 = 1 << 64
_I63 = 1 << 63


def hex_key(s):
    """(int64, canonical): a hex id string as a signed 64-bit integer; canonical means the
    string is exactly format(v, 'x') and can be rebuilt from the integer. Other strings get
    a 64-bit hash (equality still works: the same string gives the same key)."""
    if 0 < len(s) <= 16:
        try:
            v = int(s, 16)
        except ValueError:
            v = None
        if v is not None and format(v, "x") == s:
            return (v - _U64 if v >= _I63 else v), True
    v = int.from_bytes(hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
    return (v - _U64 if v >= _I63 else v), False


def hex_of_key(v):
    return format(v + _U64 if v < 0 else v, "x")


_STRING_FIELDS = (("NodeTID", "N"), ("CaptureID", "C"), ("Application", "A"))
_SIDE_FIELDS = (("Network", "n"), ("Link", "l"))
_MARKS = {k: flowcodec.Marker(k) for k in ("U", "T", "N", "C", "A", "na", "nb", "la", "lb", "S", "L", "M")}


def _marker_json(v):
    if isinstance(v, flowcodec.Marker):
        return v.name
    raise TypeError("unsupported flow value %r" % (v,))


_FLOW_COLUMNS = "id, uuid, tid, node, capture, app, net_a, net_b, link_a, link_b, start, dlast, mdelta, data"
_LAST = "(ifnull(start, 0) + dlast)"   # the flow's Last, as indexed by flows_last
_LUM_KEYS = ("ABPackets", "ABBytes", "BAPackets", "BABytes", "Start", "Last")


def _is_int(v):
    """An integer, not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def _metric_row_fits(m):
    """True when this LastUpdateMetric is rebuilt exactly from its flow_metrics row."""
    keys = tuple(m)
    if keys != _LUM_KEYS and not (keys[:6] == _LUM_KEYS and keys[6:] == ("RTT",)):
        return False
    for v in m.values():
        if not _is_int(v):
            return False
    return True


_PUSH_COLUMNS = {"UUID": "uuid", "TrackingID": "tid", "NodeTID": "node", "CaptureID": "capture",
                 "Application": "app", "Network.A": "net_a", "Network.B": "net_b",
                 "Link.A": "link_a", "Link.B": "link_b"}
_HEX_FIELDS = ("UUID", "TrackingID")


def _int_or_none(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


class _Call:
    """A function run by the writer thread inside its transaction."""

    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn):
        self.fn = fn
        self.done = threading.Event()
        self.result = None
        self.error = None


class _Barrier:
    """Asks the writer to commit what is queued before it now, then to call callback(error)."""

    __slots__ = ("callback",)

    def __init__(self, callback):
        self.callback = callback


_STOP = object()
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _check_text(what, s):
    """s (a str) can be stored: valid UTF-8 once encoded, not larger than a record may be."""
    try:
        n = len(s.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidWrite("%s is not valid UTF-8 text: %s" % (what, exc.reason)) from None
    if n > MAX_RECORD_BYTES:
        raise InvalidWrite("%s is too large (%d bytes, at most %d)" % (what, n, MAX_RECORD_BYTES))


def corrupt_message(path, reason):
    """The refusal of a damaged store file: what is wrong and how to recover."""
    return ("store %s %s. The analyzer does not start on a damaged store. To recover, stop the analyzer, "
            "then either restore a backup: `skydive store restore BACKUP --path %s`, or move the file away "
            "to start with an empty store: `mv %s %s.damaged` (and its -wal file, if any)"
            % (path, reason, path, path, path))


_OPEN_STORES = weakref.WeakSet()


@atexit.register
def _close_open_stores():
    """Write what is queued when the process exits without closing its stores."""
    for store in list(_OPEN_STORES):
        try:
            store.close()
        except Exception:   # exiting: report and go on
            log.exception("storage: closing %s at exit failed", store.path)


def integrity_problems(conn, pragma="quick_check"):
    """'' when SQLite's quick_check/integrity_check passes, else its first findings on one line."""
    lines = []
    for (text,) in conn.execute("PRAGMA %s(5)" % pragma):
        lines.extend(x for x in str(text).splitlines() if x and not x.startswith("*** in database"))
    return "" if lines == ["ok"] else "; ".join(lines)


def fsync_path(path):
    """fsync a file or a directory (after a rename into it) by its path."""
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SQLITE_MAGIC = b"SQLite format 3\0"


def check_file(path):
    """Cheap checks of a store file before SQLite opens it: False when there is none yet (a
    fresh store will be created); raises StoreCorrupt when it is empty, not an SQLite file, or
    shorter than its header says (truncated)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError("cannot open store %s: %s" % (path, exc.strerror or exc)) from None
    if size == 0:
        raise StoreCorrupt(corrupt_message(path, "is empty (0 bytes)"))
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise StoreError("cannot read store %s: %s" % (path, exc.strerror or exc)) from None
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise StoreCorrupt(corrupt_message(path, "is not an SQLite database (bad header, %d bytes)" % size))
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    header_valid = head[24:28] == head[92:96]   # the in-header size is current
    if page < 512 or page & (page - 1):
        raise StoreCorrupt(corrupt_message(path, "has a corrupt header (page size %d)" % page))
    if size % page or (header_valid and pages * page > size):
        raise StoreCorrupt(corrupt_message(path, "is truncated (%d bytes, its header says %d)"
                                           % (size, pages * page if header_valid else size - size % page + page)))
    return True


class _HistoryRecorder:
    """The graph listener: serialises each event at once (elements are mutated in place)."""

    def __init__(self, store):
        self.store = store
        self.live = ({}, {})   # per kind: element ID -> (rowid, UpdatedAt) of its live revision

    def _row(self, kind, el, rowid, archived_at=NEVER, deleted_at=None):
        """The history row of el, or None (logged) when a value cannot be stored: a bad element
        is left out of the history and harms no other write of the batch."""
        try:
            row = (rowid, kind, el.ID, el.Revision, el.CreatedAt, el.UpdatedAt, deleted_at, archived_at,
                   el.Host or "", el.Origin or "", getattr(el, "Parent", None), getattr(el, "Child", None),
                   dumps(el.Metadata))
            for name, v in zip(("Revision", "CreatedAt", "UpdatedAt", "DeletedAt"), row[3:7]):
                if v is not None and (not isinstance(v, int) or not _I64_MIN <= v <= _I64_MAX):
                    raise InvalidWrite("%s %r is not a 64-bit integer" % (name, v))
            for name, v in zip(("ID", "Host", "Origin", "Parent", "Child", "Metadata"), row[2:3] + row[8:]):
                if v is not None:
                    _check_text(name, v)
        except (InvalidWrite, TypeError, ValueError) as exc:
            log.warning("storage: %s %r (revision %r) left out of the history: %s",
                        "node" if kind == 0 else "edge", el.ID, el.Revision, exc)
            return None
        return row

    def record(self, kind, el):
        rowid = next(self.store._rowids)
        row = self._row(kind, el, rowid)
        if row is None:
            return
        self.live[kind][el.ID] = (rowid, el.UpdatedAt)
        self.store._enqueue(("hi", row))

    def supersede(self, kind, el, t, deleted):
        prev = self.live[kind].pop(el.ID, None)
        if prev is None:
            if deleted and isinstance(el.UpdatedAt, int):   # never seen alive (attached later): keep its last state
                t = max(t, el.UpdatedAt)
                row = self._row(kind, el, next(self.store._rowids), t, t)
                if row is not None:
                    self.store._enqueue(("hi", row))
            return
        rowid, prev_updated = prev
        t = max(t, prev_updated)
        self.store._enqueue(("ha", (t, t if deleted else None, rowid)))

    def on_node_added(self, node):
        self.record(0, node)

    def updated(self, kind, el):
        """Archive the live revision and record the new one (one queue operation)."""
        prev = self.live[kind].get(el.ID)
        rowid = next(self.store._rowids)
        row = self._row(kind, el, rowid)
        if row is None:   # the previous revision stays the live one
            return
        self.live[kind][el.ID] = (rowid, el.UpdatedAt)
        if prev is None:
            self.store._enqueue(("hi", row))
        else:
            self.store._enqueue(("hu", (max(el.UpdatedAt, prev[1]), None, prev[0]), row))

    def on_node_updated(self, node, ops):
        self.updated(0, node)

    def on_node_deleted(self, node):
        self.supersede(0, node, node.DeletedAt or _now(), True)

    def on_edge_added(self, edge):
        self.record(1, edge)

    def on_edge_updated(self, edge, ops):
        self.updated(1, edge)

    def on_edge_deleted(self, edge):
        self.supersede(1, edge, edge.DeletedAt or _now(), True)


class _PendingEdges:
    """Restored edges waiting for an end that an agent will bring back (its resync)."""

    def __init__(self, graph, edges):
        self.graph = graph
        self.edges = {e.ID: e for e in edges}
        graph.add_listener(self)
        log.info("storage: %d restored edges wait for their ends", len(edges))

    def on_node_added(self, node):
        if not any(node.ID in (e.Parent, e.Child) for e in self.edges.values()):
            return
        try:   # after the other listeners have seen the node
            asyncio.get_running_loop().call_soon(self.add_ready)
        except RuntimeError:
            self.add_ready()

    def add_ready(self):
        g = self.graph
        for eid, edge in list(self.edges.items()):
            if eid in g.edges:
                del self.edges[eid]
            elif edge.Parent in g.nodes and edge.Child in g.nodes:
                del self.edges[eid]
                g.add_edge(edge)
        if not self.edges:
            g.remove_listener(self)


class SQLiteStore(Store):
    name = "sqlite"

    def __init__(self, path=DEFAULT_PATH, retention=None, prune_interval=None, flush_interval=None,
                 batch_size=None, synchronous="NORMAL", heartbeat_interval=None, max_flow_shapes=MAX_SKELETONS,
                 max_size_mb=None, check_on_start="quick"):
        if not isinstance(path, str) or not path.strip():
            raise StoreError("storage path: expected a file path, got %r" % (path,))
        self.path = os.path.abspath(path)
        self.retention_ms = parse_retention(retention)
        self.prune_interval_ms = parse_ms(prune_interval, "prune_interval", 300_000)
        self.flush_interval = parse_ms(flush_interval, "flush_interval", 100) / 1000.0
        self.heartbeat_interval = parse_ms(heartbeat_interval, "heartbeat_interval", 5_000) / 1000.0
        if batch_size is None:
            batch_size = 20000
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise StoreError("batch_size: expected a positive integer, got %r" % (batch_size,))
        self.batch_size = batch_size
        self.max_flow_shapes = max_flow_shapes
        if max_size_mb is not None and (isinstance(max_size_mb, bool) or not isinstance(max_size_mb, (int, float))
                                        or max_size_mb <= 0):
            raise StoreError("max_size_mb: expected a positive number of megabytes, got %r" % (max_size_mb,))
        self.max_size_mb = max_size_mb
        if check_on_start not in ("quick", "header"):
            raise StoreError("check_on_start: expected quick (PRAGMA quick_check) or header (header and size only), "
                             "got %r" % (check_on_start,))
        self.check_on_start = check_on_start
        sync = str(synchronous).upper()
        if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError("synchronous: expected OFF, NORMAL, FULL or EXTRA, got %r" % (synchronous,))

        self._closed = False
        self._lock_fd = None
        self._wconn = None
        self._queue = queue.SimpleQueue()
        self._qlock = threading.Lock()
        self._enqueued = 0
        self._applied = 0
        self._write_error = None
        self._recorder = None
        self._graph = None
        self._restore = None
        self._readers = []
        self._readers_lock = threading.Lock()
        self._local = threading.local()
        self._rstrings = {}           # reader side: string id -> string (immutable once written)
        self._rstring_ids = {}        # reader side: string -> id
        self._rskeletons = {}         # reader side: skeleton string id -> flowcodec.Skeleton
        self.stats = {"batches": 0, "flows_rejected": 0, "commit_seconds": 0.0}

        self._acquire_lock()
        try:
            if not check_file(self.path):
                self._create_fresh(sync)
            self._wconn = self._connect()
            self._wconn.execute("PRAGMA synchronous=%s" % sync)
            if max_size_mb:
                page = self._wconn.execute("PRAGMA page_size").fetchone()[0]
                self._wconn.execute("PRAGMA max_page_count=%d" % max(8, int(max_size_mb * 1048576) // page))
            self._init_schema()
            if self.check_on_start == "quick":
                self._quick_check()
            self._load_writer_state()
        except BaseException:
            self._release()
            raise
        self._writer = threading.Thread(target=self._run, name="sqlite-store-writer", daemon=True)
        self._writer.start()
        _OPEN_STORES.add(self)

    # ---- opening ---------------------------------------------------------------------------
    def _acquire_lock(self):
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreError("cannot create the directory of store %s: %s" % (self.path, exc.strerror or exc)) from None
        if os.path.isdir(self.path):
            raise StoreError("store path %s is a directory, expected a file" % self.path)
        try:
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError("cannot open store %s: %s" % (self.path, exc.strerror or exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError("store %s is already open (by this or another process)" % self.path) from None
        self._lock_fd = fd

    def _connect(self, path=None):
        path = path or self.path
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:
            raise StoreError("cannot open store %s: %s" % (path, exc)) from None
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError("cannot open store %s: WAL journal mode refused (got %s)" % (path, mode))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreCorrupt(corrupt_message(path, "cannot be read (%s): the file is corrupt or not a skydive store"
                                               % exc)) from None
        return conn

    def _create_fresh(self, sync):
        """First start: build the empty store beside the path, then rename it into place, so a
        crash while creating it never leaves a half-made store behind."""
        for suffix in ("-wal", "-shm"):
            orphan = self.path + suffix
            if os.path.exists(orphan):   # left by a store file that was moved away
                aside = "%s.orphan-%d" % (orphan, time.time())
                log.warning("storage: %s has no store file beside it, moved to %s", orphan, aside)
                os.replace(orphan, aside)
        tmp = self.path + ".creating"
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(tmp + suffix):
                os.unlink(tmp + suffix)
        conn = self._connect(tmp)
        try:
            conn.execute("PRAGMA synchronous=%s" % sync)
            self._wconn = conn
            self._init_schema()
        finally:
            self._wconn = None
            conn.close()
        fsync_path(tmp)
        os.replace(tmp, self.path)
        fsync_path(os.path.dirname(self.path))
        log.info("storage: created an empty store %s", self.path)

    def _quick_check(self):
        try:
            problems = integrity_problems(self._wconn, "quick_check")
        except sqlite3.DatabaseError as exc:
            problems = str(exc)
        if problems:
            raise StoreCorrupt(corrupt_message(self.path, "fails its integrity check (%s)" % problems))

    def _init_schema(self):
        c = self._wconn
        try:
            app_id = c.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                c.execute("BEGIN IMMEDIATE")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                c.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(_now()),))
                c.execute("PRAGMA application_id=%d" % APPLICATION_ID)
                c.execute("COMMIT")
                return
            if app_id != APPLICATION_ID or "meta" not in tables:
                raise StoreError("cannot open store %s: the file is an SQLite database but not a skydive store"
                                 % self.path)
            row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError("store %s has schema version %d, newer than this version supports (%d)"
                                 % (self.path, version, SCHEMA_VERSION))
            if version < SCHEMA_VERSION:
                raise StoreError("store %s has schema version %d which cannot be upgraded to %d"
                                 % (self.path, version, SCHEMA_VERSION))
        except sqlite3.DatabaseError as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise StoreCorrupt(corrupt_message(self.path, "cannot be read (%s)" % exc)) from None

    def _load_writer_state(self):
        try:
            top = self._wconn.execute("SELECT MAX(id) FROM history").fetchone()[0] or 0
            self._load_strings()
        except sqlite3.Error as exc:
            raise StoreError("cannot open store %s: %s" % (self.path, exc)) from None
        self._rowids = itertools.count(top + 1)
        self._last_prune = time.monotonic()

    def _load_strings(self):
        c = self._wconn
        self._sids = {s: i for i, s in c.execute("SELECT id, s FROM strings")}
        self._next_sid = (c.execute("SELECT MAX(id) FROM strings").fetchone()[0] or 0) + 1
        self._skeletons = sum(1 for k in self._sids if k.startswith("{"))

    # ---- writer ------------------------------------------------------------------------------
    def _check_open(self):
        if self._closed:
            raise StoreError("store %s is closed" % self.path)

    def _enqueue(self, op):
        with self._qlock:
            self._enqueued += 1
            self._queue.put(op)

    def _run(self):
        q = self._queue
        stopping = False
        while not stopping:
            try:
                op = q.get(timeout=self.heartbeat_interval)
            except queue.Empty:
                if self._recorder is not None or self.retention_ms:
                    self._apply([])   # heartbeat and periodic retention while idle
                continue
            batch = [op]
            rows = 1
            deadline = time.monotonic() + self.flush_interval
            urgent = op is _STOP or isinstance(op, _Call)
            hurry = op.__class__ is _Barrier   # someone waits for a commit: take what is queued, no more
            while not urgent and rows < self.batch_size:
                remaining = deadline - time.monotonic()
                try:
                    op = q.get(timeout=remaining) if remaining > 0 and not hurry else q.get_nowait()
                except queue.Empty:
                    break
                batch.append(op)
                rows += len(op[1]) if op.__class__ is tuple and op[0] == "fl" else 1
                urgent = op is _STOP or isinstance(op, _Call)
                hurry = hurry or op.__class__ is _Barrier
            stopping = self._apply(batch)

    def _apply(self, batch):
        """Apply queued ops in one transaction. When it fails on a value rather than on I/O (a
        bad op that validation let through), apply them one by one, so that only the bad one is
        lost. Returns True when _STOP was met."""
        errors = {}
        t0 = time.monotonic()
        try:
            try:
                self._transaction(batch)
                self.stats["commit_seconds"] += time.monotonic() - t0
            except Exception as exc:
                err = self._failed(exc, len(batch))
                if len(batch) > 1 and not isinstance(exc, sqlite3.OperationalError):
                    errors = self._apply_singly(batch)
                    self._write_error = next(iter(errors.values()), None)
                else:
                    errors = dict.fromkeys(range(len(batch)), err)
        finally:
            self._applied += len(batch)
            first_error = None
            for i, op in enumerate(batch):
                if i in errors and first_error is None:
                    first_error = errors[i]
                if isinstance(op, _Call):
                    if i in errors:   # its effects, if any, were rolled back
                        op.error, op.result = errors[i], None
                    op.done.set()
                elif op.__class__ is _Barrier:   # committed unless a write queued before it was lost
                    try:
                        op.callback(first_error)
                    except Exception:   # a waiter's problem must not stop the writer
                        log.exception("storage: commit callback failed")
        return any(op is _STOP for op in batch)

    def _apply_singly(self, batch):
        errors = {}
        for i, op in enumerate(batch):
            if op is _STOP or op.__class__ is _Barrier:
                continue
            try:
                self._transaction([op])
            except Exception as exc:
                errors[i] = self._failed(exc, 1)
                log.warning("storage: operation %r lost, the others of its batch are written",
                            op[0] if isinstance(op, tuple) else op)
        return errors

    def _failed(self, exc, n):
        """Roll back after a failed transaction of n ops; returns the StoreError to report."""
        log.exception("storage: writing a batch of %d operations to %s failed", n, self.path)
        c = self._wconn
        try:
            if c.in_transaction:
                c.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self._write_error = err = StoreError("writing to store %s failed: %s" % (self.path, exc))
        try:   # strings assigned in the rolled back batch are gone: resync the dictionary
            self._load_strings()
        except (sqlite3.Error, StoreError):
            log.exception("storage: reloading the string dictionary of %s failed", self.path)
        return err

    def _transaction(self, batch):
        c = self._wconn
        h_ins, h_arch, flows = [], [], []

        def flush_lists():
            if h_ins:
                c.executemany("INSERT INTO history VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", h_ins)
                h_ins.clear()
            if h_arch:
                c.executemany("UPDATE history SET archived_at=?, deleted_at=? WHERE id=?", h_arch)
                h_arch.clear()
            if flows:
                self._write_flows(c, flows)
                flows.clear()

        c.execute("BEGIN IMMEDIATE")
        for op in batch:
            if op is _STOP or op.__class__ is _Barrier:
                continue
            if isinstance(op, _Call):
                flush_lists()
                if op.fn is not None:
                    op.error = None
                    try:
                        c.execute("SAVEPOINT call")
                        op.result = op.fn(c)
                        c.execute("RELEASE call")
                    except Exception as exc:
                        c.execute("ROLLBACK TO call")
                        c.execute("RELEASE call")
                        op.error = exc
                continue
            tag = op[0]
            if tag == "hi":
                h_ins.append(op[1])
            elif tag == "hu":
                h_arch.append(op[1])
                h_ins.append(op[2])
            elif tag == "ha":
                h_arch.append(op[1])
            elif tag == "fl":
                flows.extend(op[1])
            elif tag == "rp":
                c.execute("INSERT OR REPLACE INTO resources VALUES (?,?,?,?)", op[1])
            elif tag == "rd":
                c.execute("DELETE FROM resources WHERE kind=? AND id=?", op[1])
        flush_lists()
        if self._recorder is not None:
            c.execute("INSERT OR REPLACE INTO meta VALUES ('heartbeat', ?)", (str(_now()),))
        if self.retention_ms and (time.monotonic() - self._last_prune) * 1000 >= self.prune_interval_ms:
            self._last_prune = time.monotonic()
            self._prune(c, _now())
        c.execute("COMMIT")
        self.stats["batches"] += 1

    def queue_depth(self):
        return max(0, self._enqueued - self._applied)

    def when_committed(self, callback):
        if self._closed or not self._writer.is_alive():
            callback(StoreError("store %s is closed" % self.path))
            return
        self._enqueue(_Barrier(callback))

    def _submit(self, fn=None, timeout=120):
        """Run fn(conn) in the writer thread after everything queued before; return its result."""
        self._check_open()
        call = _Call(fn)
        self._enqueue(call)
        if not call.done.wait(timeout):
            raise StoreError("store %s: the writer did not answer within %ds" % (self.path, timeout))
        if call.error is not None:
            err = call.error
            if err is self._write_error:
                self._write_error = None
            if isinstance(err, StoreError):
                raise err
            raise StoreError("store %s: %s" % (self.path, err)) from err
        return call.result

    def flush(self):
        self._check_open()
        if not self._writer.is_alive():
            raise StoreError("store %s: the writer thread has stopped" % self.path)
        if self._enqueued != self._applied:
            self._submit()
        if self._write_error is not None:
            err, self._write_error = self._write_error, None
            raise err

    # ---- readers -----------------------------------------------------------------------------
    def _reader(self):
        self._check_open()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA query_only=1")
            except sqlite3.Error as exc:
                raise StoreError("cannot read store %s: %s" % (self.path, exc)) from None
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _read(self, sql, args=()):
        self.flush()
        try:
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError("reading store %s failed: %s" % (self.path, exc)) from None

    # ---- topology history --------------------------------------------------------------------
    def _close_live(self, c, t, keep):
        """Close the live revisions at t, except (keep=True) those restore() accepts."""
        sql = "UPDATE history SET archived_at=MAX(updated_at, ?), deleted_at=MAX(updated_at, ?) WHERE archived_at=?"
        if keep and self._restore is not None:
            c.create_function("skydive_restorable", 1, lambda origin: 1 if self._restore(origin) else 0,
                              deterministic=True)
            sql += " AND NOT skydive_restorable(origin)"
        return c.execute(sql, (t, t, NEVER)).rowcount

    def attach(self, graph, restore=None):
        self._check_open()
        if self._graph is graph:
            return
        if self._graph is not None:
            raise StoreError("store %s already archives another graph" % self.path)
        self._restore = restore
        heartbeat = [None]

        def reopen(c):
            row = c.execute("SELECT value FROM meta WHERE key='heartbeat'").fetchone()
            t = int(row[0]) if row else _now()
            heartbeat[0] = t
            closed = self._close_live(c, t, keep=True)
            live = c.execute("SELECT %s FROM history WHERE archived_at=? ORDER BY id" % self._H_COLS, (NEVER,)).fetchall()
            return closed, live

        closed, live = self._submit(reopen)
        if closed:
            log.info("storage: %d revisions left live by the previous run closed at %d", closed, heartbeat[0])
        rec = _HistoryRecorder(self)
        restored = self._restore_live(graph, rec, live, heartbeat[0])
        if restored:
            log.info("storage: %d nodes and %d edges of the previous run restored", *restored)
        self._recorder = rec
        self._graph = graph
        for kind, elements in ((0, graph.nodes), (1, graph.edges)):
            for el in list(elements.values()):
                if el.ID not in rec.live[kind]:
                    rec.record(kind, el)
        graph.add_listener(rec)

    def _restore_live(self, graph, rec, rows, t):
        """Put the revisions still live (restorable ones) back into graph; their rows stay the
        live revisions. Edges with an end not in the graph wait for it (_PendingEdges)."""
        if not rows:
            return None
        latest = {}
        for row in rows:   # one live revision per element (the latest) in case of duplicates
            latest[(row[0], row[1])] = row
        stale = [(row[11],) for row in rows if latest[(row[0], row[1])] is not row]
        nodes = [r for r in latest.values() if r[0] == 0 and r[1] not in graph.nodes]
        edges = [r for r in latest.values() if r[0] == 1 and r[1] not in graph.edges]
        for row in nodes:
            graph.add_node(self._element(row))
            rec.live[0][row[1]] = (row[11], row[4])
        pending = []
        for row in edges:
            edge = self._element(row)
            if edge.Parent in graph.nodes and edge.Child in graph.nodes:
                graph.add_edge(edge)
                rec.live[1][row[1]] = (row[11], row[4])
            else:
                stale.append((row[11],))
                pending.append(edge)
        if stale:   # closed now; a pending edge gets a new revision when both its ends are back
            self._submit(lambda c: c.executemany(
                "UPDATE history SET archived_at=MAX(updated_at, %d), deleted_at=MAX(updated_at, %d) WHERE id=?"
                % (t, t), stale))
        if pending:
            _PendingEdges(graph, pending)
        return len(nodes), len(edges) - len(pending)

    def detach(self):
        if self._graph is None:
            return
        self._graph.remove_listener(self._recorder)
        self._graph = None
        self._recorder = None
        t = _now()
        self._submit(lambda c: self._close_live(c, t, keep=True))

    @staticmethod
    def _element(row):
        kind, eid, rev, created, updated, deleted, host, origin, parent, child, md = row[:11]
        kw = dict(metadata=json.loads(md), host=host, origin=origin, created_at=created,
                  updated_at=updated, deleted_at=deleted or 0, revision=rev)
        if kind == 0:
            return Node(eid, **kw)
        return Edge(eid, parent, child, **kw)

    _H_COLS = "kind, eid, revision, created_at, updated_at, deleted_at, host, origin, parent, child, metadata, id"

    @staticmethod
    def _times(*values):
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (-NEVER < v < NEVER):
                raise StoreError("history times must be milliseconds (numbers), got %s"
                                 % " and ".join(repr(x) for x in values))
        return [int(v) for v in values]

    def _history_rows(self, start, end):
        """Revisions alive at some instant of [start, end]."""
        # pick the selective index: early windows are served by updated_at, recent ones by archived_at
        self.flush()
        first = self._reader().execute("SELECT MIN(updated_at) FROM history").fetchone()[0]
        if first is None:
            return []
        index = "history_updated" if (end - first) < (_now() - start) else "history_archived"
        return self._read(
            "SELECT %s FROM history INDEXED BY %s WHERE updated_at <= ?2 AND archived_at > ?1 "
            "AND created_at <= ?2 AND (deleted_at IS NULL OR deleted_at > ?1)" % (self._H_COLS, index),
            (start, end))

    def graph_at(self, t_ms):
        best = {}
        t_ms, = self._times(t_ms)
        for row in self._history_rows(t_ms, t_ms):
            key = (row[0], row[1])
            cur = best.get(key)
            if cur is None or (row[2], row[4], row[11]) > (cur[2], cur[4], cur[11]):
                best[key] = row
        g = Graph()
        nodes, edges = [], []
        for row in best.values():
            (nodes if row[0] == 0 else edges).append(self._element(row))
        g.load(sorted(nodes, key=lambda n: n.CreatedAt), sorted(edges, key=lambda e: e.CreatedAt))
        return g

    def revisions_between(self, start_ms, end_ms):
        start_ms, end_ms = self._times(start_ms, end_ms)
        if end_ms < start_ms:
            start_ms, end_ms = end_ms, start_ms
        rows = sorted(self._history_rows(start_ms, end_ms), key=lambda r: r[11])
        nodes, edges = [], []
        for row in rows:
            (nodes if row[0] == 0 else edges).append(self._element(row))
        return nodes, edges

    # ---- resources ---------------------------------------------------------------------------
    _check_kind_id = staticmethod(check_resource_key)

    def put_resource(self, kind, id, obj, ttl_ms=None):
        self._check_open()
        text, ttl_ms = validate_resource(kind, id, obj, ttl_ms)
        expires = None if ttl_ms is None else _now() + ttl_ms
        _check_text("resource %s ID" % kind, id)
        _check_text("resource %s/%s" % (kind, id), text)
        self._enqueue(("rp", (kind, id, text, expires)))

    def get_resource(self, kind, id):
        self._check_kind_id(kind, id)
        rows = self._read("SELECT obj FROM resources WHERE kind=? AND id=? AND (expires_at IS NULL OR expires_at > ?)",
                          (kind, id, _now()))
        return json.loads(rows[0][0]) if rows else None

    def list_resources(self, kind):
        rows = self._read("SELECT id, obj FROM resources WHERE kind=? AND (expires_at IS NULL OR expires_at > ?) "
                          "ORDER BY id", (kind, _now()))
        return {rid: json.loads(obj) for rid, obj in rows}

    def delete_resource(self, kind, id):
        self._check_kind_id(kind, id)
        t = _now()
        return self._submit(lambda c: c.execute(
            "DELETE FROM resources WHERE kind=? AND id=? AND (expires_at IS NULL OR expires_at > ?)",
            (kind, id, t)).rowcount > 0)

    def forget_resource(self, kind, id):
        self._check_open()
        self._check_kind_id(kind, id)
        self._enqueue(("rd", (kind, id)))

    def expire_resources(self, now_ms=None):
        t = _now() if now_ms is None else now_ms

        def expire(c):
            rows = c.execute("SELECT kind, id, obj FROM resources WHERE expires_at IS NOT NULL AND expires_at <= ? "
                             "ORDER BY expires_at", (t,)).fetchall()
            c.execute("DELETE FROM resources WHERE expires_at IS NOT NULL AND expires_at <= ?", (t,))
            return [(k, i, json.loads(o)) for k, i, o in rows]
        return self._submit(expire)

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
        if batch:
            self._enqueue(("fl", batch))

    def _sid(self, s, new):
        i = self._sids.get(s)
        if i is None:
            _check_text("flow string", s)
            i = self._next_sid
            self._next_sid += 1
            self._sids[s] = i
            new.append((i, s))
        return i

    def _encode_flow(self, f, new_strings):
        d = dict(f)
        ukey, canonical = hex_key(d["UUID"])
        if canonical:
            d["UUID"] = _MARKS["U"]
        tid = d.get("TrackingID")
        tkey = None
        if isinstance(tid, str) and tid:
            tkey, canonical = hex_key(tid)
            if canonical:
                d["TrackingID"] = _MARKS["T"]
        cols = [ukey, tkey]
        for k, mark in _STRING_FIELDS:
            v = d.get(k)
            if isinstance(v, str):
                cols.append(self._sid(v, new_strings))
                d[k] = _MARKS[mark]
            else:
                cols.append(None)
        for field, prefix in _SIDE_FIELDS:
            layer = d.get(field)
            a = b = None
            if isinstance(layer, dict):
                layer = dict(layer)
                if isinstance(layer.get("A"), str):
                    a = self._sid(layer["A"], new_strings)
                    layer["A"] = _MARKS[prefix + "a"]
                if isinstance(layer.get("B"), str):
                    b = self._sid(layer["B"], new_strings)
                    layer["B"] = _MARKS[prefix + "b"]
                d[field] = layer
            cols.extend((a, b))
        start, last = d.get("Start"), d.get("Last")
        start = start if _is_int(start) else None
        last = last if _is_int(last) else None
        if start is not None:
            d["Start"] = _MARKS["S"]
        if last is not None:
            d["Last"] = _MARKS["L"]
        cols.extend((start, None if last is None else last - (start or 0)))
        lum = d.get("LastUpdateMetric")
        mdelta = None
        if isinstance(lum, dict) and _metric_row_fits(lum):
            mdelta = lum["Start"] - (start or 0)
            d["LastUpdateMetric"] = _MARKS["M"]
        cols.append(mdelta)
        for k in ("Metric", "LastUpdateMetric"):
            m = d.get(k)
            if isinstance(m, dict):
                m = dict(m)
                if start is not None and _int_or_none(m.get("Start")) == start and _is_int(m["Start"]):
                    m["Start"] = _MARKS["S"]
                if last is not None and _int_or_none(m.get("Last")) == last and _is_int(m["Last"]):
                    m["Last"] = _MARKS["L"]
                d[k] = m
        skeleton, values = flowcodec.split(d)
        sk = self._sids.get(skeleton)
        if sk is None and self._skeletons < self.max_flow_shapes:
            sk = self._sid(skeleton, new_strings)
            self._skeletons += 1
        if sk is not None:
            head = bytearray((CODEC_SKELETON,))
            flowcodec._varint(head, sk)
            data = bytes(head) + values
        else:
            data = bytes((CODEC_JSON,)) + _deflate(json.dumps(
                d, separators=(",", ":"), ensure_ascii=False, default=_marker_json).encode())
        for v in cols:
            if v is not None and not _I64_MIN <= v <= _I64_MAX:
                raise InvalidWrite("value %d does not fit in 64 bits" % v)
        cols.append(data)
        metric = None
        m = f.get("LastUpdateMetric")
        if isinstance(m, dict):
            ms = _int_or_none(m.get("Start"))
            if ms is not None:
                ml = _int_or_none(m.get("Last"))
                metric = (ms, None if ml is None else ml - ms, _int_or_none(m.get("ABPackets")),
                          _int_or_none(m.get("ABBytes")), _int_or_none(m.get("BAPackets")),
                          _int_or_none(m.get("BABytes")), _int_or_none(m.get("RTT")), ukey)
                if any(v is not None and not _I64_MIN <= v <= _I64_MAX for v in metric):
                    raise InvalidWrite("LastUpdateMetric value does not fit in 64 bits")
        return cols, metric

    def _write_flows(self, c, flows):
        new_strings, rows, metrics = [], [], []
        for f in flows:
            try:
                cols, metric = self._encode_flow(f, new_strings)
            except Exception as exc:
                self.stats["flows_rejected"] += 1
                log.warning("storage: flow %r not stored: %s", f.get("UUID"), exc)
                continue
            rows.append(cols)
            if metric is not None:
                metrics.append(metric)
        if new_strings:
            c.executemany("INSERT INTO strings VALUES (?,?)", new_strings)
        c.executemany(
            "INSERT INTO flows(uuid, tid, node, capture, app, net_a, net_b, link_a, link_b, start, dlast, mdelta, "
            "data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(uuid) DO UPDATE SET tid=excluded.tid, "
            "node=excluded.node, capture=excluded.capture, app=excluded.app, net_a=excluded.net_a, "
            "net_b=excluded.net_b, link_a=excluded.link_a, link_b=excluded.link_b, start=excluded.start, "
            "dlast=excluded.dlast, mdelta=excluded.mdelta, data=excluded.data "
            "WHERE ifnull(ifnull(excluded.start, 0) + excluded.dlast, 0) >= ifnull(%s, 0)" % _LAST, rows)
        if metrics:
            c.executemany("INSERT OR REPLACE INTO flow_metrics SELECT id, ?, ?, ?, ?, ?, ?, ? FROM flows WHERE uuid=?",
                          metrics)

    def _string(self, conn, i):
        if i is None:
            return None
        s = self._rstrings.get(i)
        if s is None:
            row = conn.execute("SELECT s FROM strings WHERE id=?", (i,)).fetchone()
            if row is None:
                raise StoreError("store %s: flow refers to unknown string %d (corrupt store)" % (self.path, i))
            s = self._rstrings[i] = row[0]
        return s

    def _string_ids(self, conn, values):
        out = []
        for v in values:
            i = self._rstring_ids.get(v)
            if i is None:
                row = conn.execute("SELECT id FROM strings WHERE s=?", (v,)).fetchone()
                if row is None:
                    continue
                i = self._rstring_ids[v] = row[0]
            out.append(i)
        return out

    def _skeleton(self, conn, sid):
        sk = self._rskeletons.get(sid)
        if sk is None:
            sk = self._rskeletons[sid] = flowcodec.Skeleton(self._string(conn, sid))
        return sk

    def _decode_flow(self, conn, row):
        fid, ukey, tkey, node, capture, app, net_a, net_b, link_a, link_b, start, dlast, mdelta, data = row
        last = None if dlast is None else (start or 0) + dlast
        string = self._string
        lum = None
        if mdelta is not None:
            mstart = (start or 0) + mdelta
            m = conn.execute("SELECT dlast, abp, abb, bap, bab, rtt FROM flow_metrics WHERE fid=? AND start=?",
                             (fid, mstart)).fetchone()
            if m is not None:
                lum = {"ABPackets": m[1], "ABBytes": m[2], "BAPackets": m[3], "BABytes": m[4],
                       "Start": mstart, "Last": mstart + m[0]}
                if m[5] is not None:
                    lum["RTT"] = m[5]
        marks = {"M": lum, "U": hex_of_key(ukey), "T": None if tkey is None else hex_of_key(tkey),
                 "N": string(conn, node), "C": string(conn, capture), "A": string(conn, app),
                 "na": string(conn, net_a), "nb": string(conn, net_b),
                 "la": string(conn, link_a), "lb": string(conn, link_b), "S": start, "L": last}
        codec = data[0]
        try:
            if codec == CODEC_SKELETON:
                sid, i = _read_varint(data, 1)
                sk = self._skeleton(conn, sid)
                return sk.build(flowcodec.decode_values(data[i:], sk.slots), marks)
            if codec == CODEC_JSON:
                return flowcodec.Skeleton(_inflate(data[1:]).decode()).build((), marks)
        except (ValueError, IndexError, zlib.error, StopIteration) as exc:
            raise StoreError("store %s: flow record %d is corrupt: %s" % (self.path, row[0], exc)) from None
        raise StoreError("store %s: flow record %d has unknown codec %d" % (self.path, row[0], codec))

    def query_flows(self, filter=None, start_ms=None, end_ms=None, limit=None):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise StoreError("limit must be a non-negative integer, got %r" % (limit,))
        flt = normalize_flow_filter(filter)
        self.flush()
        conn = self._reader()
        where, args = [], []
        for disjunction in flow_pushdown(flt):
            alts = []
            for field, values in disjunction:
                col = _PUSH_COLUMNS[field]
                if field in _HEX_FIELDS:
                    keys = sorted({hex_key(v)[0] for v in values})
                else:
                    keys = self._string_ids(conn, sorted(values))
                if keys:
                    alts.append("%s IN (%s)" % (col, ",".join("?" * len(keys))))
                    args.extend(keys)
            if not alts:
                return []    # no stored value can match this constraint
            where.append("(" + " OR ".join(alts) + ")")
        pushed = bool(where)
        if start_ms is not None:
            where.append(_LAST + " >= ?")
            args.append(start_ms)
        if end_ms is not None:
            where.append("ifnull(start, 0) <= ?")
            args.append(end_ms)
        sql = "SELECT %s FROM flows" % _FLOW_COLUMNS
        if start_ms is not None and not pushed:
            # only a time window: without statistics the planner would rather scan by rowid
            sql += " INDEXED BY flows_last"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        out = []
        if limit == 0:
            return out
        try:
            cur = conn.execute(sql, args)
            for row in cur:
                f = self._decode_flow(conn, row)
                if flow_alive_between(f, start_ms, end_ms) and flow_matches(flt, f):
                    out.append(f)
                    if limit is not None and len(out) >= limit:
                        break
            cur.close()
        except sqlite3.Error as exc:
            raise StoreError("reading flows from store %s failed: %s" % (self.path, exc)) from None
        return out

    def flow_metrics(self, uuids, start_ms=None, end_ms=None):
        if isinstance(uuids, str):
            uuids = [uuids]
        self.flush()
        conn = self._reader()
        lo = -NEVER if start_ms is None else start_ms
        hi = NEVER if end_ms is None else end_ms
        out = {}
        try:
            for u in dict.fromkeys(uuids):
                if not isinstance(u, str) or not u:
                    continue
                rows = conn.execute(
                    "SELECT m.start, m.dlast, m.abp, m.abb, m.bap, m.bab, m.rtt FROM flows f "
                    "JOIN flow_metrics m ON m.fid = f.id "
                    "WHERE f.uuid=? AND m.start <= ? AND m.start + coalesce(m.dlast, 0) >= ? ORDER BY m.start",
                    (hex_key(u)[0], hi, lo)).fetchall()
                if rows:
                    lst = []
                    for start, dlast, abp, abb, bap, bab, rtt in rows:
                        m = {"ABPackets": abp or 0, "ABBytes": abb or 0, "BAPackets": bap or 0,
                             "BABytes": bab or 0, "Start": start, "Last": start + (dlast or 0)}
                        if rtt:
                            m["RTT"] = rtt
                        lst.append(m)
                    out[u] = lst
        except sqlite3.Error as exc:
            raise StoreError("reading flow metrics from store %s failed: %s" % (self.path, exc)) from None
        return out

    # ---- retention -------------------------------------------------------------------------------
    def _prune(self, c, now):
        if not self.retention_ms:
            return {"revisions": 0, "flows": 0, "metrics": 0}
        cutoff = now - self.retention_ms
        revs = c.execute("DELETE FROM history WHERE archived_at < ?", (cutoff,)).rowcount
        metrics = c.execute("DELETE FROM flow_metrics WHERE fid IN (SELECT id FROM flows WHERE %s < ?)" % _LAST,
                            (cutoff,)).rowcount
        flows = c.execute("DELETE FROM flows WHERE %s < ?" % _LAST, (cutoff,)).rowcount
        metrics += c.execute(
            "DELETE FROM flow_metrics WHERE start + coalesce(dlast, 0) < ? AND NOT EXISTS (SELECT 1 FROM flows f "
            "WHERE f.id = flow_metrics.fid AND f.mdelta IS NOT NULL AND coalesce(f.start, 0) + f.mdelta = "
            "flow_metrics.start)", (cutoff,)).rowcount
        if revs or flows or metrics:
            log.info("storage: retention pruned %d revisions, %d flows, %d flow metrics", revs, flows, metrics)
        return {"revisions": revs, "flows": flows, "metrics": metrics}

    def prune(self, now_ms=None):
        t = _now() if now_ms is None else now_ms
        self._last_prune = time.monotonic()
        return self._submit(lambda c: self._prune(c, t))

    # ---- closing ---------------------------------------------------------------------------------
    def close(self):
        if self._closed:
            return
        try:
            if self._graph is not None and self._writer.is_alive():
                self.detach()
        finally:
            self._closed = True
            if self._writer.is_alive():
                self._enqueue(_STOP)
                self._writer.join(60)
            self._release()

    def _release(self):
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._readers.clear()
        if self._wconn is not None:
            try:
                self._wconn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self._wconn.close()
            self._wconn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def db_size(self):
        """Bytes used on disk by the database file and its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total
