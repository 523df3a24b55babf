"""Capture type `ovsnetflow`: a NetFlow v5 collector on the agent and an OVS `NetFlow` row on the
bridge exporting to it (ovs-vsctl against `ovs.ovsdb`, active timeout 1 s, so that long flows are
reported every second); stopping the capture clears the bridge's netflow. Records become flows
through netflow.NetFlowTable (raw IPv4 flows: no Ethernet layer, NetFlow v5 carries no MACs).

Collector: `agent.flow.netflow.bind_address` (127.0.0.1) on the first free port of
`agent.flow.netflow.port_min`..`port_max` (6365-6375), or the capture's `Port`; the node's
`Captures` entry shows it as `NetFlowSocket`.
"""

import json

from .capabilities import Opened
from .netflow import NetFlowSource, NetFlowTable
from .ovsmirror import available
from .ovssflow import DEFAULT_OVSDB, agent_tag, vsctl

__all__ = ["available", "open_capture"]


def open_capture(ctx):
    cfg = ctx.config
    src = NetFlowSource.bind_for(ctx, "netflow", (6365, 6375), "NetFlowSocket")
    ovsdb = cfg.get_string("ovs.ovsdb") or DEFAULT_OVSDB
    bridge = ctx.node.Metadata.get("Name")
    uuid = ctx.capture.get("UUID", "")

    def setup():
        try:
            vsctl(ovsdb, "--", "--id=@n", "create", "netflow", 'targets="%s"' % src.address, "active_timeout=1",
                  "external_ids:skydive-capture=%s" % json.dumps(uuid), agent_tag(ctx.host_id), "--", "set", "bridge", bridge, "netflow=@n")
        except Exception as exc:
            raise RuntimeError("cannot configure NetFlow on %s: %s" % (bridge, exc)) from None

    return Opened(src, table=NetFlowTable(ctx.table), setup=setup,
                  cleanup=lambda: vsctl(ovsdb, "--if-exists", "clear", "bridge", bridge, "netflow"))
