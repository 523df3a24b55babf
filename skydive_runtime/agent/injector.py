"""Packet injection on the agent (namespace `OnDemandPacketInjection`, spec §2.6, §6).

The analyzer sends `Start` / `Stop` with Obj `{"NodeID": <node id>, "Resource": <request>}`, the
request being the injection resolved for that node (UUID, SrcIP, SrcMAC, SrcPort, DstIP, DstMAC,
DstPort, Type, Count, ICMPID, Interval, Mode, IncrementPayload, Payload, Pcap, TTL). We answer
`StartReply` / `StopReply` with Status 200 (started / stopped), 400 (bad request), 404 (unknown
node, injection not running there) or 500 (the interface cannot be opened); the request
handling, task table and node entries are agent/ondemand.py's.

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

import base64
import binascii
import logging
import random
import socket
import threading

from ..flow import forge
from ..flow.netns import NetnsError, in_netns
from ..flow.pcapfile import PcapError, PcapStreamParser
from .ondemand import OnDemandError, OnDemandHandler, OnDemandTask

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


InjectionError = OnDemandError


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


class _Injection(OnDemandTask):
    """One injection on one node: the socket, the sender thread."""

    def __init__(self, node_id, request, run, plan, ifname, netns):
        OnDemandTask.__init__(self, node_id, request["UUID"], request)
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
            log.exception("injection %s on %s failed", self.uid, self.node_id)
            self.error = str(exc) or type(exc).__name__
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.finished = True
            on_done(self)


class AgentInjections(OnDemandHandler):
    namespace = NAMESPACE
    metadata_key = METADATA_KEY
    what = "injection"

    def __init__(self, agent):
        OnDemandHandler.__init__(self, agent)
        self.refresh_s = max(0.1, agent.config.get_float("agent.injection.stats_update", 3.0))
        self.completed = 0
        self.failed = 0
        self.last_errors = {}            # injection uuid -> last error message

    def task_status(self, task):
        return {"PacketCount": task.sent, "Total": task.plan.total}

    # ---- OnDemandHandler -------------------------------------------------------------------------
    def create(self, node, resource):
        ethernet_header = node.Metadata.get("EncapType") not in RAW_IP_ENCAPS
        request, run = decode_request(resource, ethernet_header)
        loc = self.agent.locate_interface(node.ID)
        if loc is None or not loc.get("Name"):
            raise InjectionError(500, "cannot locate interface %s (%s) on this host"
                                 % (node.Metadata.get("Name"), node.ID))
        plan = PacketPlan(run, ethernet_header)
        return _Injection(node.ID, request, run, plan, loc["Name"], loc.get("NetNsPath") or None)

    async def launch(self, task, node):
        await self.loop.run_in_executor(None, task.open)

    def started(self, task):
        task.thread = threading.Thread(target=task.send_loop, args=(self._done_threadsafe,),
                                       name="inject-%s-%s" % (task.uid[:8], task.ifname), daemon=True)
        task.thread.start()
        log.info("injection %s started on %s (%s): %d %s packet(s), interval %d ms", task.uid, task.ifname,
                 task.node_id, task.plan.total, "pcap" if task.run.get("packets") is not None else task.run["Type"],
                 task.run["Interval"])

    def entry(self, task):
        e = {k: task.request.get(k) for k in REQUEST_FIELDS}
        e.update({"ID": task.uid, "State": "active", "PacketCount": task.sent})
        return e

    async def remove(self, task):
        task.stop_event.set()
        t = task.thread
        if t is not None and t.is_alive():
            await self.loop.run_in_executor(None, t.join, 5.0)
        elif t is None and task.sock is not None:
            task.sock.close()                # opened, never started (stopped meanwhile)

    # ---- sender thread -> loop -----------------------------------------------------------------
    def _done_threadsafe(self, inj):
        try:
            self.loop.call_soon_threadsafe(self._done, inj)
        except RuntimeError:        # loop closed (agent stopping)
            pass

    def _done(self, inj):
        if inj.error:
            self.failed += 1
            self.last_errors[inj.uid] = inj.error
            log.warning("injection %s on %s (%s) ended after %d of %d packet(s): %s", inj.uid, inj.ifname,
                        inj.node_id, inj.sent, inj.plan.total, inj.error)
        elif inj.stop_event.is_set() and inj.sent < inj.plan.total:
            log.info("injection %s on %s interrupted after %d of %d packet(s)", inj.uid, inj.ifname, inj.sent,
                     inj.plan.total)
        else:
            self.completed += 1
            log.info("injection %s on %s done: %d packet(s)", inj.uid, inj.ifname, inj.sent)
        self.finish(inj)

    def refresh(self):
        for inj in list(self.tasks.values()):
            if not inj.finished:
                self.publish(inj)


__all__ = ["AgentInjections", "NAMESPACE", "decode_request", "PacketPlan", "InjectionError"]
