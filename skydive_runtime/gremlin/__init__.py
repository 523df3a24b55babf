"""The Gremlin dialect of Skydive (spec §4): parse(), execute(), the extension registry.

    from skydive_runtime.gremlin import execute, parse, QueryContext, GremlinError
    res = execute("G.V().Has('Type', 'veth').Count()", QueryContext(graph, history=store))
    res.to_json_value()   # 3
"""

from .context import HistoryProvider, QueryContext
from .errors import GremlinError
from .params import ASC, DESC, FOREVER, NOW, Keyword, MetadataArg
from .query import ExecState, Query, execute, parse
from .registry import ExtensionStep, Registry, default_registry, dispatch, register_step, unregister_step
from .steps import Step
from .values import (EdgesValue, ElementsValue, GraphValue, ListValue, NodesValue, PathsValue,
                     TraversalValue)
from . import topology as _topology  # noqa: F401  registers Descendants/Ascendants/Neighbors/NextHop
from . import metrics as _metrics    # noqa: F401  registers Metrics/Aggregates

__all__ = [
    "GremlinError", "HistoryProvider", "QueryContext", "Query", "ExecState", "execute", "parse",
    "Registry", "ExtensionStep", "default_registry", "register_step", "unregister_step", "dispatch",
    "Step", "TraversalValue", "GraphValue", "NodesValue", "EdgesValue", "ElementsValue",
    "PathsValue", "ListValue", "Keyword", "MetadataArg", "ASC", "DESC", "NOW", "FOREVER",
]
