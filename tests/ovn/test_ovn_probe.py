"""The analyzer's ovn probe against a real OVN (tests/fixtures/ovn.py: NB + SB ovsdb-servers,
ovn-northd, ovn-controller on the private Open vSwitch) and a real agent beside that switch:
logical switch, ports, router, ACL and NAT appear and follow the Northbound DB live, bound ports
are mapped to the agent's OVS interfaces (via the Southbound port binding and chassis), and a ping
through OVN's logical flows is captured as exact flows."""

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
