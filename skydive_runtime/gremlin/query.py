"""parse() and execute(): the entry points of the Gremlin layer."""

import logging
import threading

from ..graph.filters import FilterError
from . import budget
from .context import QueryContext
from .errors import GremlinError
from .parser import parse_steps
from .registry import default_registry
from .steps import reduce_steps

log = logging.getLogger(__name__)

_CACHE_SIZE = 512
_cache = {}
_cache_lock = threading.Lock()


def _size(value):
    for attr in ("items", "paths"):
        v = getattr(value, attr, None)
        if isinstance(v, (list, tuple)):
            return len(v)
    return 0


class ExecState:
    """Per-execution state handed to every step: the context and the As() store."""
    __slots__ = ("ctx", "as_map")

    def __init__(self, ctx):
        self.ctx = ctx
        self.as_map = {}


class Query:
    """A parsed (and reduced) query. Immutable: it can be executed many times, concurrently."""

    def __init__(self, text, steps):
        self.text = text
        self.steps = steps

    @property
    def returns_graph(self):
        """Whether the result is a graph ({Nodes, Edges}), e.g. for WebSocket subscriber filters."""
        return bool(getattr(self.steps[-1], "returns_graph", False))

    @property
    def returns_raw_packets(self):
        return bool(getattr(self.steps[-1], "returns_raw_packets", False))

    @property
    def loop_only(self):
        """Whether a step reads state only the event loop may touch (the flow cache)."""
        return any(getattr(s, "loop_only", False) for s in self.steps)

    @property
    def step_names(self):
        return [s.name for s in self.steps]

    def execute(self, context):
        if not isinstance(context, QueryContext):
            context = QueryContext(context)
        state = ExecState(context)
        value = None
        spent = budget.current()
        try:
            for step in self.steps:
                value = step.exec(value, state)
                if spent is not None:
                    spent.check_time()
                    spent.check_size(_size(value))
        except GremlinError:
            raise
        except RecursionError:
            raise GremlinError("Error while executing the query: too deep") from None
        except FilterError as exc:     # e.g. a value too long for a Regex
            raise GremlinError("Error while executing the query: %s" % exc) from None
        except Exception as exc:
            log.warning("gremlin query %r failed", self.text, exc_info=True)
            raise GremlinError("Error while executing the query: %s" % exc) from None
        return value

    def __repr__(self):
        return "Query(%r)" % self.text


def parse(query, registry=None):
    """Parse and validate a query; returns a Query or raises GremlinError (never anything else).

    registry: the step registry to recognise extension steps (default: the analyzer's,
    skydive_runtime.gremlin.registry.default_registry, with every registered extension)."""
    reg = registry if registry is not None else default_registry
    if not isinstance(query, str):
        raise GremlinError("query must be a string")
    key = (query, id(reg), reg.version)
    q = _cache.get(key)
    if q is not None:
        return q
    try:
        steps = reduce_steps(parse_steps(query, reg))
    except GremlinError:
        raise
    except RecursionError:
        raise GremlinError("query nested too deeply") from None
    except Exception as exc:       # never anything but GremlinError out of the parser
        log.warning("gremlin parser failed on %r", query, exc_info=True)
        raise GremlinError("invalid query: %s" % exc) from None
    q = Query(query, steps)
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[key] = q
    return q


def execute(query, context, registry=None):
    """Run a query (a string or a parsed Query) against a QueryContext (or a bare Graph).

    Returns the final TraversalValue: `to_json_value()` gives the JSON-serialisable result of
    upstream's shape, `is_graph` / `to_dot()` serve text/vnd.graphviz, `is_raw_packets` pcap."""
    if isinstance(query, Query):
        q = query
    else:
        if registry is None and isinstance(context, QueryContext):
            registry = context.registry
        q = parse(query, registry)
    return q.execute(context)
