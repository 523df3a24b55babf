"""What changed between two graphs: elements added, removed, and metadata keys changed.

    diff_graphs(old, new, ignore=DEFAULT_IGNORED)
    # old/new: {"Nodes": {id: element dict}, "Edges": {id: element dict}}
    # -> {"Nodes": {"Added": [el], "Removed": [el], "Changed": [{"ID", "Host", "Name", "Type", "TID",
    #                                                            "Changes": {key: {"Old", "New"}}}]},
    #     "Edges": {... "Changed": [{"ID", "Parent", "Child", "RelationType", "Changes"}]}}

Metadata is compared key by key on dotted paths (`Ovs.Options.remote_ip`); lists are values. A key
that appears has `Old: null`, one that goes has `New: null`. Keys in `ignore` (and below them) are
not compared: by default the counters that change all the time (metrics).
"""

DEFAULT_IGNORED = ("Metric", "LastUpdateMetric", "Ovs.Metric", "Ovs.LastUpdateMetric", "SFlow.Metric",
                   "SFlow.LastUpdateMetric")


def flatten(md, prefix=""):
    out = {}
    for k, v in (md or {}).items():
        key = prefix + str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _ignored(key, ignore):
    return any(key == i or key.startswith(i + ".") for i in ignore)


def metadata_changes(old_md, new_md, ignore=DEFAULT_IGNORED):
    a, b = flatten(old_md), flatten(new_md)
    changes = {}
    for key in sorted(set(a) | set(b)):
        if _ignored(key, ignore):
            continue
        if a.get(key) != b.get(key) or (key in a) != (key in b):
            changes[key] = {"Old": a.get(key), "New": b.get(key)}
    return changes


def _node_summary(el):
    md = el.get("Metadata") or {}
    return {"ID": el["ID"], "Host": el.get("Host", ""), "Name": md.get("Name"), "Type": md.get("Type"),
            "TID": md.get("TID")}


def _edge_summary(el):
    md = el.get("Metadata") or {}
    return {"ID": el["ID"], "Parent": el.get("Parent"), "Child": el.get("Child"), "RelationType": md.get("RelationType")}


def _diff(old, new, summary, ignore):
    added = [new[i] for i in sorted(set(new) - set(old))]
    removed = [old[i] for i in sorted(set(old) - set(new))]
    changed = []
    for i in sorted(set(old) & set(new)):
        changes = metadata_changes(old[i].get("Metadata"), new[i].get("Metadata"), ignore)
        if changes:
            changed.append(dict(summary(new[i]), Changes=changes))
    return {"Added": added, "Removed": removed, "Changed": changed}


def diff_graphs(old, new, ignore=DEFAULT_IGNORED):
    return {"Nodes": _diff(old.get("Nodes") or {}, new.get("Nodes") or {}, _node_summary, ignore),
            "Edges": _diff(old.get("Edges") or {}, new.get("Edges") or {}, _edge_summary, ignore)}


def diff_count(diff):
    """How many elements the diff lists (added + removed + changed, nodes and edges)."""
    return sum(len(part[k]) for part in (diff["Nodes"], diff["Edges"]) for k in ("Added", "Removed", "Changed"))
