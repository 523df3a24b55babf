"""Packet injection on the agent (namespace `OnDemandPacketInjection`, spec §2.6, §6).

The analyzer sends `Start` / `Stop` with Obj `{"NodeID": <node id>, "Resource": <request>}`, the
request being the injection resolved for that node (UUID, SrcIP, SrcMAC, SrcPort, DstIP, DstMAC,
DstPort, Type, Count, ICMPID, Interval, Mode, IncrementPayload, Payload, Pcap, TTL). We answer
`StartReply` / `StopReply` with Status 200 (started / stopped), 400 (bad request), 404 (unknown
node, injection not running there) or 500 (the interface cannot be opened).

    injections = AgentInjections(agent)
    injections.start()          # registers the handler, PacketCount refresh task, graph listener
    await injections.stop()     # stops every running injection

One injection on one node = one `_Injection`: an AF_PACKET raw socket opened inside the
interface's namespace (agent.locate_interface) from a worker thread, then a sender thread that
forges (skydive_runtime.flow.forge) and sends `Count` packets `Interval` ms apart, or replays the
packets of `Pcap`. The loop only publishes the node's
`PacketInjections: [{<request>, "ID", "State": "active", "PacketCount"}]` (refreshed every
`agent.injection.stats_update` s, 3 by default) and removes the entry when the sender ends.
"""

import asyncio
import base64
import binascii
import logging
import random
import socket
import threading

from ..flow import forge
from ..flow.netns import NetnsError, in_netns
from ..flow.pcapfile import PcapError, PcapStreamParser
from ..graph import GraphListener

log = logging.getLogger(__name__)

NAMESPACE = "OnDemandPacketInjection"
METADATA_KEY = "PacketInjections"
DEFAULT_TTL = 64
MAX_IP_PAYLOAD = 65507
RAW_IP_ENCAPS = forge.RAW_IP_ENCAPS
LINKTYPE_ETHERNET = 1
LINKTYPES_RAW_IP = (101, 228, 229)
REQUEST_FIELDS = ("UUID", "SrcIP", "SrcMAC", "SrcPort", "DstIP", "DstMAC", "DstPort", "Type", "Count",
                  "ICMPID", "Interval", "Mode", "IncrementPayload", "Payload", "Pcap", "TTL")


class InjectionError(Exception):
    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status


# ---- request decoding (never trust the wire) ------------------------------------------------------

def _int(req, key, lo, hi):
    v = req.get(key, 0)
    if v is None:
        v = 0
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InjectionError(400, "%s: expected an integer in [%d, %d], got %r" % (key, lo, hi, v))
    return v


def _str(req, key):
    v = req.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise InjectionError(400, "%s: expected a string, got %r" % (key, v))
    return v


def decode_request(req, ethernet_header=True):
    """The request as we run it: typed, defaults applied (Count 0 -> 1, TTL 0 -> 64, Mode "" ->
    unique), pcap decoded. InjectionError(400) on anything malformed."""
    if not isinstance(req, dict):
        raise InjectionError(400, "Resource: expected an object")
    out = {k: req.get(k) for k in REQUEST_FIELDS}
    out["UUID"] = _str(req, "UUID")
    if not out["UUID"]:
        raise InjectionError(400, "UUID: an injection id is required")
    out["Type"] = _str(req, "Type") or "icmp4"
    if out["Type"] not in forge.TYPES:
        raise InjectionError(400, "given type is not supported")
    out["Mode"] = _str(req, "Mode") or "unique"
    if out["Mode"] not in ("unique", "random"):
        raise InjectionError(400, "given mode is not supported")
    for k in ("SrcIP", "DstIP", "SrcMAC", "DstMAC", "Payload"):
        out[k] = _str(req, k)
    for k in ("SrcPort", "DstPort", "ICMPID"):
        out[k] = _int(req, k, 0, 0xFFFF)
    out["TTL"] = _int(req, "TTL", 0, 255)
    out["Count"] = _int(req, "Count", 0, 2 ** 64 - 1)
    out["Interval"] = _int(req, "Interval", 0, 2 ** 64 - 1)
    out["IncrementPayload"] = _int(req, "IncrementPayload", -2 ** 63, 2 ** 63 - 1)
    run = dict(out)
    run["Count"] = out["Count"] or 1
    run["TTL"] = out["TTL"] or DEFAULT_TTL
    pcap = req.get("Pcap")
    if pcap:
        if not isinstance(pcap, str):
            raise InjectionError(400, "Pcap: expected base64 text")
        try:
            raw = base64.b64decode(pcap, validate=True)
        except (binascii.Error, ValueError):
            raise InjectionError(400, "Pcap: invalid base64") from None
        parser = PcapStreamParser()
        try:
            packets = [p[0] for p in parser.feed(raw)]
            parser.finish()
        except PcapError as exc:
            raise InjectionError(400, "Pcap: invalid pcap: %s" % exc) from None
        if not parser.header_seen:
            raise InjectionError(400, "Pcap: invalid pcap: truncated header")
        run["packets"] = packets
        run["linktype"] = parser.linktype
        return out, run
    out["Pcap"] = None
    version = forge.type_version(run["Type"])
    try:
        forge.parse_ip(run["SrcIP"], version)
        forge.parse_ip(run["DstIP"], version)
        if ethernet_header:
            forge.parse_mac(run["SrcMAC"])
            forge.parse_mac(run["DstMAC"])
    except forge.ForgeError as exc:
        raise InjectionError(400, str(exc)) from None
    return out, run


# ---- packets ---------------------------------------------------------------------------------------

class PacketPlan:
    """The packets of one injection, built one at a time (in the sender thread)."""

    def __init__(self, run, ethernet_header, rng=None):
        self.run = run
        self.ethernet_header = ethernet_header
        self.rng = rng or random.SystemRandom()
        self.pcap = run.get("packets")
        if self.pcap is not None:
            self.total = len(self.pcap)
            self._check_linktype()
            return
        self.total = run["Count"]
        self.payload = run["Payload"].encode() if run["Payload"] else \
            forge.random_letters(forge.PING_PAYLOAD_LEN, self.rng)
        self.icmp_id = run["ICMPID"]
        self.sport = run["SrcPort"]
        self.random = run["Mode"] == "random"
        self.ip_ident = self.rng.randrange(0x10000)

    def _check_linktype(self):
        lt = self.run.get("linktype")
        if lt == LINKTYPE_ETHERNET and self.ethernet_header:
            return
        if lt in LINKTYPES_RAW_IP:
            return
        if lt == LINKTYPE_ETHERNET:
            return              # Ethernet on a raw-IP interface: the header is stripped
        raise InjectionError(400, "Pcap: link type %s cannot be replayed on this interface" % lt)

    def packet(self, index):
        """(bytes, sll protocol) of the index-th packet."""
        if self.pcap is not None:
            return self._pcap_packet(self.pcap[index])
        r = self.run
        if self.random:
            icmp_id, sport = self.rng.randrange(1, 0x10000), self.rng.randrange(1024, 65535)
        else:
            icmp_id, sport = self.icmp_id, self.sport
        payload = self.payload
        if len(payload) > MAX_IP_PAYLOAD:
            raise InjectionError(400, "payload too large (%d bytes) after IncrementPayload" % len(payload))
        frame = forge.forge_packet(r["Type"], r["SrcIP"], r["DstIP"], src_mac=r["SrcMAC"] or None,
                                   dst_mac=r["DstMAC"] or None, ethernet_header=self.ethernet_header,
                                   ttl=r["TTL"], icmp_id=icmp_id, seq=index + 1, sport=sport,
                                   dport=r["DstPort"], tcp_seq=self.rng.randrange(1 << 32), payload=payload,
                                   ip_ident=(self.ip_ident + index) & 0xFFFF)
        self.payload = forge.next_payload(payload, r["IncrementPayload"], self.rng)
        return frame, forge.ethertype_of(frame, self.ethernet_header)

    def _pcap_packet(self, data):
        lt = self.run.get("linktype")
        if lt == LINKTYPE_ETHERNET:
            if self.ethernet_header:
                return data, forge.ethertype_of(data, True)
            data = data[14:]                                  # raw-IP interface: strip Ethernet
            return data, forge.ethertype_of(data, False)
        if self.ethernet_header:                              # raw IP on Ethernet: add a header
            ethertype = forge.ethertype_of(data, False)
            src = self.run["SrcMAC"] or "00:00:00:00:00:00"
            dst = self.run["DstMAC"] or "ff:ff:ff:ff:ff:ff"
            return forge.ethernet(dst, src, ethertype, data), ethertype
        return data, forge.ethertype_of(data, False)


class _Injection:
    """One injection on one node: the socket, the sender thread, the node entry."""

    def __init__(self, node_id, request, run, plan, ifname, netns):
        self.node_id = node_id
        self.uuid = request["UUID"]
        self.request = request
        self.run = run
        self.plan = plan
        self.ifname = ifname
        self.netns = netns
        self.sock = None
        self.thread = None
        self.stop_event = threading.Event()
        self.sent = 0
        self.error = None
        self.finished = False
        self.published = None

    def entry(self):
        e = {k: self.request.get(k) for k in REQUEST_FIELDS}
        e.update({"ID": self.uuid, "State": "active", "PacketCount": self.sent})
        return e

    def open(self):
        """In a worker thread: the AF_PACKET socket inside the interface's namespace."""
        try:
            with in_netns(self.netns):
                socket.if_nametoindex(self.ifname)          # the interface exists there
                self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except NetnsError as exc:
            raise InjectionError(500, str(exc)) from None
        except OSError as exc:
            raise InjectionError(500, "cannot open interface %s: %s" % (self.ifname, exc.strerror or exc)) from None

    def send_loop(self, on_done):
        total = self.plan.total
        interval = min(self.run["Interval"] / 1000.0, threading.TIMEOUT_MAX)
        try:
            for i in range(total):
                if self.stop_event.is_set():
                    break
                data, proto = self.plan.packet(i)
                self.sock.sendto(data, (self.ifname, proto))
                self.sent += 1
                if i + 1 < total and interval > 0 and self.stop_event.wait(interval):
                    break
        except InjectionError as exc:
            self.error = str(exc)
        except OSError as exc:
            self.error = "sending on %s failed: %s" % (self.ifname, exc.strerror or exc)
        except Exception as exc:          # a bug must not kill the agent: report it
            log.exception("injection %s on %s failed", self.uuid, self.node_id)
            self.error = str(exc) or type(exc).__name__
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.finished = True
            on_done(self)


class AgentInjections(GraphListener):
    def __init__(self, agent):
        self.agent = agent
        self.graph = agent.graph
        self.stats_s = max(0.1, agent.config.get_float("agent.injection.stats_update", 3.0))
        self.running_injections = {}     # (node id, injection uuid) -> _Injection
        self.loop = None
        self.running = False
        self._task = None
        self.completed = 0
        self.failed = 0
        self.last_errors = {}            # injection uuid -> last error message

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self):
        self.loop = asyncio.get_event_loop()
        self.running = True
        if self.agent.forwarder is not None:
            self.agent.forwarder.register_handler(NAMESPACE, self.handle)
        self.graph.add_listener(self)
        self._task = asyncio.ensure_future(self._refresh_loop())

    async def stop(self):
        self.running = False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.graph.remove_listener(self)
        for key in list(self.running_injections):
            inj = self.running_injections.pop(key)
            await self._halt(inj)
            self._remove_entry(inj.node_id, inj.uuid)

    def status(self):
        out = {}
        for (nid, uid), inj in self.running_injections.items():
            out.setdefault(uid, {})[nid] = {"PacketCount": inj.sent, "Total": inj.plan.total}
        return out

    # ---- requests ----------------------------------------------------------------------------
    async def handle(self, msg):
        mtype = msg.get("Type")
        obj = msg.get("Obj")
        reply_type = {"Start": "StartReply", "Stop": "StopReply"}.get(mtype)
        if reply_type is None:
            return None
        status, message = 200, ""
        try:
            if not isinstance(obj, dict) or not isinstance(obj.get("NodeID"), str) \
                    or not isinstance(obj.get("Resource"), dict):
                raise InjectionError(400, "expected {\"NodeID\": <id>, \"Resource\": <injection request>}")
            if mtype == "Start":
                await self.start_injection(obj["NodeID"], obj["Resource"])
            else:
                uid = obj["Resource"].get("UUID")
                if not isinstance(uid, str) or not uid:
                    raise InjectionError(400, "UUID: an injection id is required")
                await self.stop_injection(obj["NodeID"], uid)
        except InjectionError as exc:
            status, message = exc.status, str(exc)
        except Exception as exc:            # never let a request crash the agent
            log.exception("injection %s failed", mtype)
            status, message = 500, str(exc) or type(exc).__name__
        if status != 200:
            (log.info if status == 404 else log.warning)(
                "injection %s on %s: %d %s", mtype, obj.get("NodeID") if isinstance(obj, dict) else "?", status, message)
        return {"Namespace": NAMESPACE, "Type": reply_type, "UUID": msg.get("UUID", ""), "Status": status,
                "Obj": message or None}

    async def start_injection(self, node_id, resource):
        node = self.graph.get_node(node_id)
        if node is None:
            raise InjectionError(404, "node %s not found" % node_id)
        ethernet_header = node.Metadata.get("EncapType") not in RAW_IP_ENCAPS
        request, run = decode_request(resource, ethernet_header)
        key = (node_id, request["UUID"])
        if key in self.running_injections:
            return                                            # idempotent Start
        loc = self.agent.locate_interface(node_id)
        if loc is None or not loc.get("Name"):
            raise InjectionError(500, "cannot locate interface %s (%s) on this host"
                                 % (node.Metadata.get("Name"), node_id))
        plan = PacketPlan(run, ethernet_header)
        inj = _Injection(node_id, request, run, plan, loc["Name"], loc.get("NetNsPath") or None)
        self.running_injections[key] = inj
        try:
            await self.loop.run_in_executor(None, inj.open)
        except BaseException:
            self.running_injections.pop(key, None)
            raise
        if not self.running or self.running_injections.get(key) is not inj:    # stopped meanwhile
            inj.sock.close()
            return
        self._publish(inj)
        inj.thread = threading.Thread(target=inj.send_loop, args=(self._done_threadsafe,),
                                      name="inject-%s-%s" % (inj.uuid[:8], inj.ifname), daemon=True)
        inj.thread.start()
        log.info("injection %s started on %s (%s): %d %s packet(s), interval %d ms", inj.uuid, inj.ifname,
                 node_id, plan.total, "pcap" if run.get("packets") is not None else run["Type"], run["Interval"])

    async def stop_injection(self, node_id, uid):
        inj = self.running_injections.pop((node_id, uid), None)
        if inj is None:
            if self._remove_entry(node_id, uid):
                return
            raise InjectionError(404, "injection %s is not running on node %s" % (uid, node_id))
        await self._halt(inj)
        self._remove_entry(node_id, uid)
        log.info("injection %s stopped on %s after %d packet(s)", uid, node_id, inj.sent)

    async def _halt(self, inj):
        inj.stop_event.set()
        t = inj.thread
        if t is not None and t.is_alive():
            await self.loop.run_in_executor(None, t.join, 5.0)

    # ---- sender thread -> loop -----------------------------------------------------------------
    def _done_threadsafe(self, inj):
        try:
            self.loop.call_soon_threadsafe(self._done, inj)
        except RuntimeError:        # loop closed (agent stopping)
            pass

    def _done(self, inj):
        key = (inj.node_id, inj.uuid)
        if inj.error:
            self.failed += 1
            self.last_errors[inj.uuid] = inj.error
            log.warning("injection %s on %s (%s) ended after %d of %d packet(s): %s", inj.uuid, inj.ifname,
                        inj.node_id, inj.sent, inj.plan.total, inj.error)
        elif inj.stop_event.is_set() and inj.sent < inj.plan.total:
            log.info("injection %s on %s interrupted after %d of %d packet(s)", inj.uuid, inj.ifname, inj.sent,
                     inj.plan.total)
        else:
            self.completed += 1
            log.info("injection %s on %s done: %d packet(s)", inj.uuid, inj.ifname, inj.sent)
        if self.running_injections.get(key) is inj:
            del self.running_injections[key]
            self._remove_entry(inj.node_id, inj.uuid)

    async def _refresh_loop(self):
        while self.running:
            await asyncio.sleep(self.stats_s)
            for inj in list(self.running_injections.values()):
                if not inj.finished:
                    self._publish(inj)

    # ---- node PacketInjections -----------------------------------------------------------------
    def _publish(self, inj):
        node = self.graph.get_node(inj.node_id)
        if node is None:
            return
        entry = inj.entry()
        if entry == inj.published:
            return
        cur = node.Metadata.get(METADATA_KEY)
        items = [dict(x) for x in cur if isinstance(x, dict)] if isinstance(cur, list) else []
        for i, x in enumerate(items):
            if x.get("ID") == inj.uuid:
                items[i] = entry
                break
        else:
            items.append(entry)
        self.graph.update_metadata(node, {METADATA_KEY: items})
        inj.published = entry

    def _remove_entry(self, node_id, uid):
        node = self.graph.get_node(node_id)
        if node is None:
            return False
        cur = node.Metadata.get(METADATA_KEY)
        if not isinstance(cur, list):
            return False
        kept = [dict(x) for x in cur if not (isinstance(x, dict) and x.get("ID") == uid)]
        if len(kept) == len(cur):
            return False
        if kept:
            self.graph.update_metadata(node, {METADATA_KEY: kept})
        else:
            self.graph.del_metadata(node, METADATA_KEY)
        return True

    # ---- graph listener: the source node disappears ----------------------------------------------
    def on_node_deleted(self, node):
        for key in [k for k in self.running_injections if k[0] == node.ID]:
            inj = self.running_injections.pop(key)
            inj.stop_event.set()
            log.info("injection %s: node %s (%s) deleted, injection stopped after %d packet(s)", inj.uuid,
                     node.Metadata.get("Name"), node.ID, inj.sent)


__all__ = ["AgentInjections", "NAMESPACE", "decode_request", "PacketPlan", "InjectionError"]
