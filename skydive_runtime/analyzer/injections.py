"""Packet injections on the analyzer (upstream's packet injector API + OnDemand client, spec §6).

For every injection resource created through `POST /api/injectpacket` the analyzer evaluates

    <Src>.Dedup('TID').Has('PacketInjections.ID', NEE('<uuid>'))

and, for each source node found, resolves the parameters for that node (source IP/MAC from the
node or SrcIP/SrcMAC, destination IP from the Dst node or DstIP, destination MAC from DstMAC, the
source node's next hop (RoutingTables + Neighbors), or the Dst node's `ExtID.attached-mac`/`MAC`)
and sends `Start` (namespace OnDemandPacketInjection, Obj {"NodeID", "Resource": <request>}) to
the agent owning the node. In `unique` mode (the default) each node gets its own ICMP id
(ICMPID, or 1 when 0, + 1 per node) and source port (SrcPort + 1 per node). A node (by TID) gets
an injection once; nodes matching later, while the resource lives, get it too (the query is
re-run, debounced, on graph changes and agent connections). DELETE, or the expiry of
X-Resource-TTL, sends `Stop` to every node carrying the injection in its `PacketInjections`.

`InjectionKind` replaces the API's `injectpacket` kind in the analyzer: the API's validation plus
the whole per-node resolution for the first source node, so that what cannot run is a 400 at
create time; TCP/UDP ports left at 0 are drawn in [1024, 65535) when the resource is stored.

In a cluster (etcd.servers) only the master of the `injections` duty runs injections, on every
agent of the cluster (analyzer/relay.py), and it records in etcd the nodes each injection was
sent to (`/skydive/ondemand/injectpacket/<uuid>`, before the Start goes out): a new master
takes every live injection over from that record, so no node gets one twice.
"""

import asyncio
import ipaddress
import json
import logging
import random

from ..api.kinds import InjectPacketKind
from ..api.query import QueryError
from ..api.resources import ResourceError
from ..flow import forge
from ..gremlin.topology import next_hop
from ..storage.base import StoreError
from .ondemand import OnDemandManager

log = logging.getLogger(__name__)

NAMESPACE = "OnDemandPacketInjection"
NOTIFICATION = "OnDemandPacketInjectionNotification"
KIND = "injectpacket"
_IGNORED_KEYS = ("PacketInjections", "Captures", "Metric", "LastUpdateMetric")
_rng = random.SystemRandom()
LEDGER = "/skydive/ondemand/injectpacket/"


def _quote(s):
    return "'%s'" % s if "'" not in s else '"%s"' % s


def injection_query(inj):
    """The query selecting the source nodes where `inj` is not running yet."""
    return "%s.Dedup('TID').Has('PacketInjections.ID', NEE(%s))" % (inj.get("Src", ""), _quote(inj.get("UUID", "")))


# ---- per-node resolution -------------------------------------------------------------------------

def _field(md, dotted):
    cur = md
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def node_ips(node, version):
    """Addresses of a node for IPv`version` (Neutron.IPV4/IPV6 first, then IPV4/IPV6; CIDR strings,
    the address part is used), link-local ones last."""
    out = []
    key = "IPV6" if version == 6 else "IPV4"
    for k in ("Neutron." + key, key):
        v = _field(node.Metadata, k)
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list):
            continue
        for x in v:
            if not isinstance(x, str) or not x:
                continue
            try:
                addr = ipaddress.ip_address(x.split("/", 1)[0])
            except ValueError:
                continue
            if addr.version == version and str(addr) not in out:
                out.append(str(addr))
    return sorted(out, key=lambda a: ipaddress.ip_address(a).is_link_local)


def _addr(value, key, version, ptype):
    try:
        addr = ipaddress.ip_address(value.split("/", 1)[0])
    except ValueError:
        raise ResourceError("%s: %r is not an IP address or CIDR" % (key, value)) from None
    if addr.version != version:
        raise ResourceError("%s: %s is not an IPv%d address (Type %s)" % (key, addr, version, ptype))
    return str(addr)


def _mac(v):
    return v if isinstance(v, str) and v and v != "00:00:00:00:00:00" else ""


def destination_mac(src, dst, dst_ip):
    """DstMAC when not given: the source node's next hop towards dst_ip (its RoutingTables and
    Neighbors; an on-link route resolves dst_ip itself in Neighbors), else the Dst node's
    ExtID.attached-mac or MAC."""
    try:
        ip = ipaddress.ip_address(dst_ip)
    except ValueError:
        ip = None
    if ip is not None:
        hop = next_hop(src, ip)
        if hop is not None:
            if _mac(hop.get("MAC")):
                return hop["MAC"]
            target = hop.get("IP") or str(ip)
            for nb in src.Metadata.get("Neighbors") or ():
                if isinstance(nb, dict) and nb.get("IP") == target and _mac(nb.get("MAC")):
                    return nb["MAC"]
    if dst is not None:
        for k in ("ExtID.attached-mac", "MAC"):
            mac = _mac(_field(dst.Metadata, k))
            if mac:
                return mac
    return ""


def resolve_request(inj, src, dst, index=0):
    """The request sent to the agent for source node `src` (the index-th node of the injection).
    ResourceError (a 400 at create time) when something cannot be resolved."""
    ptype = inj.get("Type") or "icmp4"
    version = forge.type_version(ptype)
    mode = inj.get("Mode") or "unique"
    req = {"UUID": inj.get("UUID", ""), "SrcIP": "", "SrcMAC": "", "SrcPort": inj.get("SrcPort", 0),
           "DstIP": "", "DstMAC": "", "DstPort": inj.get("DstPort", 0), "Type": ptype,
           "Count": inj.get("Count", 0), "ICMPID": inj.get("ICMPID", 0), "Interval": inj.get("Interval", 0),
           "Mode": mode, "IncrementPayload": inj.get("IncrementPayload", 0), "Payload": inj.get("Payload", ""),
           "Pcap": inj.get("Pcap"), "TTL": inj.get("TTL", 0)}
    raw_ip = src.Metadata.get("EncapType") in forge.RAW_IP_ENCAPS
    if inj.get("Pcap"):
        # replayed as is; the MACs only serve to wrap a raw-IP pcap for an Ethernet interface
        req["SrcMAC"] = inj.get("SrcMAC") or _mac(src.Metadata.get("MAC"))
        req["DstMAC"] = inj.get("DstMAC") or ""
        for k in ("SrcIP", "DstIP"):
            req[k] = (inj.get(k) or "").split("/", 1)[0]
        return req
    if inj.get("SrcIP"):
        req["SrcIP"] = _addr(inj["SrcIP"], "SrcIP", version, ptype)
    else:
        ips = node_ips(src, version)
        if not ips:
            raise ResourceError("No source IP in node and user input")
        req["SrcIP"] = ips[0]
    if inj.get("DstIP"):
        req["DstIP"] = _addr(inj["DstIP"], "DstIP", version, ptype)
    else:
        ips = node_ips(dst, version) if dst is not None else []
        if not ips:
            raise ResourceError("No destination IP in node and user input")
        req["DstIP"] = ips[0]
    if not raw_ip:
        req["SrcMAC"] = inj.get("SrcMAC") or _mac(src.Metadata.get("MAC"))
        if not req["SrcMAC"]:
            raise ResourceError("No source MAC in node and user input")
        req["DstMAC"] = inj.get("DstMAC") or destination_mac(src, dst, req["DstIP"])
        if not req["DstMAC"]:
            raise ResourceError("Not able to find a destination MAC")
    if mode == "unique" and index:
        req["ICMPID"] = ((req["ICMPID"] or 1) + index) & 0xFFFF
        if req["SrcPort"]:
            port = req["SrcPort"] + index
            req["SrcPort"] = port if port <= 0xFFFF else 1024 + (port - 0x10000) % (0xFFFF - 1024)
    elif mode == "unique":
        req["ICMPID"] = req["ICMPID"] or 1
    return req


class InjectionKind(InjectPacketKind):
    """`injectpacket` with the per-node resolution checked at create time (first source node)."""

    def validate(self, obj):
        InjectPacketKind.validate(self, obj)
        if obj["Pcap"]:
            return
        try:
            srcs = self.engine.nodes(obj["Src"])
            dsts = self.engine.nodes(obj["Dst"]) if obj["Dst"] else []
        except QueryError as exc:
            raise ResourceError(str(exc)) from None
        if not srcs:
            raise ResourceError("Not able to find a source node with the query %s" % obj["Src"])
        resolve_request(obj, srcs[0], dsts[0] if dsts else None, 0)

    def finalize(self, obj):
        if not obj.get("Pcap") and obj.get("Type", "")[:3] in ("tcp", "udp"):
            for k in ("SrcPort", "DstPort"):
                if not obj.get(k):
                    obj[k] = _rng.randrange(1024, 65535)
        return InjectPacketKind.finalize(self, obj)


# ---- execution -----------------------------------------------------------------------------------

class _State:
    def __init__(self, inj):
        self.inj = inj
        self.started = {}       # node TID (or ID) -> node ID where Start was sent
        self.index = 0          # per-node index (unique mode)
        self.errors = {}        # node ID -> last error


class InjectionManager(OnDemandManager):
    kind = KIND
    namespace = NAMESPACE
    notification = NOTIFICATION
    metadata_key = "PacketInjections"
    ignored_keys = _IGNORED_KEYS
    # injections reloaded from the store ran in a previous analyzer: they are not replayed
    # (their resource stays until DELETE or TTL, and DELETE still stops them)
    schedule_at_start = False

    def __init__(self, analyzer, debounce=None):
        OnDemandManager.__init__(self, analyzer, debounce)
        self.states = {}        # injection uuid -> _State (injections created by this process)
        shared = getattr(getattr(analyzer, "cluster", None), "shared", None)
        self.ledger = shared.client if shared is not None else None   # etcd: where each one was sent

    def start(self):
        OnDemandManager.start(self)
        if self.ledger is not None:      # master (again): take the live injections over
            self._spawn(self._take_over())

    async def _take_over(self):
        loop = asyncio.get_running_loop()
        injections = self.resources.list(KIND)
        for uid, inj in (injections.items() if isinstance(injections, dict) else ()):
            if uid in self.states:
                continue
            try:
                text = await loop.run_in_executor(None, self.ledger.get, LEDGER + uid)
                started = json.loads(text) if text else {}
            except (StoreError, ValueError) as exc:
                log.warning("injection %s: its record in etcd cannot be read (%s): not taken over", uid, exc)
                continue
            if not self.running or uid in self.states:
                return
            st = _State(inj)
            st.started = started if isinstance(started, dict) else {}
            st.index = len(st.started)
            self.states[uid] = st
            log.info("injection %s taken over (sent to %d nodes before)", uid, len(st.started))
        self._schedule(0)

    async def _record(self, uid, st):
        if self.ledger is None:
            return True
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.ledger.put, LEDGER + uid,
                                                             json.dumps(st.started))
            return True
        except StoreError as exc:
            log.warning("injection %s: cannot record it in etcd (%s): not sent", uid, exc)
            return False

    def has_work(self):
        return bool(self.states)

    def resource_created(self, obj):
        if obj.get("UUID"):
            self.states[obj["UUID"]] = _State(obj)

    def status(self):
        return {uid: {"Nodes": sorted(st.started.values()), "Errors": dict(st.errors)}
                for uid, st in self.states.items()}

    # ---- matching ---------------------------------------------------------------------------
    def apply_all(self):
        if not self.running:
            return
        for uid, st in list(self.states.items()):
            if self.resources.get(KIND, uid) is None:
                continue
            self.apply(st)

    def apply(self, st):
        inj = st.inj
        uid = inj.get("UUID", "")
        try:
            nodes = self.engine.nodes(injection_query(inj))
            dsts = self.engine.nodes(inj["Dst"]) if inj.get("Dst") and not inj.get("Pcap") else []
        except QueryError as exc:
            log.warning("injection %s: query failed: %s", uid, exc)
            return 0
        dst = dsts[0] if dsts else None
        n = 0
        for node in nodes:
            key = node.Metadata.get("TID") or node.ID
            if key in st.started or not node.Host:
                continue
            conn = self.agent(node.Host)
            if conn is None:
                continue
            try:
                req = resolve_request(inj, node, dst, st.index)
            except (ResourceError, forge.ForgeError) as exc:
                st.errors[node.ID] = str(exc)
                st.started[key] = node.ID          # not retried: the node cannot source it
                log.warning("injection %s: node %s (%s): %s", uid, node.Metadata.get("Name"), node.ID, exc)
                continue
            st.index += 1
            st.started[key] = node.ID
            self._spawn(self._start(conn, st, key, node.ID, req))
            n += 1
        return n

    async def _start(self, conn, st, key, node_id, req):
        if not await self._record(st.inj.get("UUID", ""), st):
            st.started.pop(key, None)
            return
        status, message = await self.send_start(conn, node_id, req)
        if status is None:
            st.started.pop(key, None)            # the agent went away: retried when it is back
        elif status != 200:
            st.errors[node_id] = "%s: %s" % (status, message)

    async def remove(self, obj):
        uid = obj.get("UUID", "")
        st = self.states.pop(uid, None)
        targets = self.nodes_carrying(uid)
        if st is not None:
            for nid in st.started.values():
                node = self.graph.get_node(nid)
                if node is not None and nid not in st.errors:
                    targets.setdefault(nid, node.Host)
        await self.stop_on_nodes(obj, targets)
        if self.ledger is not None and uid:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.ledger.delete, LEDGER + uid)
            except StoreError as exc:
                log.warning("injection %s: its record stays in etcd: %s", uid, exc)


__all__ = ["InjectionKind", "InjectionManager", "injection_query", "resolve_request", "destination_mac",
           "node_ips", "NAMESPACE"]
