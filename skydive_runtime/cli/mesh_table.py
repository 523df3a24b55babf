"""`skydive client injection ping-mesh --format table`: the RTT matrix of /api/pingmesh as text.

One row per source, one column per destination (the nodes' `Name@Host`); a cell is
`avg ms (loss %)`, `-` on the diagonal, `error` when the pair could not be pinged (the errors
are listed under the table).
"""


def _label(nodes, nid):
    n = nodes.get(nid) or {}
    return "%s@%s" % (n.get("Name") or nid[:8], n.get("Host") or "-")


def _cell(stats):
    if stats is None:
        return "-"
    if "Error" in stats:
        return "error"
    rtt = stats.get("RTT")
    return "%s (%g%% loss)" % ("%.3f ms" % rtt["Avg"] if rtt else "no reply", stats["Loss"])


def mesh_table(mesh):
    nodes, matrix = mesh["Nodes"], mesh["Matrix"]
    cols = [_label(nodes, d) for d in mesh["Dst"]]
    rows = [[_label(nodes, s)] + [_cell(matrix[s].get(d)) for d in mesh["Dst"]] for s in mesh["Src"]]
    head = ["%s x %d, %d ms" % (mesh["Type"], mesh["Count"], mesh["Interval"])] + cols
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows]
    for s in mesh["Src"]:
        for d in mesh["Dst"]:
            stats = matrix[s].get(d)
            if stats and "Error" in stats:
                lines.append("%s -> %s: %s" % (_label(nodes, s), _label(nodes, d), stats["Error"]))
    return "\n".join(lines) + "\n"
