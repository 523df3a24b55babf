"""Whole TPACKET_V3 blocks into the flow table (FlowTable.process_block, afpacket read_blocks):
exactly the flows and counters of the per-frame path, on synthetic blocks and on a live veth."""

import random
import struct
import time

from skydive_runtime.flow.afpacket import AFPacketSource, frame_at, pack_block
from skydive_runtime.flow.capture import CaptureRunner, FilteredTable
from skydive_runtime.flow.table import FlowTable
from tests.flow.conftest import udp_send

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def ip4(proto, body, a=b"\x0a\x00\x00\x01", b=b"\x0a\x00\x00\x02", frag=0, ihl=5):
    opts = b"\x01" * (4 * (ihl - 5))
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(opts) + len(body), 1, frag, 64, proto, 0, a, b) + opts + body


def udp(sp, dp, n=18):
    return struct.pack("!HHHH", sp, dp, 8 + n, 0) + b"u" * n


def tcp(sp, dp, flags=0x10, n=6):
    return struct.pack("!HHIIBBHHH", sp, dp, 1, 1, 0x50, flags, 1000, 0, 0) + b"t" * n


def eth(src, dst, payload, et=b"\x08\x00"):
    return dst + src + et + payload


def traffic(seed, n):
    """Mixed frames: established UDP/TCP both ways (the direct path), TCP control segments, ICMP,
    IPv6, IP options, fragments, VXLAN, short frames."""
    rnd = random.Random(seed)
    out = []
    ts = 1700000000 * 10 ** 9
    for i in range(n):
        ts += rnd.randrange(1, 3000000)
        k = rnd.randrange(100)
        sp = 10000 + rnd.randrange(40)
        fwd = rnd.random() < 0.6
        src, dst = (MAC_A, MAC_B) if fwd else (MAC_B, MAC_A)
        a, b = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02") if fwd else (b"\x0a\x00\x00\x02", b"\x0a\x00\x00\x01")
        ports = (sp, 9000) if fwd else (9000, sp)
        if k < 45:
            f = eth(src, dst, ip4(17, udp(*ports, n=rnd.choice((18, 100, 400))), a, b))
        elif k < 75:
            f = eth(src, dst, ip4(6, tcp(*ports, n=rnd.choice((6, 500))), a, b))
        elif k < 80:
            f = eth(src, dst, ip4(6, tcp(*ports, flags=rnd.choice((0x02, 0x12, 0x11, 0x04))), a, b))
        elif k < 84:
            f = eth(src, dst, ip4(1, struct.pack("!BBHHH", 8 if fwd else 0, 0, 0, 7, i) + b"p" * 20, a, b))
        elif k < 88:
            f = eth(src, dst, struct.pack("!IHBB", 0x60000000, 26, 17, 64) + b"\xfd" + b"\0" * 14 + (b"\1" if fwd else b"\2")
                    + b"\xfd" + b"\0" * 14 + (b"\2" if fwd else b"\1") + udp(*ports), b"\x86\xdd")
        elif k < 91:
            f = eth(src, dst, ip4(17, udp(*ports), a, b, ihl=6))
        elif k < 93:
            f = eth(src, dst, ip4(17, udp(*ports), a, b, frag=0x2000))
        elif k < 96:
            inner = eth(MAC_A, MAC_B, ip4(17, udp(5000, 6000), b"\xac\x10\0\1", b"\xac\x10\0\2"))
            f = eth(src, dst, ip4(17, struct.pack("!HHHH", 40000, 4789, 16 + len(inner), 0) + b"\x08\0\0\0\0\0\x2a\0" + inner, a, b))
        else:
            f = eth(src, dst, ip4(17, udp(*ports, n=1), a, b))         # 43 bytes: under the 48 read
        out.append((f, ts, len(f)))
    return out


def run_blocks(table, frames, per_block, vlan_every=0):
    for i in range(0, len(frames), per_block):
        chunk = frames[i:i + per_block]
        vlan = {j: (100 + j, 0x8100) for j in range(len(chunk)) if vlan_every and (i + j) % vlan_every == 0}
        buf, first = pack_block(chunk, vlan=vlan)
        table.process_block(buf, first, len(chunk), frame_at)


def run_frames(table, frames, per_block, vlan_every=0):
    for i in range(0, len(frames), per_block):
        chunk = frames[i:i + per_block]
        vlan = {j: (100 + j, 0x8100) for j in range(len(chunk)) if vlan_every and (i + j) % vlan_every == 0}
        buf, first = pack_block(chunk, vlan=vlan)
        p = first
        for dummy in chunk:
            data, ts, wl = frame_at(buf, p)
            table.process(data, ts, wl)
            p += struct.unpack_from("=I", buf, p)[0]


def flows_of(table, now):
    return sorted((f["TrackingID"], f["LayersPath"], f["Metric"]["ABPackets"], f["Metric"]["ABBytes"],
                   f["Metric"]["BAPackets"], f["Metric"]["BABytes"], f["Start"], f["Last"], f["Metric"].get("RTT", 0),
                   f.get("FinishType"), f.get("ParentUUID", "")) for f in table.get_flows(now))


def test_blocks_give_the_per_frame_flows_exactly():
    for mode in ("L2", "L3"):
        frames = traffic(7, 20000)
        ref, blk = FlowTable(layer_key_mode=mode), FlowTable(layer_key_mode=mode)
        run_frames(ref, frames, 500, vlan_every=97)
        run_blocks(blk, frames, 500, vlan_every=97)
        now = frames[-1][1] // 1000000
        assert flows_of(blk, now) == flows_of(ref, now)
        assert sum(len(d) for d in blk._direct) > 0          # the direct path was used


def test_direct_entries_leave_with_their_flow():
    """Flows expire and their counter slots are reused by new flows: no frame is counted into a
    slot through a stale direct entry."""
    frames = traffic(11, 6000)
    ref, blk = FlowTable(expire_ms=50), FlowTable(expire_ms=50)
    half = len(frames) // 2
    run_frames(ref, frames[:half], 300)
    run_blocks(blk, frames[:half], 300)
    later = frames[half - 1][1] // 1000000 + 1000
    gone = ref.tick(later)
    assert len(gone) > 10 and sorted(map(str, blk.tick(later))) == sorted(map(str, gone))
    assert len(blk.flows) == 0 and not blk._direct_keys and not any(blk._direct)
    # the second half with other addresses first (new flows take the freed slots), then the same
    moved = [(f.replace(b"\x0a\x00\x00", b"\x0a\x00\x09"), ts + 2 * 10 ** 9, wl) for f, ts, wl in frames[half:]]
    run_frames(ref, moved + [(f, ts + 3 * 10 ** 9, wl) for f, ts, wl in frames[half:]], 300)
    run_blocks(blk, moved + [(f, ts + 3 * 10 ** 9, wl) for f, ts, wl in frames[half:]], 300)
    now = frames[-1][1] // 1000000 + 3000
    assert flows_of(blk, now) == flows_of(ref, now)


def test_no_block_path_where_every_frame_must_be_decoded():
    assert FlowTable(raw_packet_limit=3).process_block is None
    assert FlowTable().process_block is not None
    t = FlowTable(extra_tcp_metric=True)          # UDP still direct, TCP never
    frames = [(eth(MAC_A, MAC_B, ip4(6, tcp(1000, 80))), 10 ** 9 * (i + 1), 60) for i in range(5)]
    run_blocks(t, frames, 5)
    assert not t._direct[0] and t.get_flows(9000)[0]["Metric"]["ABPackets"] == 5


def test_live_blocks_match_per_frame_capture(veth_pair):
    """Two afpacket captures of one veth: whole blocks (the default) and per frame (a FilteredTable
    in front hides process_block); the same flows, every datagram counted."""
    got, ref = [], []
    r1 = CaptureRunner(AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b), FlowTable(),
                       on_flows=got.extend, update_ms=200)
    r2 = CaptureRunner(AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b), FilteredTable(FlowTable()),
                       on_flows=ref.extend, update_ms=200)
    r1.start()
    r2.start()
    try:
        veth_pair.exec_a("ping", "-c", "3", "-i", "0.05", "-W", "1", veth_pair.ip_b)
        for port in range(7100, 7110):
            udp_send(veth_pair, 200, dport=port, sport=port + 1000)
        udp_send(veth_pair, 50, dport=41000, sport=7100, from_a=False)
        time.sleep(0.3)
    finally:
        r1.stop()
        r2.stop()
    assert r1.error is None and r2.error is None

    def final(flows):
        # our conversations only: background frames (IPv6 RS/MLD, ARP) may come between the stops
        last = {}
        for f in flows:
            if f.get("Network", {}).get("A", "").startswith(veth_pair.subnet + ".") and f.get("Transport", f.get("ICMP")):
                last[f["UUID"]] = f
        return sorted((f["TrackingID"], f["LayersPath"], f["Metric"]["ABPackets"], f["Metric"]["ABBytes"],
                       f["Metric"]["BAPackets"], f["Metric"]["BABytes"], f["Last"]) for f in last.values())
    mine = final(got)
    assert mine == final(ref)
    assert sum(x[2] + x[4] for x in mine if x[1] == "Ethernet/IPv4/UDP") >= 2050
