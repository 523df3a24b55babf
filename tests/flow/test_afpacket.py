"""Live AF_PACKET captures on a veth pair between two namespaces (real traffic)."""

import threading
import time

import pytest

from skydive_runtime.flow.afpacket import AFPacketSource, CaptureError
from skydive_runtime.flow.bpf import BPFError
from skydive_runtime.flow.table import FlowTable
from tests.flow.conftest import udp_send


def drain(src, table, settle=0.3, rounds=20):
    """Read until no packet arrived for `settle` seconds."""
    idle_since = time.time()
    while time.time() - idle_since < settle:
        if src.read_packets(table.process, 50):
            idle_since = time.time()


def flows_by(table, key):
    out = {}
    for f in table.get_flows():
        out.setdefault(key(f), []).append(f)
    return out


def test_udp_exact_counts_both_directions(veth_pair):
    src = AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="udp")
    src.open()
    try:
        t = FlowTable(node_tid="tid-b")
        udp_send(veth_pair, 57, dport=7001, sport=40001)
        udp_send(veth_pair, 13, dport=40001, sport=7001, from_a=False)
        drain(src, t)
        flows = [f for f in t.get_flows() if f["Transport"]["B"] in (7001, 40001)]
        assert len(flows) == 1, flows
        f = flows[0]
        assert f["Network"]["A"] == veth_pair.ip_a and f["Network"]["B"] == veth_pair.ip_b
        assert f["Link"]["A"] == veth_pair.mac(veth_pair.ns_a, veth_pair.dev_a)
        assert (f["Transport"]["A"], f["Transport"]["B"]) == (40001, 7001)
        assert f["Metric"]["ABPackets"] == 57 and f["Metric"]["BAPackets"] == 13
        # 18-byte payload: 14 + 20 + 8 + 18 = 60-byte frames
        assert f["Metric"]["ABBytes"] == 57 * 60 and f["Metric"]["BABytes"] == 13 * 60
        st = src.stats()
        assert st["PacketsReceived"] >= 70 and st["PacketsDropped"] == 0
    finally:
        src.close()


def test_ping_flow_rtt_and_icmp_id(veth_pair):
    src = AFPacketSource(veth_pair.dev_a, netns=veth_pair.ns_a, bpf_filter="icmp")
    src.open()
    try:
        t = FlowTable()
        veth_pair.exec_a("ping", "-c", "5", "-i", "0.05", "-W", "1", veth_pair.ip_b)
        drain(src, t)
        flows = t.get_flows()
        assert len(flows) == 1
        f = flows[0]
        assert f["LayersPath"] == "Ethernet/IPv4/ICMPv4"
        assert f["ICMP"]["Type"] == "ECHO" and f["ICMP"]["ID"] > 0
        assert f["Metric"]["ABPackets"] == 5 and f["Metric"]["BAPackets"] == 5
        assert f["Metric"]["RTT"] > 0
        assert f["Network"]["A"] == veth_pair.ip_a
    finally:
        src.close()


def test_ipv6_ping(veth_pair):
    src = AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="icmp6 and ip6[40] == 128 or ip6[40] == 129")
    src.open()
    try:
        t = FlowTable()
        veth_pair.exec_a("ping", "-6", "-c", "3", "-i", "0.05", "-W", "1", veth_pair.ip6_b)
        drain(src, t)
        flows = t.get_flows()
        assert len(flows) == 1
        f = flows[0]
        assert f["LayersPath"] == "Ethernet/IPv6/ICMPv6/ICMPv6Echo"
        assert f["Network"]["Protocol"] == "IPV6" and f["Network"]["A"] == veth_pair.ip6_a
        assert f["Metric"]["ABPackets"] == 3 and f["Metric"]["BAPackets"] == 3
    finally:
        src.close()


def test_bpf_filter_in_kernel(veth_pair):
    src = AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="udp dst port 7001")
    src.open()
    try:
        t = FlowTable()
        udp_send(veth_pair, 200, dport=7000)
        udp_send(veth_pair, 21, dport=7001)
        veth_pair.exec_a("ping", "-c", "2", "-i", "0.05", "-W", "1", veth_pair.ip_b)
        drain(src, t)
        flows = t.get_flows()
        assert [f["Transport"]["B"] for f in flows] == [7001]
        assert flows[0]["Metric"]["ABPackets"] == 21
        assert src.stats()["PacketsReceived"] == 21
    finally:
        src.close()


def test_header_size_truncates_but_counts_wire_bytes(veth_pair):
    src = AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="udp", header_size=64)
    src.open()
    seen = []
    try:
        t = FlowTable()

        def handler(data, ts, wl):
            seen.append((len(data), wl))
            t.process(data, ts, wl)
        udp_send(veth_pair, 4, dport=7005, size=1000)
        idle = time.time()
        while time.time() - idle < 0.3:
            if src.read_packets(handler, 50):
                idle = time.time()
        assert seen and all(c == 64 and w == 1042 for c, w in seen)
        assert t.get_flows()[0]["Metric"]["ABBytes"] == 4 * 1042
    finally:
        src.close()


def test_invalid_bpf_gives_libpcap_message():
    with pytest.raises(BPFError, match="syntax error"):
        AFPacketSource("lo", bpf_filter="udp and and")


def test_invalid_header_size():
    with pytest.raises(CaptureError, match="header size"):
        AFPacketSource("lo", header_size=10)


def test_missing_interface_and_netns(veth_pair):
    src = AFPacketSource("nosuchdev0", netns=veth_pair.ns_b)
    with pytest.raises(CaptureError, match="nosuchdev0"):
        src.open()
    src = AFPacketSource("eth0", netns="fl-no-such-netns")
    with pytest.raises(OSError, match="fl-no-such-netns"):
        src.open()


def test_setns_only_affects_capture_thread(veth_pair):
    """The socket opened in another namespace captures there; the caller stays in its own."""
    import os
    before = os.readlink("/proc/thread-self/ns/net")
    errors = []

    def worker():
        try:
            src = AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="udp")
            src.open()
            src.close()
        except Exception as e:
            errors.append(e)
    th = threading.Thread(target=worker)
    th.start()
    th.join()
    assert not errors
    assert os.readlink("/proc/thread-self/ns/net") == before
