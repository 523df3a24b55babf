"""Ping-mesh: ICMP echo between every source and every destination node, with the RTT matrix.

    POST /api/pingmesh {"Src": <gremlin>, "Dst": <gremlin>, "Type": "icmp4"|"icmp6", "Count": 3,
                        "Interval": 200}
    -> {"Nodes": {id: {Name, Host, IP}}, "Src": [ids], "Dst": [ids], "Count", "Interval",
        "Matrix": {src id: {dst id: {"Sent", "Received", "Loss" (%), "RTT": {"Min", "Avg", "Max"} (ms)}
                                     or {"Error": "..."} ; the diagonal: null}}}

How (the workflows' helpers, analyzer/workflows.py): one afpacket capture on the source nodes
(BPF icmp/icmp6), then one packet injection per (source, destination) pair, `Count` echo
requests `Interval` ms apart in `random` mode, so that each request is its own flow (a random
ICMP id per packet) and carries its own RTT; the pair's flows are those of the capture on the
source node from its address to the destination's. The answer comes when every pair has all its
replies, or at Count x Interval + 2 flow.update periods + 2 s (flows reach the analyzer once per
flow.update): a request without a reply by then is lost. The capture and the injections are
deleted before answering. A pair whose injection cannot be made (no address, no MAC...) gets
{"Error"}; a source whose capture could not start gets it on its whole row.
"""

import asyncio
import ipaddress
import uuid as uuidlib

from ..api.http import HTTPError, json_response, read_body
from .workflows import WorkflowError, WorkflowRunner, _q

MAX_NODES = 32
FAMILIES = {"icmp4": ("IPV4", "icmp", 4), "icmp6": ("IPV6", "icmp6", 6)}


def _address(node, key, version):
    for cidr in (node.get("Metadata") or {}).get(key) or ():
        try:
            ip = ipaddress.ip_interface(str(cidr)).ip
        except ValueError:
            continue
        if ip.version == version and not ip.is_link_local:
            return str(ip)
    return None


def _check_body(data):
    if not isinstance(data, dict):
        raise WorkflowError("the body must be a JSON object {Src, Dst, Type, Count, Interval}")
    for k in ("Src", "Dst"):
        if not isinstance(data.get(k), str) or not data[k].strip():
            raise WorkflowError("%s: a Gremlin query selecting the %s nodes is required"
                                % (k, "source" if k == "Src" else "destination"))
    ptype = data.get("Type") or "icmp4"
    if ptype not in FAMILIES:
        raise WorkflowError("Type: %r is not supported (icmp4, icmp6)" % (ptype,))
    count, interval = data.get("Count", 3), data.get("Interval", 200)
    for k, v, lo, hi in (("Count", count, 1, 100), ("Interval", interval, 10, 10000)):
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise WorkflowError("%s: an integer between %d and %d, got %r" % (k, lo, hi, v))
    return data["Src"], data["Dst"], ptype, count, interval


class PingMesh(WorkflowRunner):
    async def run_mesh(self, data):
        src_q, dst_q, ptype, count, interval = _check_body(data)
        key, bpf, version = FAMILIES[ptype]
        srcs = [n for n in await self.query(src_q) or () if isinstance(n, dict) and "ID" in n and "Metadata" in n]
        dsts = [n for n in await self.query(dst_q) or () if isinstance(n, dict) and "ID" in n and "Metadata" in n]
        if not srcs or not dsts:
            raise WorkflowError("%s selects no node" % ("Src" if not srcs else "Dst"))
        if len(srcs) > MAX_NODES or len(dsts) > MAX_NODES:
            raise WorkflowError("a ping-mesh takes at most %d sources and %d destinations" % (MAX_NODES, MAX_NODES))
        nodes = {n["ID"]: {"Name": n["Metadata"].get("Name"), "Host": n.get("Host"),
                           "IP": _address(n, key, version)} for n in srcs + dsts}
        for n in srcs + dsts:
            if not n["Metadata"].get("TID"):
                raise WorkflowError("node %s (%s) has no TID" % (n["ID"], n["Metadata"].get("Name")))
        src_tids = [n["Metadata"]["TID"] for n in srcs]
        captured = "G.V().Has('TID', Within(%s))" % ", ".join(_q(t) for t in src_tids)
        capture = self._create("capture", {"GremlinQuery": captured, "Type": "afpacket", "BPFFilter": bpf,
                                           "Name": "ping-mesh %s" % uuidlib.uuid4()})
        cid = capture["UUID"]
        matrix = {s["ID"]: {d["ID"]: None for d in dsts} for s in srcs}
        injections = []
        try:
            await self._wait_active(cid, captured, len(srcs))
            active = {n["ID"] for n in await self.query(
                captured + ".Has('Captures.ID', '%s', 'Captures.State', 'active')" % cid) or ()}
            pairs = []
            for s in srcs:
                for d in dsts:
                    if s["ID"] == d["ID"]:
                        continue
                    if s["ID"] not in active:
                        matrix[s["ID"]][d["ID"]] = {"Error": "the capture on the source did not start"}
                        continue
                    try:
                        inj = self._create("injectpacket", {
                            "Src": "G.V().Has('TID', %s)" % _q(s["Metadata"]["TID"]),
                            "Dst": "G.V().Has('TID', %s)" % _q(d["Metadata"]["TID"]),
                            "Type": ptype, "Count": count, "Interval": interval, "Mode": "random"},
                            ttl_ms=count * interval + 10000)
                    except WorkflowError as exc:
                        matrix[s["ID"]][d["ID"]] = {"Error": str(exc)}
                        continue
                    injections.append(inj["UUID"])
                    pairs.append((s, d))
            results = {}

            async def complete():
                for s, d in pairs:
                    results[(s["ID"], d["ID"])] = await self._pair_flows(cid, s, nodes[s["ID"]]["IP"],
                                                                         nodes[d["ID"]]["IP"])
                return all(sum(_m(f, "BAPackets") for f in fl) >= count for fl in results.values())
            await asyncio.sleep(count * interval / 1000.0)
            await self._until(count * interval / 1000.0 + self.flow_wait, complete)
            for s, d in pairs:
                matrix[s["ID"]][d["ID"]] = _stats(results.get((s["ID"], d["ID"])) or [], count)
        finally:
            for rid in injections:
                self._delete("injectpacket", rid)
            self._delete("capture", cid)
        return {"Nodes": nodes, "Src": [s["ID"] for s in srcs], "Dst": [d["ID"] for d in dsts],
                "Count": count, "Interval": interval, "Type": ptype, "Matrix": matrix}

    async def _pair_flows(self, cid, src, src_ip, dst_ip):
        if not src_ip or not dst_ip:
            return []
        q = "G.Flows().Has('CaptureID', '%s', 'NodeTID', %s, 'Network.A', '%s', 'Network.B', '%s', 'ICMP.Type', 'ECHO')" % (
            cid, _q(src["Metadata"]["TID"]), src_ip, dst_ip)
        return [f for f in await self.query(q) or () if isinstance(f, dict)]


def _m(flow, key):
    return int((flow.get("Metric") or {}).get(key, 0) or 0)


def _stats(flows, count):
    sent = min(count, sum(_m(f, "ABPackets") for f in flows)) or count
    received = min(sent, sum(_m(f, "BAPackets") for f in flows))
    rtts = [f["Metric"]["RTT"] / 1e6 for f in flows if _m(f, "BAPackets") and _m(f, "RTT") > 0]
    out = {"Sent": sent, "Received": received, "Loss": round(100.0 * (sent - received) / sent, 1)}
    if rtts:
        out["RTT"] = {"Min": round(min(rtts), 3), "Avg": round(sum(rtts) / len(rtts), 3), "Max": round(max(rtts), 3)}
    return out


def mount_pingmesh(analyzer, app, guard):
    mesh = PingMesh(analyzer)

    async def call(request):
        guard(request, "injectpacket", "write")
        data = await read_body(request)
        try:
            return json_response(await mesh.run_mesh(data))
        except WorkflowError as exc:
            raise HTTPError(400, str(exc)) from None
    app.router.add_post("/api/pingmesh", call)
