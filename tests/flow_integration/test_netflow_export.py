"""Capture Target (NetFlow v5 export): an afpacket capture exports its flows to Debian's nfcapd
(nfdump package); nfdump reads the collected file back with the pings' packet counts in both
directions, and the flows still reach the analyzer."""

import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from tests.fixtures.processes import free_port, wait_until
from tests.flow_integration.conftest import Pair, ping, run

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
