"""Capture Target: NetFlow v5 export (an afpacket capture exports its flows to Debian's nfcapd,
nfdump package; nfdump reads the collected file back with the pings' packet counts in both
directions, and the flows still reach the analyzer) and ERSPAN (an untyped capture mirrors each
frame as ERSPAN type II over GRE to an address in another namespace, where tcpdump sees them with
the inner ICMP)."""

import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile

import pytest

from tests.fixtures.processes import free_port, wait_until
from tests.flow_integration.conftest import Pair, ping, read_pcap, run, subnet

pytestmark = [pytest.mark.needs_root,
              pytest.mark.skipif(not (shutil.which("nfcapd") and shutil.which("nfdump")),
                                 reason="needs nfcapd and nfdump (apt install nfdump)")]


def _nfdump(flowdir):
    """{(src, dst, proto): (packets, bytes)} of every file nfcapd wrote."""
    out = run(["nfdump", "-q", "-R", flowdir, "-N", "-o", "fmt:%sa|%da|%pr|%pkt|%byt"]).stdout
    got = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 5 or not parts[3].isdigit():
            continue
        key = (parts[0], parts[1], parts[2])
        pk, by = got.get(key, (0, 0))
        got[key] = (pk + int(parts[3]), by + int(parts[4]))
    return got


def test_netflow_v5_export_read_back_by_nfdump(stack, net, names):
    p = Pair(net, names)
    flowdir = tempfile.mkdtemp(prefix="skydive-nfcapd-")
    port = free_port()
    nfcapd = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", flowdir, "-t", "3600"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        nq = "G.V().Has('Name','%s')" % p.a
        cid = stack.capture(GremlinQuery=nq, Target="127.0.0.1:%d" % port)
        stack.wait_active(cid, nq)
        ping(p.ns_a, p.ip_b, 7)
        q = "G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv4/ICMPv4')" % cid
        stack.wait_q(q + ".Values('Metric.BAPackets')", [7], timeout=15)      # the analyzer still gets them
        assert stack.delete_capture(cid).status_code == 200
        stack.wait_q(nq + ".Has('Captures').Count()", 0)
    finally:
        nfcapd.send_signal(signal.SIGTERM)          # nfcapd writes its current file on exit
        try:
            nfcapd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nfcapd.kill()
            nfcapd.wait(timeout=5)
    try:
        got = wait_until(lambda: _nfdump(flowdir) or None, timeout=5, message="nfdump reading nfcapd's file")
        icmp = {k: v for k, v in got.items() if k[2] == "1"}      # -N: protocol numbers
        assert icmp == {(p.ip_a, p.ip_b, "1"): (7, 7 * 84), (p.ip_b, p.ip_a, "1"): (7, 7 * 84)}, got   # IP bytes
    finally:
        shutil.rmtree(flowdir, ignore_errors=True)


def _mirrored(dump):
    """[(GRE flags, GRE protocol, sequence, ERSPAN word 1, index, inner frame)] of tcpdump's file."""
    out = []
    with open(dump, "rb") as fh:
        frames = read_pcap(fh.read())
    for _ts, frame in frames:
        ihl = (frame[14] & 0x0f) * 4
        out.append(struct.unpack_from("!HHIII", frame, 14 + ihl) + (frame[14 + ihl + 16:],))
    return out


def _is_icmp4(frame):
    return frame[12:14] == b"\x08\x00" and frame[23] == 1


def test_erspan_export_seen_by_tcpdump(stack, net, names):
    p = Pair(net, names)
    prefix = subnet()
    ns_r, outer, inner = net.add_netns(names("nr")), names("ro"), names("ri")
    net.add_veth(outer, inner, netns_b=ns_r)
    net.ip("addr", "add", prefix + ".1/24", "dev", outer)
    net.ip("link", "set", outer, "up")
    net.ip("addr", "add", prefix + ".2/24", "dev", inner, netns=ns_r)
    net.ip("link", "set", inner, "up", netns=ns_r)
    workdir = tempfile.mkdtemp(prefix="skydive-erspan-")
    dump = os.path.join(workdir, "erspan.pcap")
    tcpdump = subprocess.Popen(["ip", "netns", "exec", ns_r, "tcpdump", "-i", inner, "--immediate-mode", "-U", "-w", dump,
                                "proto", "gre"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in tcpdump.stderr.readline()
        nq = "G.V().Has('Name','%s')" % p.a
        cid = stack.capture(GremlinQuery=nq, Target=prefix + ".2", TargetType="erspanv1")
        stack.wait_active(cid, nq)
        assert stack.q(nq + ".Values('Captures.Type')") == ["afpacket"]      # not ebpf: it sees no packets
        ping(p.ns_a, p.ip_b, 5)
        q = "G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv4/ICMPv4')" % cid
        stack.wait_q(q + ".Values('Metric.BAPackets')", [5], timeout=15)      # the analyzer still gets the flows
        assert stack.delete_capture(cid).status_code == 200
        wait_until(lambda: sum(_is_icmp4(m[-1]) for m in _mirrored(dump)) >= 10, timeout=5,
                   message="tcpdump writing the mirrored pings")
    finally:
        tcpdump.send_signal(signal.SIGTERM)
        try:
            tcpdump.wait(timeout=10)
        except subprocess.TimeoutExpired:
            tcpdump.kill()
            tcpdump.wait(timeout=5)
    try:
        ifindex = stack.q(nq + ".Values('IfIndex')")[0]
        seqs, inner = [], []
        for flags, proto, seq, word, index, data in _mirrored(dump):
            assert (flags, proto) == (0x1000, 0x88be)              # GRE, sequence present, ERSPAN type II
            assert (word >> 28, word & 0x3ff, index) == (1, 1, ifindex)   # version 1, session 1, the capture's IfIndex
            seqs.append(seq)
            inner.append(data)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        # the mirrored frames, read by tcpdump: the pings of the capture, whole
        with open(dump + ".inner", "wb") as fh:
            fh.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
            for data in inner:
                fh.write(struct.pack("<IIII", 0, 0, len(data), len(data)) + data)
        out = run(["tcpdump", "-r", dump + ".inner", "-nn"]).stdout
        requests = re.findall(r"IP %s > %s: ICMP echo request, .* length 64" % (re.escape(p.ip_a), re.escape(p.ip_b)), out)
        replies = re.findall(r"IP %s > %s: ICMP echo reply, .* length 64" % (re.escape(p.ip_b), re.escape(p.ip_a)), out)
        assert (len(requests), len(replies)) == (5, 5), out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
