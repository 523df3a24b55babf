"""A ping over a Geneve tunnel between two Open vSwitch bridges (userspace datapath, native
tunnelling): the private switch the agent runs beside (`ovs_stack`) is one end, a second private
switch the other; their `br-phy` bridges are joined by a veth pair (the underlay). Captured on the
underlay veth: one outer Geneve flow (VNI + destination port, both directions) and its inner ICMP
flow (ParentUUID) with exact counts, the inner TrackingID equal to the one captured on the VM side."""

import pytest

from tests.fixtures.topology import PrivateOVS, run
from tests.flow_integration.conftest import ping, subnet

pytestmark = pytest.mark.needs_root

VNI = 4242


@pytest.fixture
def stack(ovs_stack):
    return ovs_stack


@pytest.fixture
def far_switch():
    switch = PrivateOVS().start()
    try:
        yield switch
    finally:
        switch.stop()


def _vm(net, switch, bridge, name, port, ip, mac):
    """Namespace `name`, eth0 (ip/24, mac, no IPv6: nothing but the test's traffic) on `bridge`."""
    net.add_netns(name)
    run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
    run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
    net.add_veth(port, "eth0", netns_a=switch.netns, netns_b=name)
    net.ip("link", "set", "eth0", "address", mac, netns=name)
    net.ip("addr", "add", ip + "/24", "dev", "eth0", netns=name)
    net.ip("link", "set", "eth0", "up", netns=name)
    switch.vsctl("add-port", bridge, port)
    switch.ip("link", "set", port, "up")


def test_geneve_outer_and_inner_flows(stack, ovs, far_switch, net, names):
    under, over = subnet(), subnet()
    sides = []
    u1, u2 = names("gu"), names("gu")
    net.add_veth(u1, u2, netns_a=ovs.netns, netns_b=far_switch.netns)
    made = []
    try:
        for i, (switch, uplink) in enumerate(((ovs, u1), (far_switch, u2)), 1):
            phy, br, tun, port, vm = names("gp"), names("gi"), names("gt"), names("gv"), names("gn")
            switch.add_bridge(phy)
            switch.add_bridge(br)
            made.append((switch, (phy, br)))
            switch.vsctl("add-port", phy, uplink)
            switch.ip("link", "set", uplink, "up")
            switch.ip("addr", "add", "%s.%d/24" % (under, i), "dev", phy)
            switch.ip("link", "set", phy, "up")
            switch.vsctl("add-port", br, tun, "--", "set", "interface", tun, "type=geneve",
                         "options:remote_ip=%s.%d" % (under, 3 - i), "options:key=%d" % VNI)
            _vm(net, switch, br, vm, port, "%s.%d" % (over, i), "0a:00:00:00:30:0%d" % i)
            sides.append(vm)
        # static neighbours: only the pings cross the tunnel
        for i, vm in enumerate(sides, 1):
            net.ip("neigh", "add", "%s.%d" % (over, 3 - i), "lladdr", "0a:00:00:00:30:0%d" % (3 - i),
                   "dev", "eth0", "nud", "permanent", netns=vm)
        # warm-up: OVS resolves its tunnel neighbour (the first packets are dropped meanwhile) and
        # both bridges learn the MACs; then every ping crosses the tunnel
        run(["ip", "netns", "exec", sides[0], "ping", "-c", "3", "-i", "0.2", "-W", "1", "%s.2" % over], check=False)
        ping(sides[0], "%s.2" % over, 1)
        underlay = "G.V().Has('Name','%s','Type','veth')" % u1
        vm_side = "G.V().Has('Type','netns','Name','%s').Out('Name','eth0')" % sides[0]
        stack.wait_count(underlay, 1)
        stack.wait_count(vm_side, 1)
        c_under = stack.capture(GremlinQuery=underlay)
        c_vm = stack.capture(GremlinQuery=vm_side)
        stack.wait_active(c_under, underlay)
        stack.wait_active(c_vm, vm_side)
        ping(sides[0], "%s.2" % over, 5)
        gq = "G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv4/UDP/Geneve')" % c_under
        outer = stack.wait_q(gq, lambda v: len(v) == 1 and v[0]["Metric"]["ABPackets"] == 5
                             and v[0]["Metric"]["BAPackets"] == 5, timeout=20,
                             message="one outer Geneve flow, 5 packets each way")[0]
        assert outer["Network"]["ID"] == VNI and outer["Transport"]["B"] == 6081
        assert outer["Network"]["A"] == "%s.1" % under and outer["Network"]["B"] == "%s.2" % under
        iq = "G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv4/ICMPv4')" % c_under
        inner = stack.wait_q(iq, lambda v: len(v) == 1 and v[0]["Metric"]["BAPackets"] == 5, timeout=20)[0]
        assert inner["ParentUUID"] == outer["UUID"] and inner["Metric"]["ABPackets"] == 5
        assert inner["Network"]["A"] == "%s.1" % over and inner["Network"]["ID"] == 0
        vq = "G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv4/ICMPv4')" % c_vm
        seen = stack.wait_q(vq, lambda v: len(v) == 1 and v[0]["Metric"]["BAPackets"] == 5, timeout=20)[0]
        assert seen["TrackingID"] == inner["TrackingID"] and seen["UUID"] != inner["UUID"]
        assert seen["ParentUUID"] == ""
        for cid in (c_under, c_vm):
            stack.delete_capture(cid)
    finally:
        for switch, bridges in made:
            for br in bridges:
                switch.del_bridge(br)
