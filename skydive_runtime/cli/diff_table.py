"""`skydive client topology diff --format table`: the diff of /api/topology/diff as text."""

import json


def _value(v):
    return "(absent)" if v is None else json.dumps(v, sort_keys=True) if not isinstance(v, str) else v


def _node_line(mark, el):
    md = el.get("Metadata") if "Metadata" in el else el
    return "  %s %s %s (%s) %s" % (mark, el.get("Host") or "-", md.get("Name") or "-", md.get("Type") or "-", el["ID"])


def _edge_line(mark, el):
    rel = (el.get("Metadata") or {}).get("RelationType") if "Metadata" in el else el.get("RelationType")
    return "  %s %s -%s-> %s %s" % (mark, el.get("Parent"), rel or "-", el.get("Child"), el["ID"])


def diff_table(diff):
    lines = ["topology diff from %s to %s (filter %s)" % (diff["From"], diff["To"] or "now", diff["GremlinFilter"])]
    total = 0
    for part, line in (("Nodes", _node_line), ("Edges", _edge_line)):
        d = diff[part]
        for key, mark in (("Added", "+"), ("Removed", "-"), ("Changed", "~")):
            if not d[key]:
                continue
            total += len(d[key])
            lines.append("%s %s (%d):" % (part.lower()[:-1], key.lower(), len(d[key])))
            for el in d[key]:
                lines.append(line(mark, el))
                for k, ch in sorted((el.get("Changes") or {}).items()):
                    lines.append("      %s: %s -> %s" % (k, _value(ch["Old"]), _value(ch["New"])))
    if not total:
        lines.append("no change")
    return "\n".join(lines) + "\n"
