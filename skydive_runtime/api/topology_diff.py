"""GET/POST /api/topology/diff: what changed in the topology between two times (graph/diff.py).

    POST /api/topology/diff {"From": T1, "To": T2, "GremlinFilter": "G.V().Has('Type','veth')",
                             "Ignore": ["Neighbors"]}
    GET  /api/topology/diff?from=T1&to=T2&gremlin=...&ignore=k1,k2

T1 (required) and T2 (default: now, the live graph) are what api/timespec.py parses. The filter
(default `G`) runs at both times (`G.At(T)...`, from the store's history) and may return a graph,
nodes or edges. Answer: {"From": ms, "To": ms, "GremlinFilter", "Ignore", "Nodes": {"Added",
"Removed", "Changed"}, "Edges": {...}}.
"""

from ..common.timeutil import now_ms
from ..graph.diff import DEFAULT_IGNORED, diff_graphs
from .http import HTTPError, json_response, read_body
from .query import QueryError, at_query
from .timespec import TimeSpecError, parse_time_ms


class DiffError(ValueError):
    """A 400 with this message."""


def _elements(query, result):
    kind = getattr(result, "kind", None)
    if kind == "graph":
        nodes, edges = result.view.all_nodes(), result.view.all_edges()
    elif kind == "nodes":
        nodes, edges = result.items, ()
    elif kind == "edges":
        nodes, edges = (), result.items
    else:
        raise QueryError("the diff filter %s must return a graph, nodes or edges" % query)
    return {"Nodes": {n.ID: n.to_dict() for n in nodes}, "Edges": {e.ID: e.to_dict() for e in edges}}


async def snapshot(engine, query, at_ms=None):
    """{"Nodes": {id: dict}, "Edges": {id: dict}} of the query at at_ms (None: live)."""
    q = at_query(query, at_ms) if at_ms is not None else query
    return await engine.run_off_loop(q, lambda result: _elements(query, result))


def diff_request(data, now=None):
    """(from_ms, to_ms or None, filter, ignore) of a request body; DiffError when wrong."""
    if not isinstance(data, dict):
        raise DiffError("the body must be an object {\"From\": T1, \"To\": T2, \"GremlinFilter\": \"G...\"}")
    now = now_ms() if now is None else now
    if data.get("From") in (None, ""):
        raise DiffError("From: the start time is required")
    try:
        t1 = parse_time_ms(data["From"], now, "From")
        t2 = None if data.get("To") in (None, "") else parse_time_ms(data["To"], now, "To")
    except TimeSpecError as exc:
        raise DiffError(str(exc)) from None
    if t2 is not None and t2 < t1:
        raise DiffError("To (%d) is before From (%d)" % (t2, t1))
    query = data.get("GremlinFilter") or "G"
    if not isinstance(query, str):
        raise DiffError("GremlinFilter: expected a Gremlin query string")
    ignore = data.get("Ignore")
    if ignore is None:
        ignore = list(DEFAULT_IGNORED)
    if not isinstance(ignore, list) or not all(isinstance(k, str) for k in ignore):
        raise DiffError("Ignore: expected a list of metadata keys")
    return t1, t2, query, ignore


async def topology_diff(engine, t1, t2, query, ignore):
    try:
        old = await snapshot(engine, query, t1)
        new = await snapshot(engine, query, t2)
    except QueryError as exc:
        raise DiffError(str(exc)) from None
    out = {"From": t1, "To": t2, "GremlinFilter": query, "Ignore": ignore}
    out.update(diff_graphs(old, new, ignore))
    return out


def mount_topology_diff(app, engine, guard):
    async def handle(request):
        guard(request, "topology", "read")
        if request.method == "GET":
            q = request.query
            data = {"From": q.get("from"), "To": q.get("to"), "GremlinFilter": q.get("gremlin")}
            if "ignore" in q:
                data["Ignore"] = [k for k in q["ignore"].split(",") if k]
        else:
            data = await read_body(request, allow_yaml=False)
        try:
            return json_response(await topology_diff(engine, *diff_request(data)))
        except DiffError as exc:
            raise HTTPError(400, str(exc)) from None
    for path in ("/api/topology/diff", "/api/topology/diff/"):
        app.router.add_get(path, handle)
        app.router.add_post(path, handle)
