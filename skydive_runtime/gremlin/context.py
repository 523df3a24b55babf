"""What a query runs against: the live graph, an optional history provider, the step registry."""

try:
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover - Python < 3.8
    Protocol = object

    def runtime_checkable(cls):
        return cls

from ..common.timeutil import now_ms


@runtime_checkable
class HistoryProvider(Protocol):
    """Implemented by the storage layer (skydive_runtime/storage/sqlite.py).

    Times are integer ms since the epoch.
    """

    def graph_at(self, t_ms):
        """A skydive_runtime.graph.Graph of the revisions alive at t:
        CreatedAt <= t < (DeletedAt or inf) and UpdatedAt <= t < (ArchivedAt or inf),
        the highest Revision per ID."""

    def revisions_between(self, start_ms, end_ms):
        """(nodes, edges): every Node/Edge revision alive at some point of [start, end]
        (duplicates by ID allowed)."""


class QueryContext:
    """Execution context of a query.

    graph    the live skydive_runtime.graph.Graph (read only during the query)
    history  a HistoryProvider or None (then At/Context fail with `Backend does not support history`)
    registry the step registry (default: skydive_runtime.gremlin.registry.default_registry)
    now      callable returning the current time in ms (tests pin it)
    extras   services later layers need in their steps (flow tables, flow storage...), by name
    """

    def __init__(self, graph, history=None, registry=None, now=None, **extras):
        self.graph = graph
        self.history = history
        self.registry = registry
        self.now = now or now_ms
        self.extras = extras

    def get(self, name, default=None):
        return self.extras.get(name, default)
