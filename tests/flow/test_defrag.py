"""IPDefrag: a fragmented datagram is accounted once to its flow, whatever the fragments' order;
incomplete or overlapping datagrams are FragmentErrors; without the option fragments make their
own flow (upstream's IPv4/Fragment)."""

import socket
import struct

from skydive_runtime.flow import defrag
from skydive_runtime.flow.table import FlowTable

M1, M2 = bytes.fromhex("0200000000a1"), bytes.fromhex("0200000000a2")


def _fragments(src, dst, ident, payload, size=1480):
    """Ethernet frames of the IPv4 fragments of an ICMP packet `payload` (ICMP header included)."""
    frames = []
    for off in range(0, len(payload), size):
        chunk = payload[off:off + size]
        mf = 0x2000 if off + size < len(payload) else 0
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), ident, mf | (off // 8), 64, 1, 0,
                         socket.inet_aton(src), socket.inet_aton(dst)) + chunk
        smac, dmac = (M1, M2) if src.endswith(".1") else (M2, M1)
        frames.append(dmac + smac + b"\x08\x00" + ip)
    return frames


def _echo(kind, ident, seq, size):
    return struct.pack("!BBHHH", kind, 0, 0, ident, seq) + b"x" * (size - 8)


def _run(ip_defrag, order=lambda fr: fr):
    t = FlowTable(ip_defrag=ip_defrag)
    ts = 1700000000 * 10 ** 9
    for seq in range(3):
        for frames in (_fragments("10.0.0.1", "10.0.0.2", 100 + seq, _echo(8, 7, seq, 4000)),
                       _fragments("10.0.0.2", "10.0.0.1", 200 + seq, _echo(0, 7, seq, 4000))):
            for fr in order(frames):
                t.process(fr, ts)
                ts += 1000000
    return t, t.get_flows()


def test_fragments_accounted_to_their_flow_in_any_order():
    for order in (lambda fr: fr, lambda fr: fr[::-1], lambda fr: fr[1:] + fr[:1]):
        t, flows = _run(True, order)
        assert len(flows) == 1, [f["LayersPath"] for f in flows]
        f = flows[0]
        assert f["LayersPath"] == "Ethernet/IPv4/ICMPv4" and f["ICMP"]["Type"] == "ECHO"
        frame_bytes = 3 * 14 + 4000 + 3 * 20           # three fragments of 1480 / 1480 / 1040 bytes
        assert (f["Metric"]["ABPackets"], f["Metric"]["BAPackets"]) == (3, 3)
        assert (f["Metric"]["ABBytes"], f["Metric"]["BABytes"]) == (3 * frame_bytes, 3 * frame_bytes)
        assert f["IPMetric"] == {"Fragments": 18, "FragmentErrors": 0}
        assert f["Metric"]["RTT"] > 0 and not t._defrag.pending


def test_without_ip_defrag_fragments_are_their_own_flow():
    dummy, flows = _run(False)
    assert sorted(f["LayersPath"] for f in flows) == ["Ethernet/IPv4/Fragment", "Ethernet/IPv4/ICMPv4"]
    assert all("IPMetric" not in f for f in flows)


def test_incomplete_and_duplicate_datagrams_are_errors():
    t = FlowTable(ip_defrag=True)
    ts = 1700000000 * 10 ** 9
    whole = _fragments("10.0.0.1", "10.0.0.2", 1, _echo(8, 9, 1, 3000))
    for fr in whole:
        t.process(fr, ts)
    dup = _fragments("10.0.0.1", "10.0.0.2", 2, _echo(8, 9, 2, 3000))
    for fr in (dup[0], dup[0]):                     # the same fragment twice: dropped, an error
        t.process(fr, ts)
    lost = _fragments("10.0.0.1", "10.0.0.2", 3, _echo(8, 9, 3, 3000))
    t.process(lost[0], ts)                          # the rest never comes
    t.tick(ts // 1000000 + defrag.TIMEOUT_MS)
    (f,) = t.get_flows()
    assert f["Metric"]["ABPackets"] == 1 and f["IPMetric"] == {"Fragments": 3, "FragmentErrors": 2}
    assert not t._defrag.pending
