"""The ebpf probe: in-kernel flow aggregation on a veth pair between two namespaces (real traffic).

The reference for every flow is the afpacket probe capturing the same interface at the same time.
"""

import ctypes
import os
import socket
import struct
import sys
import threading
import time

import pytest

from skydive_runtime.flow import bpfasm as A
from skydive_runtime.flow.afpacket import AFPacketSource, CaptureError
from skydive_runtime.flow import tcx
from skydive_runtime.flow.capture import CaptureRunner
from skydive_runtime.flow.ebpf import (BPF_MAP_LOOKUP_ELEM, EBPFError, EBPFFlowTable, EBPFSource, KEY4_SIZE, _bpf,
                                       _elem_attr, load_program, merge_percpu, prog_test_run, widen_key4)
from skydive_runtime.flow.netns import in_netns
from skydive_runtime.flow.table import FlowTable
from tests.flow.conftest import udp_send

TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('', int(sys.argv[1]))); s.listen(1)
print('ready', flush=True)
c, _ = s.accept()
n = 0
while n < 300:
    d = c.recv(4096)
    if not d: break
    n += len(d)
c.sendall(b'r' * 300)
c.close()
"""

TCP_CLIENT = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
for i in range(3):
    c.sendall(b'q' * 100); time.sleep(0.05)
n = 0
while n < 300:
    d = c.recv(4096)
    if not d: break
    n += len(d)
c.close()
"""


def tcp_conversation(pair, port):
    import subprocess
    srv = subprocess.Popen(["ip", "netns", "exec", pair.ns_b, "/usr/bin/python3", "-c", TCP_SERVER, str(port)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        pair.exec_a("/usr/bin/python3", "-c", TCP_CLIENT, pair.ip_b, str(port))
        srv.wait(10)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


ATTACHES = ("tcx", "socket")


def ebpf_runner(pair, flows, attach="auto", **table_kw):
    src = EBPFSource(pair.dev_b, netns=pair.ns_b, attach=attach)
    table = EBPFFlowTable(src, FlowTable(node_tid="tid-ebpf", **table_kw))
    return CaptureRunner(src, table, on_flows=lambda fl: flows.extend(fl), update_ms=200)


def afpacket_runner(pair, flows, **table_kw):
    src = AFPacketSource(pair.dev_b, netns=pair.ns_b)
    return CaptureRunner(src, FlowTable(node_tid="tid-afp", **table_kw),
                         on_flows=lambda fl: flows.extend(fl), update_ms=200)


def final_by_tracking(flows):
    """Last dict per UUID, then keyed by TrackingID (one capture: one flow per TrackingID)."""
    last = {}
    for f in flows:
        last[f["UUID"]] = f
    out = {}
    for f in last.values():
        assert f["TrackingID"] not in out, "two flows with one TrackingID in one capture"
        out[f["TrackingID"]] = f
    return out


def _compare(veth_pair, layer_key_mode, attach="auto"):
    ours, ref = [], []
    r_ebpf = ebpf_runner(veth_pair, ours, attach=attach, layer_key_mode=layer_key_mode, extra_tcp_metric=True)
    r_afp = afpacket_runner(veth_pair, ref, layer_key_mode=layer_key_mode)
    r_afp.start()
    r_ebpf.start()
    try:
        veth_pair.exec_a("ping", "-c", "5", "-i", "0.05", "-W", "1", veth_pair.ip_b)
        udp_send(veth_pair, 7, dport=7011, sport=40011)                 # nobody listens: port unreachables
        udp_send(veth_pair, 3, dport=40011, sport=7011, from_a=False)
        veth_pair.exec_a("ping", "-6", "-c", "3", "-i", "0.05", "-W", "1", veth_pair.ip6_b)
        tcp_conversation(veth_pair, 7012)
        time.sleep(0.3)
    finally:
        r_ebpf.stop()
        r_afp.stop()
    assert r_ebpf.error is None and r_afp.error is None
    assert attach == "auto" or r_ebpf.source.attach_fallback is None
    mine = final_by_tracking(ours)
    theirs = final_by_tracking(ref)
    subnet = veth_pair.subnet + "."
    v6 = veth_pair.ip6_a.rsplit(":", 1)[0]
    ours_ip = {t: f for t, f in mine.items()
               if f.get("Network", {}).get("A", "").startswith((subnet, v6))}
    ref_ip = {t: f for t, f in theirs.items()
              if f.get("Network", {}).get("A", "").startswith((subnet, v6))}
    assert set(ours_ip) == set(ref_ip), (sorted(f["LayersPath"] for f in ours_ip.values()),
                                         sorted(f["LayersPath"] for f in ref_ip.values()))
    for tid, f in ours_ip.items():
        g = ref_ip[tid]
        for k in ("L3TrackingID", "LayersPath", "Application", "Link", "Network", "Transport", "ICMP",
                  "ParentUUID", "FinishType"):
            assert f.get(k) == g.get(k), (k, f, g)
        for k in ("ABPackets", "ABBytes", "BAPackets", "BABytes"):
            assert f["Metric"][k] == g["Metric"][k], (k, f, g)
        assert abs(f["Start"] - g["Start"]) < 50 and abs(f["Last"] - g["Last"]) < 50
        assert f["NodeTID"] == "tid-ebpf" and f["UUID"] != g["UUID"]
        assert set(f) - {"TCPMetric"} == set(g), (f, g)
    return ours_ip


@pytest.mark.parametrize("attach", ATTACHES)
def test_same_flows_as_afpacket_l2(veth_pair, attach):
    """Known packet counts in both directions, identical to afpacket's, on either attach point."""
    flows = _compare(veth_pair, "L2", attach)
    by_path = {}
    for f in flows.values():
        by_path.setdefault(f["LayersPath"], []).append(f)
    (echo,) = [f for f in by_path["Ethernet/IPv4/ICMPv4"] if f["ICMP"]["Type"] == "ECHO"]
    m = echo["Metric"]
    assert (m["ABPackets"], m["ABBytes"], m["BAPackets"], m["BABytes"]) == (5, 490, 5, 490)
    assert m["RTT"] > 0 and echo["Network"]["A"] == veth_pair.ip_a
    (udp,) = [f for f in by_path["Ethernet/IPv4/UDP"] if f["Transport"]["B"] == 7011]
    m = udp["Metric"]
    assert (udp["Transport"]["A"], m["ABPackets"], m["ABBytes"], m["BAPackets"], m["BABytes"]) == \
        (40011, 7, 7 * 60, 3, 3 * 60)
    (echo6,) = by_path["Ethernet/IPv6/ICMPv6/ICMPv6Echo"]
    assert (echo6["Metric"]["ABPackets"], echo6["Metric"]["BAPackets"]) == (3, 3)
    (tcp,) = [f for f in by_path["Ethernet/IPv4/TCP"] if f["Transport"]["B"] == 7012]
    m = tcp["Metric"]
    assert tcp["Network"]["A"] == veth_pair.ip_a and tcp["FinishType"] == "TCP_FIN"
    assert m["RTT"] > 0 and m["ABPackets"] >= 6 and m["BAPackets"] >= 4
    tm = tcp["TCPMetric"]
    assert tm["ABSawStart"] and tm["BASawStart"] and tm["ABSawEnd"] and tm["BASawEnd"]
    assert tm["ABSynStart"] == tcp["Start"]


def test_same_flows_as_afpacket_l3(veth_pair):
    flows = _compare(veth_pair, "L3")
    assert any(f["LayersPath"] == "Ethernet/IPv4/TCP" for f in flows.values())


RAW_SEND = """
import socket, struct, sys
dst, src = bytes.fromhex(sys.argv[2].replace(':', '')), bytes.fromhex(sys.argv[3].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
payload = b'v' * 18
udp = struct.pack('!HHHH', 41000, 7040, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton('192.168.242.1'), socket.inet_aton('192.168.242.2'))
for i in range(int(sys.argv[4])):
    s.send(dst + src + b'\\x81\\x00' + struct.pack('!H', 42) + b'\\x08\\x00' + ip + udp)
"""


@pytest.mark.parametrize("attach", ATTACHES)
def test_vlan_tagged_traffic(veth_pair, attach):
    """802.1Q frames (the kernel moves the tag out of band on receive: vlan_present); the same
    flow as afpacket: Dot1Q in LayersPath, Link.ID, bytes with the tag."""
    ours, ref = [], []
    r_ebpf = ebpf_runner(veth_pair, ours, attach=attach)
    r_afp = afpacket_runner(veth_pair, ref)
    r_afp.start()
    r_ebpf.start()
    try:
        veth_pair.exec_a("/usr/bin/python3", "-c", RAW_SEND, veth_pair.dev_a,
                         veth_pair.mac(veth_pair.ns_b, veth_pair.dev_b),
                         veth_pair.mac(veth_pair.ns_a, veth_pair.dev_a), "4")
        time.sleep(0.3)
    finally:
        r_ebpf.stop()
        r_afp.stop()
    mine = [f for f in final_by_tracking(ours).values() if f.get("Network", {}).get("A") == "192.168.242.1"]
    theirs = [f for f in final_by_tracking(ref).values() if f.get("Network", {}).get("A") == "192.168.242.1"]
    assert len(mine) == 1 and len(theirs) == 1
    f, g = mine[0], theirs[0]
    assert f["LayersPath"] == g["LayersPath"] == "Ethernet/Dot1Q/IPv4/UDP"
    assert f["Link"]["ID"] == 42 and f["TrackingID"] == g["TrackingID"]
    assert f["Metric"]["ABPackets"] == 4 and f["Metric"]["ABBytes"] == 4 * 64 == g["Metric"]["ABBytes"]


def test_verifier_message_on_rejected_program():
    if os.geteuid() != 0:
        pytest.skip("needs root (bpf)")
    a = A.Asm()
    a.mov64_reg(A.R0, A.R2)       # r2 is not initialised at entry
    a.exit()
    with pytest.raises(EBPFError) as ei:
        load_program(a.assemble())
    msg = str(ei.value)
    assert "eBPF program rejected" in msg and "verifier" in msg and "R2 !read_ok" in msg


def test_assembler_labels_and_errors():
    a = A.Asm()
    a.jmp_imm(A.JEQ, A.R1, 0, "end")
    a.mov64_imm(A.R0, 1)
    a.ld_map_fd(A.R1, 7)
    a.label("end")
    a.exit()
    code = a.assemble()
    assert len(code) == 5 * 8
    assert code[:8] == bytes((0x15, 0x01)) + (3).to_bytes(2, "little") + (0).to_bytes(4, "little")
    assert code[16:24] == bytes((0x18, 0x11, 0, 0)) + (7).to_bytes(4, "little")
    b = A.Asm()
    b.ja("nowhere")
    with pytest.raises(A.AsmError):
        b.assemble()


def _fds():
    return set(os.listdir("/proc/self/fd"))


def tcx_programs(pair):
    """Programs on dev_b's tcx (ingress, egress), asked of the kernel in its namespace."""
    with in_netns(pair.ns_b):
        idx = socket.if_nametoindex(pair.dev_b)
        return tcx.query(idx, tcx.TCX_INGRESS), tcx.query(idx, tcx.TCX_EGRESS)


@pytest.mark.parametrize("attach", ATTACHES)
def test_fds_closed_on_stop_and_on_failed_open(veth_pair, attach):
    before = _fds()
    flows = []
    r = ebpf_runner(veth_pair, flows, attach=attach)
    r.start()
    src = r.source
    assert src.attach_mode == attach
    assert src.map_fd >= 0 and src.map4_fd >= 0 and src.prog_fd >= 0 and src.drop_fd >= 0
    fds = [src.map_fd, src.map4_fd, src.prog_fd, src.drop_fd]
    if attach == "tcx":
        assert src.sock is None and len(src.links) == 2 and src.rb_fd >= 0
        assert tcx_programs(veth_pair) == (1, 1)
        fds += src.links + [src.rb_fd]
    else:
        assert src.sock is not None and not src.links
        assert tcx_programs(veth_pair) == (0, 0)
    links = {os.readlink("/proc/self/fd/%d" % fd) for fd in fds}
    assert links == {"anon_inode:bpf-map", "anon_inode:bpf-prog"} | ({"anon_inode:bpf_link"} if attach == "tcx" else set())
    veth_pair.exec_a("ping", "-c", "2", "-i", "0.05", "-W", "1", veth_pair.ip_b)
    r.stop()
    assert not r.running and r.error is None
    assert src.map_fd == src.map4_fd == src.prog_fd == src.drop_fd == src.rb_fd == -1 and src.sock is None
    assert not src.links and src.attach_mode is None
    assert _fds() - before == set()
    assert tcx_programs(veth_pair) == (0, 0)          # stopping detached the program
    assert any(f.get("ICMP", {}).get("Type") == "ECHO" and f["Metric"]["ABPackets"] == 2 for f in flows)
    # a failed open (no such interface) leaves nothing open either
    bad = EBPFSource("nosuchif0", netns=veth_pair.ns_b, attach=attach)
    with pytest.raises(CaptureError):
        bad.open()
    assert bad.map_fd == bad.map4_fd == bad.prog_fd == bad.drop_fd == bad.rb_fd == -1 and not bad.links
    assert _fds() - before == set()


HOLD_CAPTURE = """
import sys, time
sys.path.insert(0, sys.argv[3])
from skydive_runtime.flow.ebpf import EBPFSource
src = EBPFSource(sys.argv[1], netns=sys.argv[2])
src.open()
print(src.attach_mode, flush=True)
time.sleep(60)
"""


def test_killed_agent_leaves_no_program_on_the_interface(veth_pair):
    """SIGKILL of the process holding a tcx capture: the kernel drops its links, nothing stays
    attached, and a new capture attaches as the only program and counts exactly."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.Popen([sys.executable, "-c", HOLD_CAPTURE, veth_pair.dev_b, veth_pair.ns_b, root],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "tcx"
        assert tcx_programs(veth_pair) == (1, 1)
    finally:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 10            # links are released when the dead process's files are
    while tcx_programs(veth_pair) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tcx_programs(veth_pair) == (0, 0)
    src = EBPFSource(veth_pair.dev_b, netns=veth_pair.ns_b, attach="tcx")
    src.open()
    try:
        assert tcx_programs(veth_pair) == (1, 1)
        t = EBPFFlowTable(src, FlowTable())
        udp_send(veth_pair, 4, dport=7061, sport=7062)
        udp_send(veth_pair, 2, dport=7062, sport=7061, from_a=False)
        (f,) = [f for f in t.get_flows() if f.get("Transport", {}).get("B") == 7061]
        assert (f["Metric"]["ABPackets"], f["Metric"]["BAPackets"]) == (4, 2)
    finally:
        src.close()


def test_map_full_counts_dropped_packets_and_flows(veth_pair):
    veth_pair.exec_a("ping", "-c", "1", "-W", "1", veth_pair.ip_b)      # resolve the neighbours first
    src = EBPFSource(veth_pair.dev_b, netns=veth_pair.ns_b, max_flows=2)
    src.open()
    try:
        t = EBPFFlowTable(src, FlowTable(max_entries=100))
        for port in range(7020, 7025):
            udp_send(veth_pair, 3, dport=port, sport=port + 1000)
        flows = t.get_flows()
        kernel = src.dump()
        # each map (IPv4 fast path, general) holds max_flows entries
        assert len([k for k, _v in kernel if len(k) == KEY4_SIZE]) == 2 and len(kernel) <= 4
        assert len([f for f in flows if f.get("Transport", {}).get("B") in range(7020, 7025)]) <= 2
        # the per-key walk (kernels without batch map ops) reads the same entries
        for fd, ksize in ((src.map4_fd, KEY4_SIZE), (src.map_fd, 56)):
            assert sorted(src._dump_iter(fd, ksize)) == sorted(src._dump_batch(fd, ksize))
        assert sorted(src._dump_iter(src.map4_fd, KEY4_SIZE) + src._dump_iter(src.map_fd, 56)) == sorted(kernel)
        st = src.stats()
        counted = sum(f["Metric"]["ABPackets"] + f["Metric"]["BAPackets"] for f in flows)
        assert st["PacketsReceived"] == counted
        # 5 UDP conversations x 3 datagrams, 2 map slots: at least 3 x 3 datagrams found it full
        assert st["PacketsDropped"] >= 9 and st["PacketsDropped"] + counted >= 15
        assert t.stats()["FlowDropped"] >= 1
    finally:
        src.close()


def test_expired_flows_leave_the_kernel_map(veth_pair):
    src = EBPFSource(veth_pair.dev_b, netns=veth_pair.ns_b)
    src.open()
    try:
        t = EBPFFlowTable(src, FlowTable(expire_ms=300))
        udp_send(veth_pair, 4, dport=7030, sport=7031)
        now = time.time_ns() // 1000000
        out = t.tick(now)
        assert any(f.get("Transport", {}).get("B") == 7030 and f["Metric"]["ABPackets"] == 4 for f in out)
        n = len(src.dump())
        assert n >= 1
        time.sleep(0.4)
        out = t.tick(time.time_ns() // 1000000)
        gone = [f for f in out if f.get("Transport", {}).get("B") == 7030]
        assert gone and gone[0]["FinishType"] == "TIMEOUT"
        assert all(widen_key4(k)[52] != 17 if len(k) == KEY4_SIZE else k[52] != 17
                   for k, _v in src.dump())                  # the UDP entries were deleted
        assert src.stats()["PacketsReceived"] >= 4           # still counted after deletion
        udp_send(veth_pair, 2, dport=7030, sport=7031)      # the same conversation again: a new flow
        again = [f for f in t.get_flows() if f.get("Transport", {}).get("B") == 7030]
        assert len(again) == 1 and again[0]["Metric"]["ABPackets"] == 2
    finally:
        src.close()


def test_interface_removed_ends_the_tcx_capture(veth_pair):
    errors = []
    src = EBPFSource(veth_pair.dev_b, netns=veth_pair.ns_b, attach="tcx")
    ev = threading.Event()
    r = CaptureRunner(src, EBPFFlowTable(src, FlowTable()), update_ms=200,
                      on_error=lambda e: (errors.append(e), ev.set()))
    r.start()
    try:
        veth_pair.exec_b("ip", "link", "del", veth_pair.dev_b)
        assert ev.wait(5)
        assert isinstance(errors[0], CaptureError) and "the interface is gone" in str(errors[0])
    finally:
        r.stop()
    assert src.map_fd == -1 and not src.links


def test_interface_down_ends_the_socket_capture(veth_pair):
    errors = []
    src = EBPFSource(veth_pair.dev_b, netns=veth_pair.ns_b, attach="socket")
    ev = threading.Event()
    r = CaptureRunner(src, EBPFFlowTable(src, FlowTable()), update_ms=200,
                      on_error=lambda e: (errors.append(e), ev.set()))
    r.start()
    try:
        veth_pair.exec_b("ip", "link", "set", veth_pair.dev_b, "down")
        assert ev.wait(5)
        assert isinstance(errors[0], CaptureError) and "Network is down" in str(errors[0])
    finally:
        r.stop()
    assert src.map_fd == -1 and src.sock is None


def _frame(sport, dport=9000, proto=17, size=60):
    """Ethernet/IPv4/UDP (or TCP ACK) frame of `size` bytes, 10.0.0.1 -> 10.0.0.2."""
    l4 = struct.pack("!HH", sport, dport) + (struct.pack("!IIBBHHH", 1, 1, 0x50, 0x10, 1000, 0, 0) if proto == 6
                                             else struct.pack("!HH", size - 34, 0))
    ip_len = size - 14
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 1, 0, 64, proto, 0, bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2)))
    frame = bytes.fromhex("020000000002" "020000000001") + b"\x08\x00" + ip + l4
    return frame + b"x" * (size - len(frame))


def test_per_cpu_slots_merge_exactly(veth_pair):
    """The program counts into the running CPU's slot; dump() sums the slots, keeps the
    earliest first and latest last time, ORs the TCP flags (BPF_PROG_TEST_RUN pinned on each CPU)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (bpf)")
    cpus = sorted(os.sched_getaffinity(0))
    src = EBPFSource("lo", netns=veth_pair.ns_b, max_flows=16)
    src.open()
    assert src.attach_mode == "tcx"
    before = os.sched_getaffinity(0)
    try:
        runs = {}
        for i, cpu in enumerate(cpus[:4]):
            os.sched_setaffinity(0, {cpu})
            n = 1000 + 300 * i
            for frame in (_frame(10001), _frame(10002, proto=6, size=70), _frame(10003, size=47)):
                assert prog_test_run(src.prog_fd, frame, n, tc=True)[0] == 0xFFFFFFFF     # TCX_NEXT
            runs[cpu] = n
        total = sum(runs.values())
        got = {}
        for k, v in src.dump():
            wide = widen_key4(k) if len(k) == KEY4_SIZE else k
            if wide[16:20] == bytes((10, 0, 0, 1)):
                got[(len(k), struct.unpack("!H", wide[48:50])[0])] = v
        # 60-byte UDP and 70-byte TCP take the IPv4 fast path; the 47-byte frame the general one
        assert set(got) == {(KEY4_SIZE, 10001), (KEY4_SIZE, 10002), (56, 10003)}
        assert got[(KEY4_SIZE, 10001)][:2] == (total, 60 * total)
        assert got[(KEY4_SIZE, 10002)][:2] == (total, 70 * total) and got[(KEY4_SIZE, 10002)][4] == 0x10
        assert got[(56, 10003)][:2] == (total, 47 * total)
        for v in got.values():
            assert 0 < v[2] <= v[3]
        if len(runs) > 1:
            # really spread: the raw value has one non-empty slot per CPU used
            raw = ctypes.create_string_buffer(40 * src.ncpus)
            key4 = [k for k, _v in src.dump() if len(k) == KEY4_SIZE and widen_key4(k)[48:50] == b"\x27\x11"][0]
            kb = ctypes.create_string_buffer(key4, len(key4))
            _bpf(BPF_MAP_LOOKUP_ELEM, _elem_attr(src.map4_fd, ctypes.addressof(kb), ctypes.addressof(raw)))
            slots = [struct.unpack_from("=Q", raw.raw, 40 * c)[0] for c in range(src.ncpus)]
            assert sorted(s for s in slots if s) == sorted(runs.values())
            assert merge_percpu(raw.raw, 0, src.ncpus)[0] == total
    finally:
        os.sched_setaffinity(0, before)
        src.close()


def test_merge_percpu_rules():
    slot = struct.Struct("=QQQQQ").pack
    raw = slot(3, 180, 500, 900, 0x02) + slot(0, 0, 0, 0, 0) + slot(2, 120, 0, 950, 0x10) + slot(1, 60, 400, 420, 0)
    # slot 2 was created by a bump after another CPU's insert: no first time of its own
    assert merge_percpu(raw, 0, 4) == (6, 360, 400, 950, 0x12)
    assert merge_percpu(slot(1, 60, 700, 698, 0), 0, 1) == (1, 60, 700, 700, 0)   # coarse last behind first


def test_both_cpus_sending_one_flow_counted_exactly(veth_pair):
    """Two senders pinned to different CPUs, one UDP conversation: every datagram counted once."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    veth_pair.exec_a("ping", "-c", "1", "-W", "1", veth_pair.ip_b)
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
            "s.bind(('', 7050))\n"
            "for i in range(int(sys.argv[2])): s.sendto(b'p' * 18, (sys.argv[1], 7051))\n")
    flows = []
    r = ebpf_runner(veth_pair, flows)
    r.start()
    try:
        import subprocess
        procs = [subprocess.Popen(["ip", "netns", "exec", veth_pair.ns_a, "taskset", "-c", str(c), "/usr/bin/python3",
                                   "-c", code, veth_pair.ip_b, "3000"]) for c in cpus[:2]]
        for p in procs:
            assert p.wait(30) == 0
        time.sleep(0.3)
    finally:
        r.stop()
    assert r.error is None
    (f,) = [f for f in final_by_tracking(flows).values() if f.get("Transport", {}).get("B") == 7051]
    assert f["Metric"]["ABPackets"] == 6000 and f["Metric"]["ABBytes"] == 6000 * 60


HANDOFF_SEND = """
import socket, struct, sys
dst, src = bytes.fromhex(sys.argv[2].replace(':', '')), bytes.fromhex(sys.argv[3].replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
A4, B4 = socket.inet_aton('192.168.243.1'), socket.inet_aton('192.168.243.2')
def ip4(proto, body, a=A4, b=B4):
    return struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0, a, b) + body
def udp(sp, dp, payload):
    return struct.pack('!HHHH', sp, dp, 8 + len(payload), 0) + payload
inner = b'\\x02\\x00\\x00\\x00\\x00\\x0b' + b'\\x02\\x00\\x00\\x00\\x00\\x0a' + b'\\x08\\x00' + ip4(
    17, udp(5555, 6666, b'i' * 10), socket.inet_aton('172.16.9.1'), socket.inet_aton('172.16.9.2'))
vxlan = b'\\x08\\x00\\x00\\x00' + struct.pack('!I', 42 << 8) + inner
gre = struct.pack('!HH', 0, 0x0800) + ip4(1, struct.pack('!BBHHH', 8, 0, 0, 77, 1) + b'g' * 8,
                                          socket.inet_aton('172.16.8.1'), socket.inet_aton('172.16.8.2'))
a6, b6 = bytes.fromhex('fd0000000000000000000000000000a1'), bytes.fromhex('fd0000000000000000000000000000b2')
hop = struct.pack('!BB', 17, 0) + b'\\x01\\x04\\x00\\x00\\x00\\x00'      # hop-by-hop, PadN
u6 = udp(41006, 7006, b'6' * 12)
ip6 = struct.pack('!IHBB', 0x60000000, len(hop) + len(u6), 0, 64) + a6 + b6 + hop + u6
geneve = struct.pack('!BBHI', 0, 0, 0x6558, 43 << 8) + inner.replace(socket.inet_aton('172.16.9.1'), socket.inet_aton('172.16.7.1'))
frames = [
    b'\\x08\\x00' + ip4(17, udp(40789, 4789, vxlan)),
    b'\\x08\\x00' + ip4(17, udp(46081, 6081, geneve)),
    b'\\x08\\x00' + ip4(47, gre),
    b'\\x86\\xdd' + ip6,
    b'\\x88\\xa8' + struct.pack('!H', 100) + b'\\x81\\x00' + struct.pack('!H', 200) + b'\\x08\\x00' + ip4(17, udp(41001, 7001, b'q' * 20)),
    b'\\x08\\x00' + ip4(17, udp(41002, 7002, b'p' * 30)),               # plain: counted in the kernel
]
for i in range(int(sys.argv[4])):
    for f in frames:
        s.send(dst + src + f)
"""


@pytest.mark.parametrize("attach", ATTACHES)
def test_frames_the_kernel_key_cannot_describe_reach_user_space(veth_pair, attach):
    """VXLAN and Geneve (inner flows with ParentUUID), GRE, an IPv6 hop-by-hop header and 802.1ad+802.1Q tags go
    to the socket's ring and the user-space decoder; plain UDP stays in the kernel: the same flows
    as afpacket, every packet counted once."""
    ours, ref = [], []
    r_ebpf = ebpf_runner(veth_pair, ours, attach=attach)
    r_afp = afpacket_runner(veth_pair, ref)
    r_afp.start()
    r_ebpf.start()
    try:
        veth_pair.exec_a("/usr/bin/python3", "-c", HANDOFF_SEND, veth_pair.dev_a,
                         veth_pair.mac(veth_pair.ns_b, veth_pair.dev_b),
                         veth_pair.mac(veth_pair.ns_a, veth_pair.dev_a), "3")
        time.sleep(0.3)
        handed = r_ebpf.source.handed_off()
        kernel = r_ebpf.source.received
    finally:
        r_ebpf.stop()
        r_afp.stop()
    assert r_ebpf.error is None and r_afp.error is None

    def ours_only(flows):
        out = {}
        for tid, f in final_by_tracking(flows).items():
            net = f.get("Network", {}).get("A", "")
            if net.startswith(("192.168.243.", "172.16.", "fd00::a1")):
                out[tid] = f
        return out
    mine, theirs = ours_only(ours), ours_only(ref)
    assert set(mine) == set(theirs), (sorted(f["LayersPath"] for f in mine.values()),
                                      sorted(f["LayersPath"] for f in theirs.values()))
    uuid_map = {f["UUID"]: theirs[t]["UUID"] for t, f in mine.items()}
    for tid, f in mine.items():
        g = theirs[tid]
        for k in ("LayersPath", "Application", "Link", "Network", "Transport", "ICMP"):
            assert f.get(k) == g.get(k), (k, f, g)
        for k in ("ABPackets", "ABBytes", "BAPackets", "BABytes"):
            assert f["Metric"][k] == g["Metric"][k], (k, f, g)
        assert uuid_map.get(f.get("ParentUUID"), "") == (g.get("ParentUUID") or "")
    paths = sorted(f["LayersPath"] for f in mine.values())
    assert "Ethernet/IPv4/UDP/VXLAN" in paths and "Ethernet/IPv4/UDP" in paths and "Ethernet/IPv4/GRE" in paths
    assert "Ethernet/IPv4/UDP/Geneve" in paths
    assert any(f.get("ParentUUID") for f in mine.values())
    assert "Ethernet/IPv6/IPv6HopByHop/UDP" in paths and "Ethernet/Dot1Q/Dot1Q/IPv4/UDP" in paths
    # 5 of the 6 frames (x3) handed over, the plain one counted in the kernel
    assert handed >= 15 and kernel >= 3


FALLBACK = """
import sys
sys.path.insert(0, sys.argv[2])
from skydive_runtime.flow.ebpf import EBPFSource
src = EBPFSource(sys.argv[1])
src.open()
print(src.attach_mode)
print(src.attach_fallback)
src.close()
"""


def test_without_cap_net_admin_the_socket_filter_runs():
    """The kernel refuses tcx programs without CAP_NET_ADMIN: `auto` falls back to the socket
    filter and says why; `tcx` asked for explicitly fails with the kernel's reason."""
    import secrets
    import shutil
    import subprocess
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    dev = "fl%sd" % secrets.token_hex(3)
    subprocess.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", dev[:-1] + "e"], check=True)
    try:
        drop = ["setpriv", "--bounding-set", "-net_admin,-sys_admin", sys.executable, "-c"]
        out = subprocess.run(drop + [FALLBACK, dev, root], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        mode, why = out.stdout.splitlines()
        assert mode == "socket" and "Operation not permitted" in why, out.stdout
        forced = FALLBACK.replace("EBPFSource(sys.argv[1])", "EBPFSource(sys.argv[1], attach='tcx')")
        out = subprocess.run(drop + [forced, dev, root], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "EBPFError" in out.stderr and "Operation not permitted" in out.stderr
    finally:
        subprocess.run(["ip", "link", "del", dev], check=False)
