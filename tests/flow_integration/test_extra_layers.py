"""Capture ExtraLayers: Debian's dnsmasq in a namespace answers DNS (a local name, an NXDOMAIN) and
offers a DHCP lease to busybox udhcpc in the other namespace; a VRRP advertisement goes through the
veth as a crafted frame.  The capture's flows carry the DNS, DHCPv4 and VRRPv2 layers (upstream's
JSON names); an untyped capture asking for them runs afpacket, and a capture not asking has none.
IPDefrag: large pings (3 fragments each way) are one ICMP flow counting each ping once."""

import shutil

import pytest

from tests.fixtures.processes import wait_until
from tests.flow_integration.conftest import Pair, ping, run

pytestmark = [pytest.mark.needs_root,
              pytest.mark.skipif(not (shutil.which("dnsmasq") and shutil.which("busybox")),
                                 reason="needs dnsmasq and busybox (apt install dnsmasq-base busybox)")]

_QUERY = """
import socket, struct, sys
name, server, sport = sys.argv[1], sys.argv[2], int(sys.argv[3])
q = struct.pack('!HHHHHH', sport, 0x0100, 1, 0, 0, 0)
q += b''.join(bytes([len(x)]) + x.encode() for x in name.split('.')) + b'\\0' + struct.pack('!HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('', sport))
s.settimeout(5)
s.sendto(q, (server, 53))
print(len(s.recv(4096)))
"""

_VRRP = """
import socket, struct, sys
ifname, src = sys.argv[1], socket.inet_aton(sys.argv[2])
vrrp = bytes([0x21, 42, 200, 1, 0, 1, 0, 0]) + socket.inet_aton(sys.argv[3])
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0xc0, 20 + len(vrrp), 0, 0, 255, 112, 0, src, socket.inet_aton('224.0.0.18'))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
s.send(bytes.fromhex('01005e000012') + bytes.fromhex('00005e00012a') + b'\\x08\\x00' + ip + vrrp)
"""


def _mac(ns, ifname):
    return run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/%s/address" % ifname]).stdout.strip()


def _flows(stack, cid):
    return stack.q("G.Flows().Has('CaptureID','%s')" % cid)


def test_dns_dhcp_vrrp_layers(stack, net, names, tmp_path):
    p = Pair(net, names)
    local_ip = p.prefix + ".77"
    dnsmasq = net.spawn(["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "-u", "root",
                         "--bind-interfaces", "--interface=%s" % p.b, "--listen-address=%s" % p.ip_b,
                         "--address=/host.skytest.lan/%s" % local_ip, "--local=/nxtest.lan/",
                         "--dhcp-range=%s.100,%s.120,255.255.255.0,1h" % (p.prefix, p.prefix),
                         "--dhcp-leasefile=%s" % (tmp_path / "leases"), "--pid-file=%s" % (tmp_path / "pid")],
                        netns=p.ns_b)
    nq_a, nq_b = "G.V().Has('Name','%s')" % p.pa, "G.V().Has('Name','%s')" % p.pb
    with_layers = stack.capture(GremlinQuery=nq_a, ExtraLayers=["DNS", "DHCPv4", "VRRP"])
    without = stack.capture(GremlinQuery=nq_b)
    try:
        stack.wait_active(with_layers, nq_a)
        stack.wait_active(without, nq_b)
        assert stack.q(nq_a + ".Values('Captures.Type')") == ["afpacket"]      # whole packets, not ebpf
        wait_until(lambda: dnsmasq.poll() is None and "%s:53 " % p.ip_b in run(
            ["ip", "netns", "exec", p.ns_b, "ss", "-lun"]).stdout or None, timeout=10, message="dnsmasq up")
        mac_a = _mac(p.ns_a, p.a)
        dhcp = run(["ip", "netns", "exec", p.ns_a, "busybox", "udhcpc", "-i", p.a, "-f", "-q", "-n", "-t", "5", "-T", "1",
                    "-s", "/bin/true"], timeout=30, check=False)
        assert "lease of" in dhcp.stdout + dhcp.stderr, dhcp.stdout + dhcp.stderr
        run(["ip", "netns", "exec", p.ns_a, "python3", "-c", _VRRP, p.a, p.ip_a, p.prefix + ".254"])
        # last: DNS flows expire 10 s after their last packet (flow.application_timeout.dns)
        for name, sport in (("host.skytest.lan", 40053), ("gone.nxtest.lan", 40054)):
            run(["ip", "netns", "exec", p.ns_a, "python3", "-c", _QUERY, name, p.ip_b, str(sport)], timeout=15)

        def layers():
            fl = _flows(stack, with_layers)
            dns = {f["Transport"]["A"]: f.get("DNS") for f in fl if f.get("Application") == "DNS"}
            offers = [f["DHCPv4"] for f in fl if f.get("DHCPv4", {}).get("msg_type") == "Offer"]
            vrrp = [f.get("VRRPv2") for f in fl if f["LayersPath"].endswith("/VRRP")]
            if all(dns.get(s, {}).get("answers") or dns.get(s, {}).get("response_code") == "Non-Existent Domain"
                   for s in (40053, 40054)) and offers and vrrp:
                return dns, offers, vrrp
            return None
        try:
            dns, offers, vrrp = wait_until(layers, timeout=20, message="flows with their layers")
        except AssertionError:
            raise AssertionError([(f["LayersPath"], {k: f[k] for k in ("DNS", "DHCPv4", "VRRPv2") if k in f})
                                  for f in _flows(stack, with_layers)]) from None
        ok = dns[40053]
        assert ok["QR"] and ok["response_code"] == "No Error" and ok["op_code"] == "Query", ok
        assert ok["questions"] == [{"name": "host.skytest.lan", "type": "A", "class": "IN"}], ok
        assert [(r["name"], r["type"], r["IP"]) for r in ok["answers"]] == [("host.skytest.lan", "A", local_ip)], ok
        nx = dns[40054]
        assert nx["response_code"] == "Non-Existent Domain" and "answers" not in nx, nx
        assert nx["questions"][0]["name"] == "gone.nxtest.lan", nx
        offer = offers[0]
        assert offer["operation"] == "Reply" and offer["client_hw_addr"] == mac_a, offer
        lease = offer["your_client_ip"]
        assert lease.startswith(p.prefix + ".") and 100 <= int(lease.rsplit(".", 1)[1]) <= 120, offer
        assert vrrp == [{"version": 2, "virtual_rtrID": 42, "priority": 200, "adver_int": 1}], vrrp
        # the capture not asking: the same traffic, no layer
        fb = wait_until(lambda: [f for f in _flows(stack, without) if f.get("Application") == "DNS"] or None,
                        timeout=15, message="DNS flows of the plain capture")
        assert not any(k in f for f in _flows(stack, without) for k in ("DNS", "DHCPv4", "VRRPv2")), fb
    finally:
        for cid in (with_layers, without):
            stack.delete_capture(cid)
        stack.wait_q("G.V().Has('Name',Within('%s','%s')).Has('Captures').Count()" % (p.pa, p.pb), 0)


def test_ip_defrag(stack, net, names):
    p = Pair(net, names)
    nq_a, nq_b = "G.V().Has('Name','%s')" % p.pa, "G.V().Has('Name','%s')" % p.pb
    defrag = stack.capture(GremlinQuery=nq_a, IPDefrag=True)
    plain = stack.capture(GremlinQuery=nq_b, Type="afpacket")
    try:
        stack.wait_active(defrag, nq_a)
        stack.wait_active(plain, nq_b)
        assert stack.q(nq_a + ".Values('Captures.Type')") == ["afpacket"]
        ping(p.ns_a, p.ip_b, 5, extra=("-s", "4000"))         # 4008-byte ICMP: 1480 + 1480 + 1048
        q = "G.Flows().Has('CaptureID','%s','Network.A','%s')"
        flows = stack.wait_q(q % (defrag, p.ip_a), lambda fl: fl and fl[0]["Metric"]["BAPackets"] == 5, timeout=15)
        assert [f["LayersPath"] for f in flows] == ["Ethernet/IPv4/ICMPv4"], flows
        f = flows[0]
        assert (f["Metric"]["ABPackets"], f["IPMetric"]) == (5, {"Fragments": 30, "FragmentErrors": 0}), f
        assert f["Metric"]["ABBytes"] == 5 * (4008 + 3 * (20 + 14)), f
        # without IPDefrag the non-first fragments are a flow of their own
        paths = stack.wait_q("G.Flows().Has('CaptureID','%s').Values('LayersPath')" % plain,
                             lambda v: v and "Ethernet/IPv4/Fragment" in v and "Ethernet/IPv4/ICMPv4" in v, timeout=15)
        assert not any("IPMetric" in f for f in _flows(stack, plain)), paths
    finally:
        for cid in (defrag, plain):
            stack.delete_capture(cid)
        stack.wait_q("G.V().Has('Name',Within('%s','%s')).Has('Captures').Count()" % (p.pa, p.pb), 0)


def test_refusals(stack):
    for body, text in (({"Type": "ebpf", "ExtraLayers": ["DNS"]}, "ExtraLayers: not supported by ebpf capture"),
                       ({"ReassembleTCP": True}, "ReassembleTCP: not implemented (no extra layer needs it"),
                       ({"ExtraLayers": ["HTTP"]}, "ExtraLayers: unknown layer 'HTTP'")):
        r = stack.create_capture(GremlinQuery="G.V().Has('Name','lo')", **body)
        assert r.status_code == 400 and text in r.text, (body, r.status_code, r.text)
