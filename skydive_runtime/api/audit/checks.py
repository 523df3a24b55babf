"""The checks of a rule over a snapshot graph (a private skydive_runtime.graph.Graph) and the
result of its query. Each returns a list of violations:

    {"Message": "...", "Nodes": [{"ID", "Host", "Name", "Type", "TID"[, "Namespace"]}], "Values": {...}}
"""

import ipaddress
import operator

from ...graph.metadata import MISSING, get_raw, get_values

OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class CheckError(ValueError):
    """The rule cannot be evaluated (its query returns the wrong kind of result...)."""


def summary(graph, node):
    md = node.Metadata
    out = {"ID": node.ID, "Host": node.Host, "Name": md.get("Name"), "Type": md.get("Type"), "TID": md.get("TID")}
    for e in graph.iter_in_edges(node.ID):
        if e.Metadata.get("RelationType") == "ownership":
            owner = graph.nodes.get(e.Parent)
            if owner is not None and owner.Metadata.get("Type") == "netns":
                out["Namespace"] = owner.Metadata.get("Name")
            break
    return out


def where(s):
    ns = "/%s" % s["Namespace"] if s.get("Namespace") else ""
    return "%s@%s%s" % (s.get("Name") or s["ID"], s.get("Host") or "-", ns)


def items_of(result):
    """(kind, items, number): the result's elements and how many it has (Count() -> its value)."""
    kind = getattr(result, "kind", None)
    if kind in ("nodes", "edges"):
        return kind, list(result.items), len(result.items)
    if kind == "graph":
        nodes = list(result.view.all_nodes())
        return "nodes", nodes, len(nodes)
    if kind == "paths":
        return kind, list(result.paths), len(result.paths)
    value = result.to_json_value()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        values = value if isinstance(value, list) else ([] if value is None else [value])
        return "values", values, len(values)
    return "count", [], int(value)


def _found(graph, kind, item):
    if kind == "nodes":
        s = summary(graph, item)
        return {"Message": "found %s (%s)" % (where(s), s.get("Type")), "Nodes": [s]}
    if kind == "edges":
        ends = [summary(graph, graph.nodes[i]) for i in (item.Parent, item.Child) if i in graph.nodes]
        text = "found edge %s (%s)" % (" -> ".join(where(s) for s in ends), item.Metadata.get("RelationType"))
        return {"Message": text, "Nodes": ends, "Edge": item.ID}
    if kind == "paths":
        nodes = [summary(graph, n) for n in item]
        return {"Message": "found path %s" % " -> ".join(where(s) for s in nodes), "Nodes": nodes}
    return {"Message": "found %r" % (item,), "Values": {"Value": item}}


def check_expect(graph, expect, kind, items, number, prefix=""):
    what, op, n = expect
    if what == "empty":
        if number == 0:
            return []
        if kind == "count":
            return [{"Message": "%scount is %d, expected 0" % (prefix, number), "Values": {"Count": number}}]
        return [dict(v, Message=prefix + v["Message"]) for v in (_found(graph, kind, i) for i in items)]
    if what == "nonempty":
        return [] if number > 0 else [{"Message": "%sthe query found nothing" % prefix}]
    if OPS[op](number, n):
        return []
    return [{"Message": "%scount is %d, expected %s %d" % (prefix, number, op, n), "Values": {"Count": number}}]


def check_per_host(graph, expect, kind, items, hosts):
    if kind not in ("nodes", "edges"):
        raise CheckError("per: Host needs a query returning nodes or edges")
    by_host = {}
    for it in items:
        by_host.setdefault(it.Host, []).append(it)
    out = []
    for h in hosts:
        name = h.Metadata.get("Name") or h.Host
        mine = by_host.get(h.Host, []) if h.Host else by_host.get(name, [])
        for v in check_expect(graph, expect, kind, mine, len(mine), prefix="host %s: " % name):
            v.setdefault("Nodes", []).insert(0, summary(graph, h))
            out.append(v)
    return out


def check_same(graph, key, kind, items):
    if kind != "edges":
        raise CheckError("same: the query must return edges (e.g. G.E().Has('RelationType', 'layer2'))")
    out = []
    for e in items:
        p, c = graph.nodes.get(e.Parent), graph.nodes.get(e.Child)
        if p is None or c is None:
            continue
        a, b = get_raw(p, key), get_raw(c, key)
        if a is MISSING or b is MISSING or a == b:
            continue
        sa, sb = summary(graph, p), summary(graph, c)
        out.append({"Message": "%s differs across the %s link: %r on %s, %r on %s" % (
            key, e.Metadata.get("Type") or e.Metadata.get("RelationType"), a, where(sa), b, where(sb)),
            "Nodes": [sa, sb], "Values": {key: [a, b]}, "Edge": e.ID})
    return out


def _unique_value(v):
    """The comparable form of a value: IP addresses without their prefix length; None to skip it
    (link-local and loopback addresses, empty values)."""
    if v in (None, "", [], {}):
        return None
    if isinstance(v, str) and ("." in v or ":" in v):
        try:
            ip = ipaddress.ip_interface(v).ip
        except ValueError:
            return v
        if ip.is_link_local or ip.is_loopback:
            return None
        return str(ip)
    return v if isinstance(v, (str, int, float, bool)) else repr(v)


def _near(graph, a, b, hops):
    """b within `hops` non-ownership edges of a."""
    seen, frontier = {a}, [a]
    for dummy in range(hops):
        nxt = []
        for nid in frontier:
            for e in list(graph.iter_out_edges(nid)) + list(graph.iter_in_edges(nid)):
                if e.Metadata.get("RelationType") == "ownership":
                    continue
                other = e.Child if e.Parent == nid else e.Parent
                if other == b:
                    return True
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
        frontier = nxt
    return False


def _groups(graph, ids, hops):
    """Split node ids into groups of nodes linked within `hops` (0: every node apart)."""
    groups = []
    for nid in ids:
        for g in groups:
            if hops and any(_near(graph, nid, other, hops) for other in g):
                g.append(nid)
                break
        else:
            groups.append([nid])
    return groups


def check_unique(graph, key, kind, items, hops=0):
    if kind != "nodes":
        raise CheckError("unique: the query must return nodes")
    holders = {}
    for n in items:
        for v in get_values(n, key) or ():
            u = _unique_value(v)
            if u is not None:
                holders.setdefault(u, [])
                if n.ID not in holders[u]:
                    holders[u].append(n.ID)
    out = []
    for value, ids in holders.items():
        if len(ids) < 2 or len(_groups(graph, ids, hops)) < 2:
            continue
        nodes = [summary(graph, graph.nodes[i]) for i in ids]
        out.append({"Message": "%s %s is held by %d nodes: %s" % (key, value, len(ids), ", ".join(where(s) for s in nodes)),
                    "Nodes": nodes, "Values": {key: value}})
    return out


def _edge_matches(edge, wanted):
    return all(edge.Metadata.get(k) == v for k, v in wanted.items())


def check_linked(graph, wanted, kind, items):
    if kind != "nodes":
        raise CheckError("linked: the query must return nodes")
    out = []
    label = ", ".join("%s=%s" % kv for kv in sorted(wanted.items()))
    for n in items:
        edges = list(graph.iter_out_edges(n.ID)) + list(graph.iter_in_edges(n.ID))
        if not any(_edge_matches(e, wanted) for e in edges):
            s = summary(graph, n)
            out.append({"Message": "%s (%s) has no %s link" % (where(s), s.get("Type"), label), "Nodes": [s]})
    return out


def _addresses(graph):
    """(host, ip) -> [node] of every IPV4/IPV6 address."""
    idx = {}
    for n in graph.nodes.values():
        for k in ("IPV4", "IPV6"):
            for v in get_values(n, k) or ():
                try:
                    ip = str(ipaddress.ip_interface(v).ip)
                except ValueError:
                    continue
                idx.setdefault((n.Host, ip), []).append(n)
    return idx


def _owner_bridge(graph, node):
    for e in graph.iter_in_edges(node.ID):
        p = graph.nodes.get(e.Parent)
        if p is None:
            continue
        if p.Metadata.get("Type") == "ovsbridge":
            return p
        if p.Metadata.get("Type") == "ovsport":
            return _owner_bridge(graph, p)
    return None


def _bridge_interfaces(graph, bridge):
    for e in graph.iter_out_edges(bridge.ID):
        port = graph.nodes.get(e.Child)
        if port is None or port.Metadata.get("Type") != "ovsport":
            continue
        for e2 in graph.iter_out_edges(port.ID):
            intf = graph.nodes.get(e2.Child)
            if intf is not None and e2.Metadata.get("RelationType") == "layer2":
                yield intf


def inner_mtu(graph, tunnel, tunnel_types):
    """The MTU the tunnel carries: its own, else the largest of the interfaces of its bridge and
    of the bridges its bridge reaches through patch ports (tunnels and patches excluded)."""
    own = tunnel.Metadata.get("MTU")
    if isinstance(own, int):
        return own, None
    bridge = _owner_bridge(graph, tunnel)
    if bridge is None:
        return None, None
    bridges, best, holder = [bridge], None, None
    for br in list(bridges):
        for intf in _bridge_interfaces(graph, br):
            if intf.Metadata.get("Type") == "patch":
                for e in list(graph.iter_out_edges(intf.ID)) + list(graph.iter_in_edges(intf.ID)):
                    peer = graph.nodes.get(e.Child if e.Parent == intf.ID else e.Parent)
                    pb = _owner_bridge(graph, peer) if peer is not None and e.Metadata.get("Type") == "patch" else None
                    if pb is not None and pb not in bridges:
                        bridges.append(pb)
    for br in bridges:
        for intf in _bridge_interfaces(graph, br):
            mtu = intf.Metadata.get("MTU")
            if intf.Metadata.get("Type") in tunnel_types or intf.Metadata.get("Type") == "patch" or not isinstance(mtu, int):
                continue
            if best is None or mtu > best:
                best, holder = mtu, intf
    return best, holder


def check_fits_underlay(graph, overheads, kind, items):
    if kind != "nodes":
        raise CheckError("fits_underlay: the query must return tunnel nodes")
    addrs = _addresses(graph)
    out = []
    for t in items:
        overhead = overheads.get(t.Metadata.get("Type"))
        local = t.Metadata.get("LocalIP")
        if overhead is None or not local:
            continue
        st = summary(graph, t)
        under = [n for n in addrs.get((t.Host, str(local)), ()) if n.ID != t.ID]
        if not under:
            out.append({"Message": "%s tunnel %s: no interface of host %s carries its local IP %s" % (
                t.Metadata.get("Type"), where(st), t.Host, local), "Nodes": [st], "Values": {"LocalIP": local}})
            continue
        u = under[0]
        umtu = u.Metadata.get("MTU")
        mtu, holder = inner_mtu(graph, t, overheads)
        if not isinstance(umtu, int) or mtu is None or mtu + overhead <= umtu:
            continue
        su = summary(graph, u)
        nodes = [st, su] + ([summary(graph, holder)] if holder is not None else [])
        out.append({"Message": "%s tunnel %s: inner MTU %d%s + %d bytes of encapsulation > MTU %d of the underlay %s" % (
            t.Metadata.get("Type"), where(st), mtu, " (%s)" % where(nodes[2]) if holder is not None else "", overhead,
            umtu, where(su)), "Nodes": nodes, "Values": {"InnerMTU": mtu, "Overhead": overhead, "UnderlayMTU": umtu}})
    return out


def check_agents(graph, expected):
    connected = {n.Metadata.get("Name") for n in graph.nodes.values() if n.Metadata.get("Type") == "host"}
    connected |= {n.Host for n in graph.nodes.values() if n.Metadata.get("Type") == "host"}
    return [{"Message": "the agent of host %s is not connected" % h, "Values": {"Host": h}}
            for h in expected if h not in connected]
