"""Flow integration harness: the stack of tests/fixtures/stack.py (real `skydive analyzer` and
`skydive agent` subprocesses, private SQLite store, the private Open vSwitch), one per test module; namespaces,
veths and bridges per test through NetEnv (removed in `finally`). flow.update is 1 s."""

import ipaddress
import os
import random
import shutil
import socket
import struct

import pytest
import requests

from tests.fixtures.processes import analyzer_config
from tests.fixtures.stack import Stack
from tests.fixtures.topology import Names, run

HAVE_TOOLS = all(shutil.which(t) for t in ("ip", "ping"))


def _port_range(width):
    """A block of free UDP+TCP ports (so that parallel runs do not share agent.flow ranges)."""
    for _ in range(200):
        lo = random.randint(20000, 60000 - width)
        ok = True
        for p in range(lo, lo + width):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                finally:
                    s.close()
                if not ok:
                    break
            if not ok:
                break
        if ok:
            return lo, lo + width - 1
    raise RuntimeError("no free port range")


class FlowStack(Stack):
    """The stack (tests/fixtures/stack.py) with flow.update 1 s; helpers for captures."""

    def __init__(self, workdir, ovsdb, ovs=None):
        cfg = analyzer_config(str(workdir))
        cfg["flow"] = {"update": 1, "expire": 600}
        cfg["analyzer"]["capture"] = {"debounce": 0.1}
        sl, sh = _port_range(4)
        pl, ph = _port_range(4)
        Stack.__init__(self, workdir, {
            "host_id": "flowag-%s" % os.urandom(3).hex(),
            "agent": {"topology": {"probes": ["ovsdb"], "netlink": {"metrics_update": 5}},
                      "capture": {"stats_update": 1},
                      "flow": {"sflow": {"bind_address": "127.0.0.1", "port_min": sl, "port_max": sh},
                               "pcapsocket": {"bind_address": "127.0.0.1", "min_port": pl, "max_port": ph}}},
            "flow": {"update": 1, "expire": 600, "application_ports": {"tcp": {8765: "skytest"}}},
            "ovs": {"ovsdb": ovsdb},
            "logging": {"level": "INFO"},
        }, cfg, ovs=ovs)

    # ---- captures -----------------------------------------------------------------------------
    def create_capture(self, **body):
        return requests.post(self.url + "/api/capture", json=body, timeout=10)

    def capture(self, **body):
        r = self.create_capture(**body)
        assert r.status_code == 201, r.text
        return r.json()["UUID"]

    def delete_capture(self, cid):
        return requests.delete(self.url + "/api/capture/" + cid, timeout=10, headers={"Content-Type": "application/json"})

    def wait_active(self, cid, node_query, count=1, timeout=20):
        """Every node of node_query has this capture active (upstream harness: 15 tries, then 2 s)."""
        q = "%s.Has('Captures.ID', '%s', 'Captures.State', 'active').Count()" % (node_query, cid)
        self.wait_q(q, count, timeout=timeout, message="capture %s active on %s" % (cid, node_query))

@pytest.fixture(scope="module")
def stack(tmp_path_factory, ovs):
    if os.geteuid() != 0 or not HAVE_TOOLS:
        pytest.skip("needs root, iproute2 and ping")
    s = FlowStack(tmp_path_factory.mktemp("flowstack"), ovs.remote)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def ovs_stack(tmp_path_factory, ovs):
    """The agent beside the private switch, in its namespace (Stack): for captures on the switch."""
    if os.geteuid() != 0 or not HAVE_TOOLS:
        pytest.skip("needs root, iproute2 and ping")
    s = FlowStack(tmp_path_factory.mktemp("flowstack-ovs"), ovs.remote, ovs=ovs)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def names():
    return Names("fi")


def subnet():
    """A random /24 for one test: 10.<a>.<b>.0."""
    return "10.%d.%d" % (random.randint(100, 250), random.randint(1, 250))


class Pair:
    """Two namespaces, each with one veth whose root-side peer is a port of a Linux bridge."""

    def __init__(self, net, names, v6=False):
        self.net = net
        self.prefix = subnet()
        self.ns_a, self.ns_b = net.add_netns(names("na")), net.add_netns(names("nb"))
        self.br = names("br")
        net.add_link(self.br, "bridge")
        self.a, self.b = names("a"), names("b")          # inside the namespaces
        self.pa, self.pb = names("pa"), names("pb")      # root side, bridge ports
        self.ip_a, self.ip_b = self.prefix + ".1", self.prefix + ".2"
        # canonical text (no leading zeros in a group), as flows carry it: "fd83:0acd::1" never matches
        self.ip6_a = str(ipaddress.ip_address("fd%02x:%s::1" % (random.randint(0, 255), os.urandom(2).hex())))
        self.ip6_b = self.ip6_a[:-1] + "2"
        for ns, inner, outer, ip, ip6 in ((self.ns_a, self.a, self.pa, self.ip_a, self.ip6_a),
                                          (self.ns_b, self.b, self.pb, self.ip_b, self.ip6_b)):
            net.add_veth(outer, inner, netns_b=ns)
            net.ip("link", "set", outer, "master", self.br)
            net.ip("link", "set", outer, "up")
            net.ip("addr", "add", ip + "/24", "dev", inner, netns=ns)
            if v6:
                net.ip("addr", "add", ip6 + "/64", "dev", inner, "nodad", netns=ns)
            net.ip("link", "set", inner, "up", netns=ns)
            net.ip("link", "set", "lo", "up", netns=ns)
        net.ip("link", "set", self.br, "up")
        # the bridge forwards at once (no STP learning delay on a fresh bridge without STP)
        for ns, other in ((self.ns_a, self.ip_b), (self.ns_b, self.ip_a)):
            run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", other], check=False)


def ping(ns, dst, count, interval=0.2, extra=()):
    p = run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", str(interval), "-W", "2"]
            + list(extra) + [dst], check=False, timeout=60)
    assert "%d received" % count in p.stdout, p.stdout + p.stderr
    return p


def udp_send(ns, dst, port, count, sport=None, payload=b"skydive-udp"):
    code = ("import socket,time\n"
            "s=socket.socket(socket.AF_INET6 if ':' in %r else socket.AF_INET,socket.SOCK_DGRAM)\n"
            "%s\n"
            "for i in range(%d):\n"
            "    s.sendto(%r,(%r,%d)); time.sleep(0.05)\n") % (
        dst, ("s.bind(('', %d))" % sport) if sport else "", count, payload, dst, port)
    run(["ip", "netns", "exec", ns, "python3", "-c", code], timeout=30)


# ---- pcap building (a DNS exchange, ARP, a TCP handshake) --------------------------------------
def _eth(src, dst, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def _ipv4(src, dst, proto, payload):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + payload


def _udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _tcp(sport, dport, flags, seq=1, ack=0):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0)


def _dns(qid, response=False):
    flags = 0x8180 if response else 0x0100
    q = b"\x03www\x06google\x03com\x00\x00\x01\x00\x01"
    body = struct.pack("!HHHHHH", qid, flags, 1, 1 if response else 0, 0, 0) + q
    if response:
        body += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x08\x08\x08\x08"
    return body


def sample_pcap(t0_s):
    """(pcap bytes, expected) : 2 DNS flows (query + answer each), 1 ARP flow, 1 TCP flow."""
    m1, m2 = bytes.fromhex("0200000000a1"), bytes.fromhex("0200000000a2")
    pkts = []
    t = t0_s * 1000000000
    step = 10000000        # 10 ms

    def add(frame):
        nonlocal t
        pkts.append((frame, t))
        t += step
    add(_eth(m1, b"\xff" * 6, 0x0806, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, m1,
                                                   socket.inet_aton("192.168.7.1"), b"\x00" * 6,
                                                   socket.inet_aton("192.168.7.254"))))
    for qid, sport in ((0x1111, 40001), (0x2222, 40002)):
        add(_eth(m1, m2, 0x0800, _ipv4("192.168.7.1", "192.168.7.254", 17, _udp(sport, 53, _dns(qid)))))
        add(_eth(m2, m1, 0x0800, _ipv4("192.168.7.254", "192.168.7.1", 17, _udp(53, sport, _dns(qid, True)))))
    add(_eth(m1, m2, 0x0800, _ipv4("192.168.7.1", "93.184.216.34", 6, _tcp(40100, 80, 0x02, 1))))
    add(_eth(m2, m1, 0x0800, _ipv4("93.184.216.34", "192.168.7.1", 6, _tcp(80, 40100, 0x12, 7, 2))))
    add(_eth(m1, m2, 0x0800, _ipv4("192.168.7.1", "93.184.216.34", 6, _tcp(40100, 80, 0x10, 2, 8))))
    out = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)
    for data, ts in pkts:
        sec, ns = divmod(ts, 1000000000)
        out += struct.pack("<IIII", sec, ns // 1000, len(data), len(data)) + data
    return out, {"flows": 4, "dns": 2, "packets": len(pkts), "end_ms": t // 1000000}


def read_pcap(data):
    """[(ts_us, bytes)] of a little-endian microsecond pcap."""
    magic, = struct.unpack_from("<I", data, 0)
    assert magic == 0xa1b2c3d4, hex(magic)
    off, out = 24, []
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
        out.append((sec * 1000000 + usec, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


__all__ = ["FlowStack", "Pair", "ping", "udp_send", "sample_pcap", "read_pcap", "subnet", "run"]
