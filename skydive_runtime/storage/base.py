"""The storage interface every backend implements, and the backend-neutral helpers.

A store keeps three things for the analyzer:

- topology history: attached to the live graph as a listener, it archives each revision of a
  node or edge when it is superseded (update: ArchivedAt = the update time; delete: ArchivedAt =
  DeletedAt = the delete time). `graph_at` and `revisions_between` are the HistoryProvider
  protocol the Gremlin engine uses for `G.At(...)` and `G.Context(...)`;
- API resources (captures, alerts, rules, injections, workflows), optionally with a TTL;
- flows: the latest state of each flow (by UUID) plus one metric row per flow update.

Nothing here speaks SQL: a distributed backend implements the same methods.
"""

import abc
import asyncio
import re

from ..common.jsonutil import dumps
from ..graph.filters import And, Eq, KeyFilter, Not, Or, Within, Without

NEVER = 2 ** 63 - 1   # ArchivedAt/DeletedAt of a revision that is still alive
MAX_TTL_MS = NEVER // 1_000_000   # Go's largest time.Duration (~292 years), in ms
MAX_RECORD_BYTES = 16 * 1024 * 1024   # one resource or one revision, serialised


class StoreError(Exception):
    """The store cannot do what was asked (bad path, corrupt file, closed, I/O error...)."""


class InvalidWrite(StoreError, ValueError):
    """A write refused before it is queued (a value out of bounds, not serialisable...): it
    harms no other write; the API answers it with a 400."""


def check_resource_key(kind, id):
    """InvalidWrite unless kind and id are non-empty strings (every backend's resource calls)."""
    if not isinstance(kind, str) or not kind:
        raise InvalidWrite("resource kind must be a non-empty string, got %r" % (kind,))
    if not isinstance(id, str) or not id:
        raise InvalidWrite("resource id must be a non-empty string, got %r" % (id,))


def validate_resource(kind, id, obj, ttl_ms=None):
    """What every backend checks before writing a resource: (its JSON text, ttl_ms as an int or
    None); InvalidWrite (or StoreError for a non-dict) otherwise."""
    check_resource_key(kind, id)
    if not isinstance(obj, dict):
        raise StoreError("resource %s/%s must be a dict, got %s" % (kind, id, type(obj).__name__))
    if ttl_ms is not None:
        if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, (int, float)) or not 0 < ttl_ms <= MAX_TTL_MS:
            raise InvalidWrite("resource TTL must be a positive number of ms up to %d, got %r" % (MAX_TTL_MS, ttl_ms))
        ttl_ms = int(ttl_ms)
    try:
        text = dumps(obj)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidWrite("resource %s/%s is not JSON serialisable: %s" % (kind, id, exc)) from None
    return text, ttl_ms


class StoreCorrupt(StoreError):
    """The store file fails its integrity check (empty, truncated, not a skydive store...)."""


class HistoryNotSupported(StoreError):
    """Raised by backends without history (upstream's message, answered with a 400)."""

    def __init__(self, message="Backend does not support history"):
        StoreError.__init__(self, message)


class FlowStorageNotConfigured(StoreError):
    def __init__(self, message="No storage backend has been configured"):
        StoreError.__init__(self, message)


# ---- time helpers ----------------------------------------------------------------------------

_RETENTION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_RETENTION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_retention(value, key="retention"):
    """Retention in ms, or None for "keep everything".

    Accepts a duration string made of <number><unit> parts (units ms, s, m, h, d, w: "7d",
    "36h", "1d12h", "500ms"), a bare number of days (int/float or numeric string), or
    0 / "0" / None / "" / "forever" / "never" meaning no pruning.
    """
    if value is None or value is False:
        return None
    if isinstance(value, bool):
        raise StoreError("%s: expected a duration like '7d' or '12h', got %r" % (key, value))
    if isinstance(value, (int, float)):
        if value < 0:
            raise StoreError("%s: must not be negative, got %r" % (key, value))
        return int(value * 86_400_000) or None
    if not isinstance(value, str):
        raise StoreError("%s: expected a duration like '7d' or '12h', got %r" % (key, value))
    text = value.strip().lower()
    if text in ("", "0", "forever", "never", "none"):
        return None
    try:
        days = float(text)
    except ValueError:
        pass
    else:
        if days < 0:
            raise StoreError("%s: must not be negative, got %r" % (key, value))
        return int(days * 86_400_000) or None
    pos, total = 0, 0.0
    for m in _RETENTION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _RETENTION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise StoreError("%s: invalid duration %r (use e.g. '7d', '36h', '1d12h', '90m')" % (key, value))
    return int(total) or None


def parse_ms(value, key, default):
    """A positive duration setting in ms: number = ms, or a duration string."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise StoreError("%s: expected a duration, got %r" % (key, value))
    if isinstance(value, (int, float)):
        if value <= 0:
            raise StoreError("%s: must be > 0, got %r" % (key, value))
        return int(value)
    ms = parse_retention(value, key) if not _is_number_text(value) else int(float(value))
    if not ms or ms <= 0:
        raise StoreError("%s: must be > 0, got %r" % (key, value))
    return ms


def _is_number_text(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def revision_alive_at(created_at, updated_at, deleted_at, archived_at, t):
    """Spec §3.4: CreatedAt <= t < DeletedAt|inf and UpdatedAt <= t < ArchivedAt|inf."""
    return (created_at <= t < (deleted_at or NEVER)) and (updated_at <= t < (archived_at or NEVER))


def revision_alive_between(created_at, updated_at, deleted_at, archived_at, start, end):
    """Alive at some instant of [start, end]."""
    lo = max(created_at, updated_at, start)
    hi = min((deleted_at or NEVER) - 1, (archived_at or NEVER) - 1, end)
    return lo <= hi


# ---- flow filters --------------------------------------------------------------------------

# flow fields a backend may index; equality on these is pushed down (the full filter is
# always re-evaluated on the decoded flows, so pushdown only narrows the candidates)
PUSHDOWN_FIELDS = ("UUID", "TrackingID", "NodeTID", "CaptureID", "Application",
                   "Network.A", "Network.B", "Link.A", "Link.B")
EITHER_SIDE_KEYS = ("Network", "Link", "Transport")


class FlowView:
    """Lets graph filters (skydive_runtime.graph.filters) match a flow dict: keys are flow
    field paths ("Network.A", "Metric.ABPackets", "LayersPath")."""

    __slots__ = ("Metadata", "ID")
    Host = Origin = ""
    CreatedAt = UpdatedAt = DeletedAt = Revision = 0

    def __init__(self, flow):
        self.Metadata = flow
        self.ID = flow.get("UUID")


def _strip_md(key):
    return key[9:] if key.startswith("Metadata.") else key


def normalize_flow_filter(flt):
    """Rewrite bare `Network`/`Link`/`Transport` keys (upstream: match either side) into
    Or(<k>.A, <k>.B). Returns a new filter; unknown filter classes are kept as they are."""
    if flt is None:
        return None
    if isinstance(flt, KeyFilter):
        key = _strip_md(flt.key)
        if key in EITHER_SIDE_KEYS:
            return Or(KeyFilter(key + ".A", flt.predicate), KeyFilter(key + ".B", flt.predicate))
        return flt
    if isinstance(flt, And):
        return And(*(normalize_flow_filter(f) for f in flt.filters))
    if isinstance(flt, Or):
        return Or(*(normalize_flow_filter(f) for f in flt.filters))
    if isinstance(flt, Not):
        return Not(normalize_flow_filter(flt.inner))
    return flt


def _key_constraint(f):
    """A KeyFilter as [(field, values)] when it can be pushed down, else None."""
    if not isinstance(f, KeyFilter):
        return None
    key = _strip_md(f.key)
    if key not in PUSHDOWN_FIELDS:
        return None
    p = f.predicate
    if isinstance(p, Eq):
        values = (p.value,)
    elif isinstance(p, Within) and not isinstance(p, Without):
        values = tuple(p.values)
    else:
        return None
    if not values or not all(isinstance(v, str) for v in values):
        return None
    return [(key, frozenset(values))]


def flow_pushdown(flt):
    """The constraints a backend can serve from its indexes: a list of disjunctions that must
    all hold, each disjunction a list of (field, frozenset(values)) meaning "field is one of
    values" for at least one of the pairs. An empty list means no constraint (full scan).
    Call it on a filter already passed through normalize_flow_filter."""
    if flt is None:
        return []
    single = _key_constraint(flt)
    if single is not None:
        return [single]
    if isinstance(flt, And):
        out = []
        for f in flt.filters:
            out.extend(flow_pushdown(f))
        return out
    if isinstance(flt, Or):
        alternatives = []
        for f in flt.filters:
            sub = flow_pushdown(f)
            if len(sub) != 1:
                return []   # a branch without (or with several) constraints: cannot narrow
            alternatives.extend(sub[0])
        return [alternatives] if alternatives else []
    return []


def flow_matches(flt, flow):
    return flt is None or flt.match(FlowView(flow))


def flow_alive_between(flow, start_ms, end_ms):
    """Flow time window [Start, Last] meets [start_ms, end_ms] (None = unbounded)."""
    s, last = flow.get("Start") or 0, flow.get("Last") or 0
    if end_ms is not None and s > end_ms:
        return False
    if start_ms is not None and last < start_ms:
        return False
    return True


# ---- the interface --------------------------------------------------------------------------

class Store(abc.ABC):
    """Storage backend interface. All methods are synchronous and thread-safe; writes return
    at once (they are queued by backends that batch), reads see every write made before them.
    """

    name = "store"
    supports_history = True
    supports_flows = True

    # -- topology history ------------------------------------------------------------------
    @abc.abstractmethod
    def attach(self, graph, restore=None):
        """Start archiving `graph`: its current elements are recorded as live revisions and
        every later add/update/delete is archived as it happens. One graph per store.

        `restore(origin) -> bool`: the elements still live when the previous run ended whose
        Origin it accepts are put back into `graph` (their history goes on); the others are
        closed at the last heartbeat of that run. Backends without history restore nothing."""

    @abc.abstractmethod
    def detach(self):
        """Stop archiving; the elements still live are closed (DeletedAt/ArchivedAt = now)."""

    @abc.abstractmethod
    def graph_at(self, t_ms):
        """A skydive_runtime.graph.Graph holding, for each ID, the highest Revision alive at
        t_ms (CreatedAt <= t < DeletedAt|inf and UpdatedAt <= t < ArchivedAt|inf)."""

    @abc.abstractmethod
    def revisions_between(self, start_ms, end_ms):
        """(nodes, edges): every revision alive at some instant of [start_ms, end_ms], as
        Node/Edge objects; an ID may appear several times (one per revision)."""

    # -- API resources ---------------------------------------------------------------------
    @abc.abstractmethod
    def put_resource(self, kind, id, obj, ttl_ms=None):
        """Create or replace resource `id` of `kind` (a JSON-able dict). With ttl_ms it
        disappears ttl_ms after this call."""

    @abc.abstractmethod
    def get_resource(self, kind, id):
        """The resource dict, or None when unknown or expired."""

    @abc.abstractmethod
    def list_resources(self, kind):
        """{id: obj} of the unexpired resources of `kind`."""

    @abc.abstractmethod
    def delete_resource(self, kind, id):
        """True when it existed (and had not expired)."""

    def forget_resource(self, kind, id):
        """Delete resource `id` of `kind` without waiting (queued like the other writes; use
        when_committed to know it is durable)."""
        self.delete_resource(kind, id)

    @abc.abstractmethod
    def expire_resources(self, now_ms=None):
        """Remove the resources whose TTL has run out; returns [(kind, id, obj)] removed, so
        the owner can undo their effects (stop a capture...)."""

    # -- flows -----------------------------------------------------------------------------
    @abc.abstractmethod
    def store_flows(self, flows):
        """Upsert flows (dicts in the JSON of spec §5.1) by UUID: the state with the latest
        `Last` wins. Each flow carrying a LastUpdateMetric adds one metric row. The store
        owns the dicts after the call (they must not be mutated afterwards)."""

    @abc.abstractmethod
    def query_flows(self, filter=None, start_ms=None, end_ms=None, limit=None):
        """Stored flows matching `filter` (a graph ElementFilter over flow field paths; bare
        Network/Link/Transport match either side) whose [Start, Last] meets
        [start_ms, end_ms]; at most `limit` of them."""

    @abc.abstractmethod
    def flow_metrics(self, uuids, start_ms=None, end_ms=None):
        """{uuid: [FlowMetric dict, ...]} ordered by Start: the LastUpdateMetric of each
        stored update whose [Start, Last] meets the window. Flows without metrics are absent."""

    # -- durability ------------------------------------------------------------------------
    def when_committed(self, callback):
        """Call callback(None) once every write queued before this call is committed (durable
        across a crash of this process), callback(StoreError) when it could not be. It may be
        called from another thread and must return quickly. Backends writing at once call it
        at once."""
        callback(None)

    def queue_depth(self):
        """Writes queued and not yet applied (0 for backends writing at once)."""
        return 0

    # -- housekeeping ----------------------------------------------------------------------
    @abc.abstractmethod
    def prune(self, now_ms=None):
        """Apply retention now; returns {"revisions": n, "flows": n, "metrics": n} removed."""

    @abc.abstractmethod
    def flush(self):
        """Wait until every write queued so far is durable and visible to reads."""

    @abc.abstractmethod
    def close(self):
        """Detach, write what is pending and release the backend. Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


async def wait_committed(store):
    """Wait, without blocking the event loop, until every write queued so far on `store` is
    committed; raises the StoreError of a failed commit."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def resolve(err):
        if not fut.done():
            fut.set_result(err)

    def done(err):
        try:
            loop.call_soon_threadsafe(resolve, err)
        except RuntimeError:   # the loop is closed: nobody waits any more
            pass

    store.when_committed(done)
    err = await fut
    if err is not None:
        raise err
