import io
import socket
import struct
import time

import pytest

from skydive_runtime.flow.capture import ingest_pcap, CaptureRunner
from skydive_runtime.flow.pcapfile import (PcapReader, PcapWriter, PcapStreamParser, PcapError, pcap_bytes,
                                           read_pcap, PcapFileSource, PcapSocketSource, raw_packets_pcap)
from skydive_runtime.flow.table import FlowTable
from tests.flow.frames import udp4_frame, icmp4_frame, dns_query, eth, arp, MAC1, MAC2, IP1, IP2

T0 = 1454659514_000_000_000


def sample_packets():
    return [
        (eth(MAC1, b"\xff" * 6, 0x0806, arp(1, MAC1, IP1, b"\x00" * 6, IP2)), T0),
        (udp4_frame(sport=40000, dport=53, payload=dns_query()), T0 + 1_000_000),
        (udp4_frame(src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1, sport=53, dport=40000, payload=dns_query()),
         T0 + 3_000_000),
        (icmp4_frame(8, ident=1), T0 + 5_000_000),
        (udp4_frame(sport=40001, dport=53, payload=dns_query()), T0 + 7_000_123),
    ]


def test_roundtrip_file(tmp_path):
    path = tmp_path / "t.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=1)
        for data, ts in sample_packets():
            w.write(data, ts, len(data) + 100)
    r = PcapReader(str(path))
    got = list(r)
    assert r.linktype == 1
    assert [g[0] for g in got] == [p[0] for p in sample_packets()]
    # microsecond resolution on disk
    assert [g[1] for g in got] == [p[1] // 1000 * 1000 for p in sample_packets()]
    assert [g[2] for g in got] == [len(p[0]) + 100 for p in sample_packets()]


def test_big_endian_and_nanosecond_files():
    data = udp4_frame()
    be = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1) + \
        struct.pack(">IIII", 10, 123456789, len(data), len(data)) + data
    got = list(read_pcap(be))
    assert got == [(data, 10_123_456_789, len(data))]


def test_stream_parser_byte_by_byte():
    blob = pcap_bytes(sample_packets())
    p = PcapStreamParser()
    out = []
    for i in range(len(blob)):
        out.extend(p.feed(blob[i:i + 1]))
    p.finish()
    assert [o[0] for o in out] == [s[0] for s in sample_packets()]


def test_bad_pcap_errors():
    with pytest.raises(PcapError, match="bad magic"):
        list(read_pcap(b"\x00" * 64))
    with pytest.raises(PcapError, match="pcapng"):
        list(read_pcap(b"\x0a\x0d\x0d\x0a" + b"\x00" * 60))
    blob = pcap_bytes(sample_packets())
    with pytest.raises(PcapError, match="truncated pcap record"):
        list(read_pcap(blob[:-5]))
    with pytest.raises(PcapError, match="no global header"):
        list(read_pcap(blob[:10]))
    bad = bytearray(blob)
    struct.pack_into("<I", bad, 24 + 8, 10_000_000)
    with pytest.raises(PcapError, match="too large"):
        list(read_pcap(bytes(bad)))


def test_ingest_pcap_into_table_on_packet_time():
    t = FlowTable(node_tid="n")
    flows = ingest_pcap(pcap_bytes(sample_packets()), t)
    assert sorted(f["Application"] for f in flows) == ["ARP", "DNS", "DNS", "ICMPv4"]
    dns = [f for f in flows if f["Application"] == "DNS"]
    by_port = {f["Transport"]["A"]: f for f in dns}
    assert by_port[40000]["Metric"]["ABPackets"] == 1 and by_port[40000]["Metric"]["BAPackets"] == 1
    assert by_port[40000]["Start"] == T0 // 1_000_000 + 1
    assert by_port[40000]["LayersPath"] == "Ethernet/IPv4/UDP/DNS"
    assert len(t) == 0


def test_runner_with_pcap_file_ends_at_eof():
    got = []
    r = CaptureRunner(PcapFileSource(io.BytesIO(pcap_bytes(sample_packets()))), FlowTable(),
                      on_flows=got.extend)
    r.start()
    assert r.wait(10)
    assert r.eof and r.error is None
    assert len(got) == 4
    assert r.stats()["PacketsReceived"] == 5


def test_pcapsocket_ingests_streams():
    src = PcapSocketSource("127.0.0.1", 0)
    got = []
    r = CaptureRunner(src, FlowTable(), on_flows=got.extend, update_ms=100)
    r.start()
    try:
        host, port = src.address.split(":")
        for _ in range(2):                # two successive connections, same conversation
            s = socket.create_connection((host, int(port)))
            blob = pcap_bytes(sample_packets())
            s.sendall(blob[:50])
            time.sleep(0.05)
            s.sendall(blob[50:])
            s.close()
        deadline = time.time() + 5
        while time.time() < deadline and r.stats()["PacketsReceived"] < 10:
            time.sleep(0.05)
        # a garbage connection is dropped with an error, the source keeps running
        s = socket.create_connection((host, int(port)))
        s.sendall(b"garbage" * 10)
        s.close()
        time.sleep(0.3)
    finally:
        r.stop()
    assert r.error is None
    assert src.errors and "bad magic" in src.errors[0]
    final = {}
    for f in got:
        final[f["UUID"]] = f
    assert sum(f["Metric"]["ABPackets"] + f["Metric"]["BAPackets"] for f in final.values()) == 10


def test_raw_packets_of_a_flow_to_pcap():
    t = FlowTable(raw_packet_limit=10)
    pkts = sample_packets()
    for data, ts in pkts:
        t.process(data, ts)
    dns = [f for f in t.get_flows() if f["Application"] == "DNS" and f["Transport"]["A"] == 40000][0]
    blob = raw_packets_pcap(dns["LastRawPackets"])
    r = PcapReader(blob)
    got = list(r)
    assert r.linktype == 1
    assert [g[0] for g in got] == [pkts[1][0], pkts[2][0]]
    assert [g[1] for g in got] == [pkts[1][1] // 1_000_000 * 1_000_000, pkts[2][1] // 1_000_000 * 1_000_000]
    with pytest.raises(PcapError, match="invalid raw packet 3"):
        raw_packets_pcap([{"Index": 3, "Data": "@@@", "Timestamp": 1, "LinkType": 1}])
    assert list(read_pcap(raw_packets_pcap([]))) == []
