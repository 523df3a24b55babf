"""Values flowing between steps, their steps and their JSON.

A step named X applied to a value calls `value.step_X(step, state)`; a value type without that
method answers `Invalid step 'X' on <kind>`. Custom value types (flow lists...) subclass
TraversalValue and define the step_X methods of the core steps that apply to them.
"""

import json
from itertools import chain

from ..graph.metadata import MISSING, SPECIAL_GETTERS, flatten_keys, get_raw
from ..graph.revisions import RevisionsView
from . import budget
from .errors import GremlinError

_SPECIAL_KEYS = tuple(SPECIAL_GETTERS)


class TraversalValue:
    kind = "value"
    is_graph = False
    is_raw_packets = False

    def to_json_value(self):
        raise NotImplementedError

    def to_dot(self):
        raise GremlinError("Only graph results have a DOT representation")

    def elements(self):
        """The items of this value as a list (what Count counts)."""
        return []


def paginate(step, iterable):
    page = step.page
    if page is None:
        return budget.collect(iterable)
    lo, hi = page
    if hi <= lo:
        return []
    return budget.collect(iterable, lo, hi)


def _filtered(items, flt):
    if flt is None:
        return items
    return (x for x in items if flt.match(x))


def dedup_key(values):
    try:
        return json.dumps(values, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(values)


def dedup_elements(elements, keys, id_of=lambda e: e.ID):
    seen = set()
    out = []
    for e in elements:
        if keys:
            vals = []
            for k in keys:
                v = get_raw(e, k)
                if v is not MISSING:
                    vals.append(v)
            if not vals:
                out.append(e)          # elements lacking every key are never removed
                continue
            hk = dedup_key(vals)
        else:
            hk = id_of(e)
        if hk in seen:
            continue
        seen.add(hk)
        out.append(e)
    return out


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sort_elements(elements, key, descending):
    """Upstream SortNodes: numeric comparison if the first value found is a number, else string.
    Elements without the key (or with a value of the other kind) keep their order, at the end."""
    vals = [get_raw(e, key) for e in elements]
    first = next((v for v in vals if v is not MISSING), MISSING)
    if first is MISSING:
        return list(elements)
    numeric = _is_num(first)
    keyed, rest = [], []
    for e, v in zip(elements, vals):
        if v is MISSING:
            rest.append(e)
        elif numeric:
            if _is_num(v):
                keyed.append((v, e))
            else:
                rest.append(e)
        else:
            keyed.append((v if isinstance(v, str) else dedup_key(v), e))
    keyed.sort(key=lambda kv: kv[0], reverse=descending)
    return [e for dummy, e in keyed] + rest


def values_of(elements, key):
    out = []
    for e in elements:
        v = get_raw(e, key)
        if v is MISSING:
            continue
        if isinstance(v, (list, dict)) and not v:
            continue
        out.append(v)
    return out or None


def value_maps(elements, keys):
    out = []
    for e in elements:
        m = {}
        for k in keys:
            v = get_raw(e, k)
            if v is not MISSING:
                m[k] = v
        if m:
            out.append(m)
    return out or None


def keys_of(elements):
    seen = {}
    for e in elements:
        for k in _SPECIAL_KEYS:
            seen[k] = None
        for k in flatten_keys(e.Metadata):
            seen[k] = None
    return list(seen) or None


def sum_of(elements, key):
    total = 0
    for e in elements:
        v = get_raw(e, key)
        if v is MISSING:
            continue
        if not _is_num(v):
            raise GremlinError("Sum: value of '%s' on %s is not a number" % (key, e.ID))
        total += int(v)
    return total


def _dot_quote(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ------------------------------------------------------------------------------------------
class GraphValue(TraversalValue):
    """A whole graph: the live one, a history graph, or a sub-graph.

    root: made by G (or G.At(...)): only a root graph accepts Context/At.
    time_slice: (start_ms, end_ms) of the history context, None when live.
    """
    kind = "graph"
    is_graph = True

    def __init__(self, view, root=False, time_slice=None):
        self.view = view
        self.root = root
        self.time_slice = time_slice

    def to_json_value(self):
        return [self.view.to_dict()]

    def elements(self):
        return [self.view]

    def to_dot(self):
        lines = ["digraph G {"]
        for n in self.view.all_nodes():
            md = n.Metadata
            label = md.get("Name", n.ID)
            t = md.get("Type")
            if t is not None:
                label = "%s (%s)" % (label, t)
            lines.append("  %s [label=%s];" % (_dot_quote(n.ID), _dot_quote(label)))
        for e in self.view.all_edges():
            rel = e.Metadata.get("RelationType", "")
            lines.append("  %s -> %s [label=%s];" % (_dot_quote(e.Parent), _dot_quote(e.Child), _dot_quote(rel)))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def step_V(self, step, state):
        if step.node_id is not None:
            n = self.view.node_by_id(step.node_id)
            if n is None:
                raise GremlinError("Node '%s' does not exist" % step.node_id)
            return NodesValue([n], self)
        if step.flt is None:
            nodes = self.view.all_nodes()
        else:
            nodes = self.view.lookup_nodes(step.flt)
        return NodesValue(paginate(step, nodes), self)

    def step_E(self, step, state):
        if step.node_id is not None:
            e = self.view.edge_by_id(step.node_id)
            if e is None:
                raise GremlinError("Edge '%s' does not exist" % step.node_id)
            return EdgesValue([e], self)
        if step.flt is None:
            edges = self.view.all_edges()
        else:
            edges = self.view.lookup_edges(step.flt)
        return EdgesValue(paginate(step, edges), self)

    def step_Context(self, step, state):
        if not self.root:
            raise GremlinError("Context/At is only valid right after G")
        hist = state.ctx.history
        if hist is None:
            raise GremlinError("Backend does not support history")
        at, duration = step.resolve(state.ctx.now())
        try:
            if duration is None:
                g = hist.graph_at(at)
            else:
                start = max(0, at - duration)
                nodes, edges = hist.revisions_between(start, at)
        except GremlinError:
            raise
        except Exception as exc:     # the store's own errors (HistoryNotSupported, I/O...)
            raise GremlinError(str(exc) or type(exc).__name__) from None
        if duration is None:
            from .view import as_view
            return GraphValue(as_view(g), root=True, time_slice=(at, at))
        host = getattr(state.ctx.graph, "host_id", "")
        return GraphValue(RevisionsView(nodes, edges, host), root=True, time_slice=(start, at))


class ElementsValue(TraversalValue):
    """Common steps of node lists and edge lists."""

    def __init__(self, items, graph):
        self.items = items
        self.graph = graph      # the GraphValue the elements come from

    def elements(self):
        return self.items

    def to_json_value(self):
        return [x.to_dict() for x in self.items]

    def _new(self, items):
        return type(self)(items, self.graph)

    def step_G(self, step, state):
        return self.graph

    def step_Has(self, step, state):
        return self._new(paginate(step, _filtered(self.items, step.flt)))

    step_HasEither = step_Has
    step_HasKey = step_Has
    step_HasNot = step_Has

    def step_Dedup(self, step, state):
        return self._new(paginate(step, dedup_elements(self.items, step.keys)))

    def step_Count(self, step, state):
        return ListValue(len(self.items))

    def step_Values(self, step, state):
        return ListValue(values_of(self.items, step.key))

    def step_ValueMap(self, step, state):
        return ListValue(value_maps(self.items, step.keys))

    def step_Keys(self, step, state):
        return ListValue(keys_of(self.items))

    def step_Sum(self, step, state):
        if step.key is None:
            raise GremlinError("Sum requires 1 parameter")
        return ListValue(sum_of(self.items, step.key))

    def step_Sort(self, step, state):
        return self._new(sort_elements(self.items, step.key, step.descending))

    def step_Range(self, step, state):
        return self._new(self.items[step.lo:max(step.lo, step.hi)])

    step_Limit = step_Range


class NodesValue(ElementsValue):
    kind = "nodes"

    def step_Out(self, step, state):
        view, flt = self.graph.view, step.flt

        def gen():
            for n in self.items:
                for e in view.out_edges(n.ID):
                    for c in view.nodes_with_id(e.Child):
                        if flt is None or flt.match(c):
                            yield c
        return NodesValue(paginate(step, gen()), self.graph)

    def step_In(self, step, state):
        view, flt = self.graph.view, step.flt

        def gen():
            for n in self.items:
                for e in view.in_edges(n.ID):
                    for p in view.nodes_with_id(e.Parent):
                        if flt is None or flt.match(p):
                            yield p
        return NodesValue(paginate(step, gen()), self.graph)

    def step_Both(self, step, state):
        view, flt = self.graph.view, step.flt

        def gen():
            for n in self.items:
                nid = n.ID
                for e in view.out_edges(nid):
                    for c in view.nodes_with_id(e.Child):
                        if flt is None or flt.match(c):
                            yield c
                for e in view.in_edges(nid):
                    if e.Parent == nid:     # self loop, already given as an out edge
                        continue
                    for p in view.nodes_with_id(e.Parent):
                        if flt is None or flt.match(p):
                            yield p
        return NodesValue(paginate(step, gen()), self.graph)

    def step_OutE(self, step, state):
        view, flt = self.graph.view, step.flt
        gen = (e for n in self.items for e in view.out_edges(n.ID) if flt is None or flt.match(e))
        return EdgesValue(paginate(step, gen), self.graph)

    def step_InE(self, step, state):
        view, flt = self.graph.view, step.flt
        gen = (e for n in self.items for e in view.in_edges(n.ID) if flt is None or flt.match(e))
        return EdgesValue(paginate(step, gen), self.graph)

    def step_BothE(self, step, state):
        view, flt = self.graph.view, step.flt

        def gen():
            for n in self.items:
                nid = n.ID
                for e in view.out_edges(nid):
                    if flt is None or flt.match(e):
                        yield e
                for e in view.in_edges(nid):
                    if e.Parent != nid and (flt is None or flt.match(e)):
                        yield e
        return EdgesValue(paginate(step, gen()), self.graph)

    def step_As(self, step, state):
        state.as_map[step.key] = list(self.items)
        return self

    def step_Select(self, step, state):
        out = []
        for k in step.keys:
            nodes = state.as_map.get(k)
            if nodes is None:
                raise GremlinError("Key %s not registered. Need to be registered using 'As' step" % k)
            out.extend(nodes)
        return NodesValue(out, self.graph)

    def step_ShortestPathTo(self, step, state):
        view = self.graph.view
        paths = []
        for n in self.items:
            p = shortest_path(view, n, step.target_filter, step.edge_filter)
            if p:
                paths.append(p)
        return PathsValue(paths, self.graph)

    def step_SubGraph(self, step, state):
        return subgraph_from_nodes(self.graph, self.items, step.flt)


class EdgesValue(ElementsValue):
    kind = "edges"

    def _ends(self, step, parents, children):
        view, flt = self.graph.view, step.flt

        def gen():
            for e in self.items:
                if parents:
                    for p in view.nodes_with_id(e.Parent):
                        if flt is None or flt.match(p):
                            yield p
                if children:
                    for c in view.nodes_with_id(e.Child):
                        if flt is None or flt.match(c):
                            yield c
        return NodesValue(paginate(step, gen()), self.graph)

    def step_InV(self, step, state):
        return self._ends(step, True, False)     # Skydive: InV is the parent

    def step_OutV(self, step, state):
        return self._ends(step, False, True)     # Skydive: OutV is the child

    def step_BothV(self, step, state):
        return self._ends(step, True, True)

    def step_SubGraph(self, step, state):
        view = self.graph.view
        nodes, nseen, edges, eseen = [], set(), [], set()
        for e in self.items:
            if step.flt is not None and not step.flt.match(e):
                continue
            for nid in (e.Child, e.Parent):
                for n in view.nodes_with_id(nid):
                    k = (n.ID, n.Revision)
                    if k not in nseen:
                        nseen.add(k)
                        nodes.append(n)
            k = (e.ID, e.Revision)
            if k not in eseen:
                eseen.add(k)
                edges.append(e)
        return GraphValue(RevisionsView(nodes, edges, getattr(view, "host_id", "")),
                          time_slice=self.graph.time_slice)


class PathsValue(TraversalValue):
    kind = "paths"

    def __init__(self, paths, graph):
        self.paths = paths
        self.graph = graph

    def elements(self):
        return self.paths

    def nodes(self):
        return [n for p in self.paths for n in p]

    def to_json_value(self):
        return [[n.to_dict() for n in p] for p in self.paths]

    def step_SubGraph(self, step, state):
        return subgraph_from_nodes(self.graph, self.nodes(), step.flt)

    def step_Dedup(self, step, state):
        return NodesValue(paginate(step, dedup_elements(self.nodes(), step.keys)), self.graph)

    def step_Count(self, step, state):
        return ListValue(len(self.paths))

    def step_Range(self, step, state):
        return PathsValue(self.paths[step.lo:max(step.lo, step.hi)], self.graph)

    step_Limit = step_Range

    def step_G(self, step, state):
        return self.graph


class _MapElement:
    """A metadata map seen as an element, so that element filters apply to it."""
    __slots__ = ("Metadata", "ID", "Host", "Origin", "CreatedAt", "UpdatedAt", "DeletedAt", "Revision")

    def __init__(self, md):
        self.Metadata = md
        self.ID = self.Host = self.Origin = None
        self.CreatedAt = self.UpdatedAt = self.DeletedAt = self.Revision = None


class ListValue(TraversalValue):
    """A plain value: a number (Count, Sum), a list (Values, Keys) or null."""
    kind = "values"

    def __init__(self, value):
        self.value = value

    def to_json_value(self):
        return self.value

    def elements(self):
        v = self.value
        return v if isinstance(v, list) else [v]

    def step_Has(self, step, state):
        flt = step.flt
        out = []
        for item in self.elements():
            if isinstance(item, dict) and (flt is None or flt.match(_MapElement(item))):
                out.append(item)
        return ListValue(paginate(step, out) or None)

    def step_Dedup(self, step, state):
        seen, out = set(), []
        for item in self.elements():
            k = dedup_key(item)
            if k not in seen:
                seen.add(k)
                out.append(item)
        return ListValue(paginate(step, out))

    def step_Count(self, step, state):
        return ListValue(len(self.elements()))

    def step_Range(self, step, state):
        return ListValue(self.elements()[step.lo:max(step.lo, step.hi)])

    step_Limit = step_Range


# ------------------------------------------------------------------------------------------
def subgraph_from_nodes(graph, nodes, edge_filter=None):
    view = graph.view
    out_nodes, seen, ids = [], set(), {}
    for n in nodes:
        k = (n.ID, n.Revision)
        if k not in seen:
            seen.add(k)
            out_nodes.append(n)
            ids[n.ID] = None
    edges, eseen = [], set()
    for nid in ids:
        for e in view.out_edges(nid):
            if e.Child in ids and (edge_filter is None or edge_filter.match(e)):
                k = (e.ID, e.Revision)
                if k not in eseen:
                    eseen.add(k)
                    edges.append(e)
    return GraphValue(RevisionsView(out_nodes, edges, getattr(view, "host_id", "")),
                      time_slice=graph.time_slice)


def shortest_path(view, source, target_filter, edge_filter):
    """Unit-weight shortest path (breadth first, edges in both directions) from source to the
    nearest node matching target_filter; [] when none is reachable."""
    if target_filter.match(source):
        return [source]
    prev = {source.ID: None}
    objs = {source.ID: source}
    frontier = [source.ID]
    while frontier:
        nxt = []
        for nid in frontier:
            for e in chain(view.out_edges(nid), view.in_edges(nid)):
                if edge_filter is not None and not edge_filter.match(e):
                    continue
                other = e.Child if e.Parent == nid else e.Parent
                if other in prev:
                    continue
                cands = view.nodes_with_id(other)
                if not cands:
                    continue
                prev[other] = nid
                node = cands[0]
                objs[other] = node
                for c in cands:
                    if target_filter.match(c):
                        path = [c]
                        cur = nid
                        while cur is not None:
                            path.append(objs[cur])
                            cur = prev[cur]
                        path.reverse()
                        return path
                nxt.append(other)
        frontier = nxt
    return []
