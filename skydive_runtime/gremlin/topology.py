"""Topology helper steps, added through the extension registry like any later layer's steps:
Descendants, Ascendants, Neighbors, NextHop (upstream gremlin/traversal/{descendants,ascendants,
neighbors,nexthop}.go)."""

import ipaddress

from ..graph import filters as F
from .errors import GremlinError
from .params import fmt_params, params_to_filter
from .registry import ExtensionStep, register_step
from .values import ListValue, NodesValue

OWNERSHIP = F.KeyFilter("RelationType", "ownership")


def _edge_filter_and_depth(name, params, default_filter):
    """[k, v, ...][, depth]: an OR filter on edges and a maximum depth (default 1)."""
    flt, depth = default_filter, 1
    n = len(params)
    if n == 0:
        return flt, depth
    i = n // 2 * 2
    if i:
        try:
            flt = params_to_filter(params[:i], "or")
        except GremlinError as exc:
            raise GremlinError("%s accepts an optional number of key/value tuples and an optional depth: %s"
                               % (name, exc)) from None
    if i != n:
        d = params[-1]
        if not isinstance(d, int) or isinstance(d, bool):
            raise GremlinError("%s last argument must be the maximum depth specified as an integer" % name)
        depth = d
    return flt, depth


class _WalkStep(ExtensionStep):
    default_filter = OWNERSHIP
    parents = False
    children = True
    zero_is_unlimited = True

    def validate(self):
        self.edge_filter, self.depth = _edge_filter_and_depth(self.name, self.params, self.default_filter)

    def exec(self, prev, state):
        if not isinstance(prev, NodesValue):
            return ExtensionStep.exec(self, prev, state)
        view, flt = prev.graph.view, self.edge_filter
        visited = {}
        level = []
        for n in prev.items:
            if n.ID not in visited:
                visited[n.ID] = n
                level.append(n.ID)
        out = list(visited.values())
        depth = 0
        unlimited = self.depth == 0 and self.zero_is_unlimited
        while level and (unlimited or depth < self.depth):
            depth += 1
            nxt = []
            for nid in level:
                if self.children:
                    for e in view.out_edges(nid):
                        if (flt is None or flt.match(e)) and e.Child not in visited:
                            for c in view.nodes_with_id(e.Child)[:1]:
                                visited[c.ID] = c
                                out.append(c)
                                nxt.append(c.ID)
                if self.parents:
                    for e in view.in_edges(nid):
                        if (flt is None or flt.match(e)) and e.Parent not in visited:
                            for p in view.nodes_with_id(e.Parent)[:1]:
                                visited[p.ID] = p
                                out.append(p)
                                nxt.append(p.ID)
            level = nxt
        return NodesValue(out, prev.graph)


class DescendantsStep(_WalkStep):
    """Descendants([k, v...][, depth]): the nodes and their children through ownership edges (or
    the edges matching any of the pairs), down to depth (default 1, 0 = unlimited)."""
    name = "Descendants"


class AscendantsStep(_WalkStep):
    """Ascendants([k, v...][, depth]): the nodes and their parents."""
    name = "Ascendants"
    parents, children = True, False


class NeighborsStep(_WalkStep):
    """Neighbors([k, v...][, depth]): the nodes and their neighbours both ways through any edge
    (or the edges matching any of the pairs), to depth (default 1; 0 = only the nodes)."""
    name = "Neighbors"
    default_filter = None
    parents = children = True
    zero_is_unlimited = False


class NextHopValue(ListValue):
    kind = "nexthops"

    def __init__(self, hops):
        ListValue.__init__(self, [hops] if hops else [])


def _nexthop_json(nh, neighbors):
    out = {}
    prio = nh.get("Priority")
    if prio:
        out["Priority"] = prio
    ip = nh.get("IP")
    if ip:
        out["IP"] = ip
        mac = ""
        for nb in neighbors or ():
            if isinstance(nb, dict) and nb.get("IP") == ip and nb.get("MAC"):
                mac = nb["MAC"]
                break
        if mac:
            out["MAC"] = mac
    out["IfIndex"] = nh.get("IfIndex", 0) if isinstance(nh.get("IfIndex", 0), int) else 0
    return out


def next_hop(node, ip):
    tables = node.Metadata.get("RoutingTables")
    if not isinstance(tables, list):
        return None
    neighbors = node.Metadata.get("Neighbors")
    if not isinstance(neighbors, list):
        neighbors = None
    default = None
    for table in tables:
        if not isinstance(table, dict):
            continue
        best, best_len = None, -1
        for route in table.get("Routes") or ():
            if not isinstance(route, dict):
                continue
            hops = route.get("NextHops")
            if not isinstance(hops, list) or not hops or not isinstance(hops[0], dict):
                continue
            try:
                net = ipaddress.ip_network(route.get("Prefix", ""), strict=False)
            except (ValueError, TypeError):
                continue
            if net.prefixlen == 0:
                if default is None and net.version == ip.version:
                    default = hops[0]
                continue
            if net.version == ip.version and ip in net and net.prefixlen > best_len:
                best, best_len = hops[0], net.prefixlen
        if best is not None:
            return _nexthop_json(best, neighbors)
    if default is not None:
        return _nexthop_json(default, neighbors)
    return None


class NextHopStep(ExtensionStep):
    """NextHop('ip'): for each node with RoutingTables, the next hop towards ip (the most
    specific route, else the default route): [{"<nodeID>": {"Priority", "IP", "MAC", "IfIndex"}}]."""
    name = "NextHop"

    def validate(self):
        if len(self.params) != 1:
            raise GremlinError("NextHop accepts one parameter : %s" % fmt_params(self.params))
        if not isinstance(self.params[0], str):
            raise GremlinError("NextHop parameter have to be a string")
        try:
            self.ip = ipaddress.ip_address(self.params[0])
        except ValueError:
            raise GremlinError("NextHop parameter have to be a valid IP address") from None

    def exec(self, prev, state):
        if not isinstance(prev, NodesValue):
            return ExtensionStep.exec(self, prev, state)
        hops = {}
        for n in prev.items:
            nh = next_hop(n, self.ip)
            if nh is not None:
                hops[n.ID] = nh
        return NextHopValue(hops)


register_step("Descendants", DescendantsStep)
register_step("Ascendants", AscendantsStep)
register_step("Neighbors", NeighborsStep)
register_step("NextHop", NextHopStep)
