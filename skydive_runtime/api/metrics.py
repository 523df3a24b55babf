"""GET /metrics: the Prometheus text exposition format (version 0.0.4), written by hand.

A service gives `mount_metrics` a function returning families:
    [(name, type, help, [(labels dict, value), ...]), ...]   type: "gauge" | "counter"
Counter names end in `_total`. The route is guarded like /api/status (RBAC object `status`).
"""

import math

from aiohttp import web

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "+Inf" if v > 0 else "-Inf"
        return repr(v)
    return str(int(v))


def render(families):
    lines = []
    for name, kind, text, samples in families:
        lines.append("# HELP %s %s" % (name, text.replace("\\", "\\\\").replace("\n", " ")))
        lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples:
            if labels:
                body = ",".join('%s="%s"' % (k, _escape_label(v)) for k, v in sorted(labels.items()))
                lines.append("%s{%s} %s" % (name, body, _number(value)))
            else:
                lines.append("%s %s" % (name, _number(value)))
    return "\n".join(lines) + "\n"


def mount_metrics(app, collect, guard):
    async def metrics(request):
        guard(request, "status", "read")
        return web.Response(body=render(collect()).encode(), headers={"Content-Type": CONTENT_TYPE})
    app.router.add_get("/metrics", metrics)


def capture_counters(graph, host=None):
    """Per capture: packets received / dropped summed over the nodes' `Captures` metadata."""
    received, dropped = {}, {}
    for node in list(graph.nodes.values()):
        if host is not None and node.Host != host:
            continue
        for cap in node.Metadata.get("Captures") or ():
            if not isinstance(cap, dict) or not isinstance(cap.get("ID"), str):
                continue
            cid = cap["ID"]
            received[cid] = received.get(cid, 0) + _int(cap.get("PacketsReceived"))
            dropped[cid] = dropped.get(cid, 0) + _int(cap.get("PacketsDropped")) + _int(cap.get("PacketsIfDropped"))
    return ([({"capture": c}, v) for c, v in sorted(received.items())],
            [({"capture": c}, v) for c, v in sorted(dropped.items())])


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def queued_messages(server):
    """Frames waiting in the WebSocket send queues of a service, per endpoint path."""
    out = []
    for path, conns in sorted(server.conns.items()):
        out.append(({"path": path}, sum(len(c._queue) for c in list(conns.values()))))
    return out
