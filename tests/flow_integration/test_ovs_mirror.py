"""ovsmirror and ovsnetflow on a netdev (userspace datapath) bridge of the private Open vSwitch:
the mirror and its internal port exist while the capture runs, the flow counts exactly the pings
through the port, and nothing is left on the switch after the capture is deleted; OVS's NetFlow
export gives one flow per conversation with the pings' counts."""

import os
import random
import signal

import pytest

from tests.fixtures.processes import wait_until
from tests.flow_integration.conftest import ping, run

pytestmark = pytest.mark.needs_root

ICMP4 = "Ethernet/IPv4/ICMPv4"


def _ours(ovs, table, cid):
    out = ovs.vsctl("--bare", "--columns=name", "find", table, "external_ids:skydive-%s=%s"
                    % ("capture" if table == "mirror" else "probe-id", cid)).stdout.split()
    return out


def _two_hosts(ovs, net, names, br, prefix):
    ns, outer = [], []
    for i in (1, 2):
        n = net.add_netns(names("mn"))
        inner, out = names("mi"), names("mo")
        net.add_veth(out, inner, netns_a=ovs.netns, netns_b=n)
        ovs.vsctl("add-port", br, out)
        net.ip("link", "set", out, "up", netns=ovs.netns)
        net.ip("addr", "add", "%s.%d/24" % (prefix, i), "dev", inner, netns=n)
        net.ip("link", "set", inner, "up", netns=n)
        run(["ip", "netns", "exec", n, "ethtool", "-K", inner, "tx", "off"], check=False)
        ns.append(n), outer.append(out)
    ovs.ip("link", "set", br, "up", check=False)
    ping(ns[0], "%s.2" % prefix, 1)           # ARP and MAC learning before the capture
    return ns, outer


def test_ovsmirror_counts_the_pings_and_leaves_nothing(ovs_stack, ovs, net, names):
    stack = ovs_stack
    prefix = "10.%d.%d" % (random.randint(1, 250), random.randint(1, 250))
    br = names("mb")
    ovs.add_bridge(br)
    try:
        ns, outer = _two_hosts(ovs, net, names, br, prefix)
        pq = "G.V().Has('Type','ovsport','Name','%s')" % outer[0]
        stack.wait_q(pq + ".Count()", 1)
        cid = stack.capture(GremlinQuery=pq)      # ovsmirror is the ovsport's default type
        stack.wait_active(cid, pq)
        assert stack.q(pq + ".Values('Captures.Type')") == ["ovsmirror"]
        mirrors = _ours(ovs, "mirror", cid)
        assert len(mirrors) == 1 and mirrors[0].startswith("mir")
        assert mirrors[0] in ovs.vsctl("list-ports", br).stdout.split()
        ping(ns[0], "%s.2" % prefix, 20, interval=0.05)
        tid = stack.q(pq)[0]["Metadata"]["TID"]
        q = "G.Flows().Has('CaptureID','%s','LayersPath','%s','NodeTID','%s')" % (cid, ICMP4, tid)
        stack.wait_q(q + ".Values('Metric.ABPackets')", [20], timeout=20)
        assert stack.q(q + ".Values('Metric.BAPackets')") == [20]
        assert stack.q(q + ".Values('Network.A')") == ["%s.1" % prefix]
        assert stack.delete_capture(cid).status_code == 200
        stack.wait_q(pq + ".Has('Captures').Count()", 0)
        wait_until(lambda: not _ours(ovs, "mirror", cid) and not _ours(ovs, "interface", cid), timeout=10,
                   message="mirror and its port removed")
        assert not [p for p in ovs.vsctl("list-ports", br).stdout.split() if p.startswith("mir")]
        assert ovs.vsctl("--bare", "--columns=mirrors", "list", "bridge", br).stdout.strip() == ""
    finally:
        ovs.del_bridge(br)


def test_ovsnetflow_flows_match_the_pings(ovs_stack, ovs, net, names):
    stack = ovs_stack
    prefix = "10.%d.%d" % (random.randint(1, 250), random.randint(1, 250))
    br = names("nb")
    ovs.add_bridge(br)
    try:
        ns, _outer = _two_hosts(ovs, net, names, br, prefix)
        bq = "G.V().Has('Type','ovsbridge','Name','%s')" % br
        stack.wait_q(bq + ".Count()", 1)
        cid = stack.capture(GremlinQuery=bq, Type="ovsnetflow")
        stack.wait_active(cid, bq)
        collector = stack.q(bq + ".Values('Captures.NetFlowSocket')")[0]
        assert ovs.vsctl("get", "netflow", ovs.vsctl("get", "bridge", br, "netflow").stdout.strip(),
                         "targets").stdout.strip() == '["%s"]' % collector
        ping(ns[0], "%s.2" % prefix, 6, interval=0.2)
        q = "G.Flows().Has('CaptureID','%s','LayersPath','IPv4/ICMPv4')" % cid
        stack.wait_q(q + ".Values('Metric.ABPackets')", [6], timeout=30)
        stack.wait_q(q + ".Values('Metric.BAPackets')", [6], timeout=10)
        flow = stack.q(q)[0]
        assert (flow["Network"]["A"], flow["Network"]["B"]) == ("%s.1" % prefix, "%s.2" % prefix)
        assert flow["ICMP"]["Type"] == "ECHO" and "Link" not in flow
        # Open vSwitch reports the frames' bytes (98 for a 84-byte ping packet) as dOctets
        assert flow["Metric"]["ABBytes"] == 6 * 98 and flow["Metric"]["BABytes"] == 6 * 98
        assert stack.delete_capture(cid).status_code == 200
        wait_until(lambda: ovs.vsctl("get", "bridge", br, "netflow").stdout.strip() == "[]", timeout=10,
                   message="NetFlow removed from the bridge")
        assert ovs.vsctl("--bare", "--columns=_uuid", "list", "netflow").stdout.strip() == ""
    finally:
        ovs.del_bridge(br)


def test_killed_agent_mirror_removed_at_next_start(ovs_stack, ovs, net, names):
    """kill -9 leaves the mirror and its port; the next start of that agent removes them (its
    `skydive-agent` tag), before any capture runs, and leaves an untagged mirror alone."""
    stack = ovs_stack
    prefix = "10.%d.%d" % (random.randint(1, 250), random.randint(1, 250))
    br = names("kb")
    ovs.add_bridge(br)
    foreign = names("fm")
    try:
        _ns, outer = _two_hosts(ovs, net, names, br, prefix)
        # somebody else's mirror on the same bridge (no skydive-agent tag): must survive
        ovs.vsctl("--", "--id=@src", "get", "port", outer[1], "--", "--id=@m", "create", "mirror",
                  "name=%s" % foreign, "select-src-port=@src", "--", "add", "bridge", br, "mirrors", "@m")
        pq = "G.V().Has('Type','ovsport','Name','%s')" % outer[0]
        stack.wait_q(pq + ".Count()", 1)
        cid = stack.capture(GremlinQuery=pq)
        stack.wait_active(cid, pq)
        assert len(_ours(ovs, "mirror", cid)) == 1
        os.killpg(stack.agent.proc.pid, signal.SIGKILL)
        stack.agent.proc.wait(10)
        assert len(_ours(ovs, "mirror", cid)) == 1 and len(_ours(ovs, "interface", cid)) == 1
        assert stack.delete_capture(cid).status_code == 200      # so that the new agent is not asked for it
        stack.start_agent()
        wait_until(lambda: not _ours(ovs, "mirror", cid) and not _ours(ovs, "interface", cid), timeout=20,
                   message="the killed agent's mirror and port removed by its next start")
        assert ovs.vsctl("--bare", "--columns=name", "list", "mirror").stdout.split() == [foreign]
        assert "left by an earlier run of this agent" in open(stack.agent.log_path).read()
    finally:
        if stack.agent is None or stack.agent.proc is None or stack.agent.proc.poll() is not None:
            stack.start_agent()          # the module's other tests need their agent
        ovs.del_bridge(br)
