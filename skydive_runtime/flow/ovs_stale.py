"""What the OVS capture types leave in OVSDB when their agent dies without stopping them.

ovsmirror (a Mirror and its internal output port), ovssflow (an sFlow row) and ovsnetflow (a
NetFlow row) tag what they create with `external_ids:skydive-agent=<host id>` (ovssflow.agent_tag). An
agent killed with -9 cannot remove them, so the next agent start on that host calls
`remove_stale()` before it runs any capture: rows with its own host id go (another agent sharing
the OVSDB keeps its own), untagged rows are not touched.
"""

import json

from .ovssflow import agent_tag, vsctl

__all__ = ["remove_stale"]

# table -> the Bridge column that refers to its rows
_BRIDGE_COLUMNS = (("mirror", "mirrors"), ("sflow", "sflow"), ("netflow", "netflow"))


def _uuids(datum):
    """UUIDs in an ovs-vsctl JSON datum: ["uuid", u], ["set", [...]] or an empty set."""
    if not isinstance(datum, list) or len(datum) != 2:
        return set()
    if datum[0] == "uuid":
        return {datum[1]}
    if datum[0] == "set":
        return {d[1] for d in datum[1] if isinstance(d, list) and len(d) == 2 and d[0] == "uuid"}
    return set()


def remove_stale(ovsdb, host_id):
    """Remove this host's leftover mirrors, mirror ports, sFlow and NetFlow rows; what was removed."""
    tag = agent_tag(host_id)
    out = json.loads(vsctl(ovsdb, "--format=json", "--columns=name,mirrors,sflow,netflow", "list", "bridge"))
    heading = out.get("headings", [])
    bridges = [dict(zip(heading, row)) for row in out.get("data", [])]
    args, removed = [], []
    for table, column in _BRIDGE_COLUMNS:
        mine = set(vsctl(ovsdb, "--bare", "--columns=_uuid", "find", table, tag).split())
        for bridge in bridges:
            for uuid in sorted(_uuids(bridge.get(column)) & mine):
                args += ["--", "remove", "bridge", bridge["name"], column, uuid]
                removed.append("%s %s on %s" % (table, uuid, bridge["name"]))
    for name in vsctl(ovsdb, "--bare", "--columns=name", "find", "interface", tag).split():
        args += ["--", "--if-exists", "del-port", name]
        removed.append("port %s" % name)
    if args:
        vsctl(ovsdb, *args)
    return removed
