"""The analyzer's ovn probe against a real OVN (tests/fixtures/ovn.py: NB + SB ovsdb-servers,
ovn-northd, ovn-controller on the private Open vSwitch) and a real agent beside that switch:
logical switch, ports, router, ACL and NAT appear and follow the Northbound DB live, bound ports
are mapped to the agent's OVS interfaces (via the Southbound port binding and chassis), a ping
through OVN's logical flows is captured as exact flows, and between two chassis through OVN's
Geneve tunnel as outer and inner flows."""

import os

import pytest
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config, wait_until
from tests.fixtures.stack import Stack
from tests.fixtures.topology import Names, run

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def names():
    return Names("ov")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, ovs, ovn, names):
    """The analyzer with the ovn probe on both databases, an agent (host = the chassis) beside the
    switch, whose bridge is the chassis's integration bridge."""
    host = "ovnch-%s" % os.urandom(3).hex()
    workdir = tmp_path_factory.mktemp("ovn-stack")
    cfg = analyzer_config(str(workdir))
    cfg["analyzer"]["topology"]["probes"] = ["ovn"]
    cfg["analyzer"]["topology"]["ovn"] = {"address": ovn.nb_tcp, "sb_address": ovn.sb_remote}
    cfg["flow"] = {"update": 1, "expire": 600}
    agent = {"host_id": host, "agent": {"topology": {"probes": ["ovsdb"]}, "capture": {"stats_update": 1}},
             "flow": {"update": 1, "expire": 600}, "logging": {"level": "INFO"}}
    stack = Stack(workdir, agent, cfg, ovs=ovs)
    bridge = names("bi")
    try:
        ovn.add_chassis(ovs, bridge, host)
        stack.start()
        stack.bridge = bridge
        yield stack
    finally:
        stack.stop()
        for chassis in list(ovn.chassis):
            if chassis.name == host:
                chassis.stop()
                ovn.chassis.remove(chassis)
        ovs.del_bridge(bridge)


def plug(net, ovs, bridge, ns, port, lsp, mac, ip):
    """Namespace `ns` with eth0 (mac, ip/24) on `bridge` as OVS port `port`, iface-id = lsp."""
    net.add_netns(ns)
    net.add_veth(port, "eth0", netns_b=ns, netns_a=ovs.netns)
    net.ip("link", "set", "eth0", "address", mac, netns=ns)
    net.ip("addr", "add", ip + "/24", "dev", "eth0", netns=ns)
    net.ip("link", "set", "eth0", "up", netns=ns)
    net.ip("link", "set", "lo", "up", netns=ns)
    ovs.ip("link", "set", port, "up")
    ovs.vsctl("add-port", bridge, port, "--", "set", "interface", port, "external_ids:iface-id=" + lsp)


def test_logical_topology_live(lab, ovn, names):
    ls, lr, lsp, rport, lrp = names("ls"), names("lr"), names("lp"), names("rp"), names("lrp")
    try:
        ovn.nbctl("ls-add", ls)
        ovn.nbctl("lsp-add", ls, lsp, "--", "lsp-set-addresses", lsp, "0a:00:00:00:10:01 10.96.0.5")
        ovn.nbctl("lr-add", lr)
        ovn.nbctl("lrp-add", lr, lrp, "0a:00:00:00:10:ff", "10.96.0.1/24")
        ovn.nbctl("lsp-add", ls, rport, "--", "lsp-set-type", rport, "router", "--",
                  "lsp-set-addresses", rport, "router", "--", "lsp-set-options", rport, "router-port=" + lrp)
        ovn.nbctl("lr-nat-add", lr, "snat", "172.24.4.10", "10.96.0.0/24")
        ovn.nbctl("acl-add", ls, "to-lport", "1001", "ip4.src == 10.96.0.9", "drop")
        sw = "G.V().Has('Type','LogicalSwitch','Manager','ovn','Name','%s')" % ls
        lab.wait_count(sw + ".Out('Type','LogicalSwitchPort')", 2)
        port = lab.node(lsp, ",'Type','LogicalSwitchPort'")["Metadata"]
        assert port["Manager"] == "ovn" and port["OVN"]["Addresses"] == ["0a:00:00:00:10:01 10.96.0.5"]
        assert port["UUID"] == port["OVN"]["UUID"]
        assert lab.count(sw + ".OutE().Has('RelationType','ovn')") == 3          # 2 ports + the ACL
        assert lab.q(sw + ".Out('Type','ACL').Values('OVN.Action')") == ["drop"]
        router = "G.V().Has('Type','LogicalRouter','Name','%s')" % lr
        assert lab.count(router + ".Out('Type','LogicalRouterPort','Name','%s')" % lrp) == 1
        assert lab.q(router + ".Out('Type','NAT').Values('OVN.ExternalIP')") == ["172.24.4.10"]
        # the switch's router port is linked to the router port it names (layer2)
        lab.wait_count("G.V().Has('Name','%s').OutE().Has('RelationType','layer2').OutV().Has('Name','%s')"
                       % (rport, lrp), 1)
        assert lab.q("G.V().Has('Name','%s').Values('OVN.OptionsMeta.router-port')" % rport) == [lrp]
        # live: an update, then deletions
        ovn.nbctl("set", "logical_switch_port", lsp, "external_ids:owner=test")
        lab.wait_q("G.V().Has('Name','%s').Values('OVN.ExternalIDs.owner')" % lsp, ["test"])
        ovn.nbctl("lsp-del", lsp)
        lab.wait_count("G.V().Has('Name','%s')" % lsp, 0)
        assert lab.count(sw + ".Out('Type','LogicalSwitchPort')") == 1
        ovn.nbctl("lr-del", lr)
        lab.wait_count("G.V().Has('Type',Within('LogicalRouter','LogicalRouterPort','NAT'),'Name',Within('%s','%s'))"
                       % (lr, lrp), 0)
        lab.wait_count("G.V().Has('Name','%s').OutE().Has('RelationType','layer2')" % rport, 0)
    finally:
        ovn.nbctl("--if-exists", "ls-del", ls, check=False)
        ovn.nbctl("--if-exists", "lr-del", lr, check=False)


def test_bound_ports_mapped_and_ping_captured(lab, ovn, ovs, net, names):
    ls, lsp1, lsp2 = names("ls"), names("lp"), names("lp")
    ns1, ns2, p1, p2 = names("n"), names("n"), names("pv"), names("pv")
    macs, ips = ("0a:00:00:00:20:01", "0a:00:00:00:20:02"), ("10.95.0.1", "10.95.0.2")
    try:
        ovn.nbctl("ls-add", ls)
        for lsp, mac, ip in ((lsp1, macs[0], ips[0]), (lsp2, macs[1], ips[1])):
            ovn.nbctl("lsp-add", ls, lsp, "--", "lsp-set-addresses", lsp, "%s %s" % (mac, ip))
        plug(net, ovs, lab.bridge, ns1, p1, lsp1, macs[0], ips[0])
        plug(net, ovs, lab.bridge, ns2, p2, lsp2, macs[1], ips[1])
        ovn.wait_port_up(lsp1)
        ovn.wait_port_up(lsp2)
        # each bound port is mapped to the agent's OVS interface whose iface-id names it
        for port, lsp in ((p1, lsp1), (p2, lsp2)):
            q = ("G.V().Has('Name','%s','ExtID.iface-id','%s').Out('Type','LogicalSwitchPort','Name','%s')"
                 ".In('Type','LogicalSwitch','Name','%s')" % (port, lsp, lsp, ls))
            lab.wait_count(q, 1, timeout=20)
            assert lab.q("G.V().Has('Name','%s')" % port)[0]["Host"] == lab.agent_host_id
            assert lab.node(lsp, ",'Type','LogicalSwitchPort'")["Metadata"]["Chassis"] == lab.agent_host_id
        # a capture on the first namespace's eth0; 5 pings through OVN's logical flows
        node = "G.V().Has('Type','netns','Name','%s').Out('Name','eth0')" % ns1
        lab.wait_count(node, 1)
        r = requests.post(lab.url + "/api/capture", json={"GremlinQuery": node, "Name": "ovn"}, timeout=10)
        assert r.status_code == 201, r.text
        cid = r.json()["UUID"]
        lab.wait_count(node + ".Has('Captures.ID','%s','Captures.State','active')" % cid, 1, timeout=20)
        p = run(["ip", "netns", "exec", ns1, "ping", "-c", "5", "-i", "0.2", "-W", "2", ips[1]], check=False, timeout=30)
        assert "5 received" in p.stdout, p.stdout + p.stderr
        # the traffic goes through OVN's logical flows: an ACL dropping it stops the ping
        ovn.nbctl("--wait=hv", "acl-add", ls, "to-lport", "1001", "ip4.src == %s" % ips[0], "drop")
        blocked = run(["ip", "netns", "exec", ns1, "ping", "-c", "1", "-W", "1", ips[1]], check=False, timeout=30)
        assert "0 received" in blocked.stdout, blocked.stdout
        ovn.nbctl("--wait=hv", "acl-del", ls)
        q = ("G.Flows().Has('CaptureID','%s','Network.A','%s','Network.B','%s','Application','ICMPv4')"
             % (cid, ips[0], ips[1]))

        def counts(v):
            return sorted((f["Metric"]["ABPackets"], f["Metric"]["BAPackets"]) for f in v or [])
        # one flow per ping (its ICMP id): 5 echoes answered, then 1 dropped by the ACL
        flows = lab.wait_q(q, lambda v: counts(v) == [(1, 0), (5, 5)], timeout=20,
                           message="the ICMP flows: 5 echoes answered, 1 dropped by the ACL")
        answered = [f for f in flows if f["Metric"]["BAPackets"] == 5][0]
        assert answered["Link"]["A"] == macs[0] and answered["Link"]["B"] == macs[1]
        # the unbound port loses its mapping when its interface goes
        ovs.vsctl("del-port", lab.bridge, p2)
        lab.wait_count("G.V().Has('Type','LogicalSwitchPort','Name','%s').InE().Has('RelationType','mapping')"
                       % lsp2, 0, timeout=20)
        requests.delete(lab.url + "/api/capture/" + cid, timeout=10)
    finally:
        ovn.nbctl("--if-exists", "ls-del", ls, check=False)
        for port in (p1, p2):
            ovs.vsctl("--if-exists", "del-port", lab.bridge, port, check=False)


def test_status_and_unreachable_database(lab, ovn, tmp_path):
    st = requests.get(lab.url + "/api/status", timeout=10).json()["Probes"]["ovn"]
    assert st["State"] == "connected" and st["Address"] == ovn.nb_tcp and st["Nodes"] >= 0
    assert st["Southbound"]["State"] == "connected"
    # a Northbound DB that does not answer: the analyzer serves, the probe says why and retries
    cfg = analyzer_config(str(tmp_path))
    cfg["analyzer"]["topology"]["probes"] = ["ovn"]
    cfg["analyzer"]["topology"]["ovn"] = {"address": "unix:%s/nothing.sock" % tmp_path}
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    try:
        def waiting():
            probe = requests.get(proc.url + "/api/status", timeout=5).json()["Probes"]["ovn"]
            return probe if probe["State"] == "waiting" else None
        probe = wait_until(waiting, timeout=10, message="ovn probe waiting")
        assert "nothing.sock" in probe["Error"]
    finally:
        proc.stop()


def test_ssl_address_needs_its_files(tmp_path):
    cfg = analyzer_config(str(tmp_path))
    cfg["analyzer"]["topology"]["probes"] = ["ovn"]
    cfg["analyzer"]["topology"]["ovn"] = {"address": "ssl:127.0.0.1:6641"}
    proc = SkydiveProcess("analyzer", tmp_path, cfg)
    with pytest.raises(RuntimeError) as err:
        proc.start(timeout=15)
    assert "analyzer.topology.ovn: an ssl: address needs cert, key and cacert" in str(err.value)


def test_two_chassis_geneve_tunnel_flows(lab, ovn, ovs, net, names):
    """A second chassis (its own Open vSwitch, a veth underlay between the two br-phy bridges):
    OVN builds a Geneve tunnel between the chassis (userspace datapath); a ping between ports
    bound on each is captured on the underlay as one outer Geneve flow (VNI = the logical
    switch's tunnel key) and an inner ICMP flow (ParentUUID) with the VM side's TrackingID."""
    from tests.fixtures.topology import PrivateOVS
    from tests.flow_integration.conftest import subnet
    under, over = subnet(), subnet()
    far = PrivateOVS().start()
    ls, phy1, phy2, u1, u2 = names("ls"), names("ph"), names("ph"), names("u"), names("u")
    lsps, vms, ports = (names("lp"), names("lp")), (names("n"), names("n")), (names("pv"), names("pv"))
    macs = ("0a:00:00:00:50:01", "0a:00:00:00:50:02")
    far_chassis = None
    try:
        net.add_veth(u1, u2, netns_a=ovs.netns, netns_b=far.netns)
        for i, (switch, phy, uplink) in enumerate(((ovs, phy1, u1), (far, phy2, u2)), 1):
            switch.add_bridge(phy)
            switch.vsctl("add-port", phy, uplink)
            switch.ip("link", "set", uplink, "up")
            switch.ip("addr", "add", "%s.%d/24" % (under, i), "dev", phy)
            switch.ip("link", "set", phy, "up")
        ovs.vsctl("set", "open_vswitch", ".", "external_ids:ovn-encap-ip=%s.1" % under)
        far_chassis = ovn.add_chassis(far, names("bi"), names("ch"), encap_ip="%s.2" % under)
        ovn.nbctl("ls-add", ls)
        for i, (switch, bridge) in enumerate(((ovs, lab.bridge), (far, far_chassis.bridge))):
            ip = "%s.%d" % (over, i + 1)
            ovn.nbctl("lsp-add", ls, lsps[i], "--", "lsp-set-addresses", lsps[i], "%s %s" % (macs[i], ip))
            plug(net, switch, bridge, vms[i], ports[i], lsps[i], macs[i], ip)
            # no IPv6 chatter: only the pings cross the tunnel
            run(["ip", "netns", "exec", vms[i], "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            net.ip("neigh", "add", "%s.%d" % (over, 2 - i), "lladdr", macs[1 - i], "dev", "eth0", "nud", "permanent",
                   netns=vms[i])
        for lsp in lsps:
            ovn.wait_port_up(lsp)
        # warm-up: the tunnel's neighbour is resolved (first packets dropped meanwhile)
        run(["ip", "netns", "exec", vms[0], "ping", "-c", "3", "-i", "0.2", "-W", "1", "%s.2" % over], check=False, timeout=30)
        warm = run(["ip", "netns", "exec", vms[0], "ping", "-c", "1", "-W", "2", "%s.2" % over], check=False, timeout=30)
        assert "1 received" in warm.stdout, warm.stdout
        tunnel_key = int(ovn.sbctl("--bare", "--columns=tunnel_key", "find", "datapath_binding",
                                   "external_ids:name=%s" % ls).stdout.split()[0])
        underlay = "G.V().Has('Name','%s','Type','veth')" % u1
        vm_side = "G.V().Has('Type','netns','Name','%s').Out('Name','eth0')" % vms[0]
        caps = []
        for q in (underlay, vm_side):
            lab.wait_count(q, 1)
            r = requests.post(lab.url + "/api/capture", json={"GremlinQuery": q}, timeout=10)
            assert r.status_code == 201, r.text
            caps.append(r.json()["UUID"])
            lab.wait_count(q + ".Has('Captures.ID','%s','Captures.State','active')" % caps[-1], 1, timeout=20)
        p = run(["ip", "netns", "exec", vms[0], "ping", "-c", "5", "-i", "0.2", "-W", "2", "%s.2" % over],
                check=False, timeout=30)
        assert "5 received" in p.stdout, p.stdout
        outer = lab.wait_q("G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv4/UDP/Geneve')" % caps[0],
                           lambda v: len(v) == 1 and (v[0]["Metric"]["ABPackets"], v[0]["Metric"]["BAPackets"]) == (5, 5),
                           timeout=20, message="one outer Geneve flow, 5 packets each way")[0]
        assert outer["Network"]["ID"] == tunnel_key and outer["Transport"]["B"] == 6081
        inner = lab.wait_q("G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv4/ICMPv4')" % caps[0],
                           lambda v: len(v) == 1 and v[0]["Metric"]["BAPackets"] == 5, timeout=20)[0]
        assert inner["ParentUUID"] == outer["UUID"] and inner["Metric"]["ABPackets"] == 5
        seen = lab.wait_q("G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv4/ICMPv4')" % caps[1],
                          lambda v: len(v) == 1 and v[0]["Metric"]["BAPackets"] == 5, timeout=20)[0]
        assert seen["TrackingID"] == inner["TrackingID"] and seen["UUID"] != inner["UUID"]
        for cid in caps:
            requests.delete(lab.url + "/api/capture/" + cid, timeout=10)
    finally:
        ovn.nbctl("--if-exists", "ls-del", ls, check=False)
        ovs.vsctl("set", "open_vswitch", ".", "external_ids:ovn-encap-ip=127.0.0.1", check=False)
        for port in ports:
            ovs.vsctl("--if-exists", "del-port", lab.bridge, port, check=False)
        if far_chassis is not None:
            far_chassis.stop()
            ovn.chassis.remove(far_chassis)
        ovs.del_bridge(phy1)
        far.stop()
