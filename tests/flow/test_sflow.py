import secrets
import socket
import struct
import time

import pytest

from skydive_runtime.flow.sflow import decode_datagram, SFlowError, SFlowSource
from skydive_runtime.flow.capture import CaptureRunner
from skydive_runtime.flow.table import FlowTable
from tests.flow.conftest import run, _kill_netns_pids
from tests.flow.frames import icmp4_frame, MAC1, MAC2, IP1, IP2


def _raw_header_record(frame, frame_length=None):
    pad = (4 - len(frame) % 4) % 4
    body = struct.pack("!IIII", 1, frame_length or len(frame) + 4, 4, len(frame)) + frame + b"\x00" * pad
    return struct.pack("!II", 1, len(body)) + body


def _flow_sample(records, input_if, output_if, rate=1, seq=1, drops=0):
    body = struct.pack("!IIIIIIII", seq, (0 << 24) | input_if, rate, 100, drops, input_if, output_if,
                       len(records)) + b"".join(records)
    return struct.pack("!II", 1, len(body)) + body


def _counter_sample(ifindex, in_octets, out_octets):
    generic = struct.pack("!IIQIIQIIIIIIQIIIIII", ifindex, 6, 10**9, 1, 3, in_octets, 10, 0, 0, 0, 0, 0,
                          out_octets, 20, 0, 0, 0, 0, 0)
    rec = struct.pack("!II", 1, len(generic)) + generic
    body = struct.pack("!III", 7, ifindex, 1) + rec
    return struct.pack("!II", 2, len(body)) + body


def _datagram(samples):
    return struct.pack("!II4sIIII", 5, 1, socket.inet_aton("192.0.2.1"), 0, 42, 1000, len(samples)) + b"".join(samples)


def test_decode_flow_and_counter_samples():
    req = icmp4_frame(8, ident=11)
    dg = decode_datagram(_datagram([_flow_sample([_raw_header_record(req)], 3, 4, rate=10),
                                    _counter_sample(3, 1234, 5678)]))
    assert dg.agent == "192.0.2.1" and dg.sequence == 42
    s = dg.flow_samples[0]
    assert (s.input_if, s.output_if, s.sampling_rate) == (3, 4, 10)
    assert s.records[0].header == req and s.records[0].frame_length == len(req) + 4
    c = dg.counter_samples[0]
    kind, rec = c.records[0]
    assert kind == "generic" and c.source_if == 3
    assert (rec["IfIndex"], rec["IfInOctets"], rec["IfOutOctets"], rec["IfOutUcastPkts"]) == (3, 1234, 5678, 20)


@pytest.mark.parametrize("blob,msg", [
    (b"\x00\x00\x00\x04" + b"\x00" * 24, "unsupported sFlow version 4"),
    (struct.pack("!II", 5, 9) + b"\x00" * 24, "agent address type 9"),
    (b"\x00\x00", "truncated"),
])
def test_decode_errors(blob, msg):
    with pytest.raises(SFlowError, match=msg):
        decode_datagram(blob)


def test_truncated_sample_is_an_error():
    dg = _datagram([_flow_sample([_raw_header_record(icmp4_frame(8))], 1, 2)])
    with pytest.raises(SFlowError, match="truncated"):
        decode_datagram(dg[:-10])


def test_collector_feeds_table_over_udp():
    src = SFlowSource("127.0.0.1", 0)
    samples = []
    src.on_sample = samples.append
    got = []
    r = CaptureRunner(src, FlowTable(), on_flows=got.extend, update_ms=100)
    r.start()
    try:
        req = icmp4_frame(8, ident=5)
        rep = icmp4_frame(0, ident=5, src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        host, port = src.address.split(":")
        for i in range(3):
            s.sendto(_datagram([_flow_sample([_raw_header_record(req)], 3, 4, seq=2 * i),
                                _flow_sample([_raw_header_record(rep)], 4, 3, seq=2 * i + 1)]), (host, int(port)))
        s.sendto(b"junk", (host, int(port)))
        s.sendto(_datagram([_counter_sample(3, 100, 200)]), (host, int(port)))
        s.close()
        deadline = time.time() + 5
        while time.time() < deadline and (src.datagrams < 5 or not got):
            time.sleep(0.05)
    finally:
        r.stop()
    last = {}
    for f in got:
        last[f["UUID"]] = f
    assert len(last) == 1
    f = list(last.values())[0]
    assert f["Metric"]["ABPackets"] == 3 and f["Metric"]["BAPackets"] == 3
    assert f["Metric"]["ABBytes"] == 3 * (len(req) + 4)            # frame length from the sample
    assert [(x.input_if, x.output_if) for x in samples[:2]] == [(3, 4), (4, 3)]
    assert src.errors == 1 and "version" in src.last_error
    assert src.counters[3]["generic"]["IfInOctets"] == 100


@pytest.fixture
def ovs_two_namespaces(ovs, ovs_bridges):
    """Two namespaces plugged into a bridge of the private switch (ports in the switch's namespace)."""
    tag = secrets.token_hex(3)
    br = "fl%sbr" % tag
    nss = ["fl%sm" % tag, "fl%sn" % tag]
    ips = ["10.251.%d.1" % (int(tag, 16) % 250), "10.251.%d.2" % (int(tag, 16) % 250)]
    ports = []
    try:
        ovs_bridges.add(br)
        for i, ns in enumerate(nss):
            run("ip", "netns", "add", ns)
            port = "fl%sp%d" % (tag, i)
            ovs.ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ports.append(port)
            ovs.ip("link", "set", port, "up")
            ovs_bridges.vsctl("add-port", br, port)
            run("ip", "-n", ns, "addr", "add", ips[i] + "/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
        yield ovs, br, nss, ips, ports
    finally:
        for port in ports:
            ovs.ip("link", "del", port, check=False)
        for ns in nss:
            _kill_netns_pids(ns)
            run("ip", "netns", "del", ns, check=False)


def test_real_openvswitch_sflow(ovs_two_namespaces):
    ovs, br, nss, ips, ports = ovs_two_namespaces
    src = SFlowSource(ovs.host_ip, 0)    # ovs-vswitchd sends from its namespace, over the uplink
    samples = []
    src.on_sample = samples.append
    got = []
    r = CaptureRunner(src, FlowTable(), on_flows=got.extend, update_ms=200)
    r.start()
    try:
        ovs.vsctl("--", "--id=@s", "create", "sflow", "agent=lo", 'target="%s"' % src.address, "header=128",
                  "sampling=1", "polling=1", "--", "set", "bridge", br, "sflow=@s")
        time.sleep(0.5)
        run("ip", "netns", "exec", nss[0], "ping", "-c", "5", "-i", "0.1", "-W", "2", ips[1])
        deadline = time.time() + 10
        def icmp_flows():
            last = {}
            for f in got:
                if f.get("LayersPath") == "Ethernet/IPv4/ICMPv4":
                    last[f["UUID"]] = f
            return list(last.values())
        while time.time() < deadline:
            fl = icmp_flows()
            if fl and fl[0]["Metric"]["ABPackets"] >= 5 and fl[0]["Metric"]["BAPackets"] >= 5 \
                    and src.counters:
                break
            time.sleep(0.2)
    finally:
        r.stop()
    fl = icmp_flows()
    assert len(fl) == 1, fl
    f = fl[0]
    assert f["Network"]["A"] == ips[0] and f["Network"]["B"] == ips[1]
    assert f["Metric"]["ABPackets"] == 5 and f["Metric"]["BAPackets"] == 5
    # input/output ifIndex of the samples are the OVS ports (veth ifindexes in the switch's namespace)
    idx = [int(ovs.ip("-o", "link", "show", p).stdout.split(":", 1)[0]) for p in ports]
    icmp_samples = [s for s in samples if any(getattr(rec, "header", b"")[12:14] == b"\x08\x00"
                                               and rec.header[23] == 1 for rec in s.records)]
    pairs = {(s.input_if, s.output_if) for s in icmp_samples}
    assert (idx[0], idx[1]) in pairs and (idx[1], idx[0]) in pairs
    assert src.counters, "no counter samples received"
