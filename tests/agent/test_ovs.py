"""Open vSwitch scenarios of upstream tests/topology_test.go, asserted with Gremlin on the ANALYZER
fed by a real agent that runs beside the private switch, in its namespace (`ovs_stack`): the
switch's bridges, ports and internal interfaces are the agent's host's, as on a host running
Open vSwitch, and links the tests plug into the switch are made in `ovs.netns`."""

import json

import pytest

pytestmark = pytest.mark.needs_root


@pytest.fixture
def stack(ovs_stack):
    return ovs_stack


def test_agent_namespace_is_its_host(stack, ovs):
    """The agent's own namespace, although named in /var/run/netns, is its host: no netns node
    (as upstream's netns probe), its interfaces (the switch's uplink) owned by the host."""
    host = "G.V().Has('Type','host','Name','%s')" % stack.agent_host_id
    stack.wait_count(host + ".Out('Name','%s')" % ovs.uplink_peer, 1)
    assert stack.count("G.V().Has('Type','netns','Name','%s')" % ovs.netns) == 0


def test_ovs_bridge(stack, ovs, ovs_bridges, names):
    br = names("ob")
    ovs_bridges.add(br)
    q = ("G.V().Has('Type','ovsbridge','Name','%s').Out('Type','ovsport','Name','%s')"
         ".Out('Type','internal','Name','%s','Driver','openvswitch')" % (br, br, br))
    # as upstream: ownership + layer2 between bridge and port give the interface twice, hence Dedup
    stack.wait_count(q + ".Dedup()", 1)
    assert stack.count(q) == 2
    bridge = stack.node(br, ",'Type','ovsbridge'")["Metadata"]
    assert bridge["UUID"] and bridge["TID"]
    host = stack.agent_host_id
    assert stack.count("G.V().Has('Type','host','Name','%s').Out('Type','ovsbridge','Name','%s')" % (host, br)) == 1


def test_ovs_patch(stack, ovs, ovs_bridges, names):
    br1, br2, p1, p2 = names("ob"), names("ob"), names("p"), names("p")
    ovs_bridges.add(br1)
    ovs_bridges.add(br2)
    ovs_bridges.vsctl("add-port", br1, p1, "--", "set", "interface", p1, "type=patch", "options:peer=" + p2)
    ovs_bridges.vsctl("add-port", br2, p2, "--", "set", "interface", p2, "type=patch", "options:peer=" + p1)
    q = ("G.V().Has('Type','patch','Name','%s','Driver','openvswitch').Both('Type','patch','Name','%s','Driver','openvswitch')"
         % (p1, p2))
    stack.wait_count(q, 1)
    assert stack.count(q + ".Dedup()") == 1
    assert stack.count("G.V().Has('Name','%s').BothE().Has('RelationType','layer2','Type','patch')" % p1) == 1


def test_ovs_interface(stack, ovs, ovs_bridges, names):
    br, intf = names("ob"), names("i")
    ovs_bridges.add(br)
    ovs_bridges.vsctl("add-port", br, intf, "--", "set", "interface", intf, "type=internal")
    stack.wait_count("G.V().Has('Type','internal','Name','%s','Driver','openvswitch').HasKey('UUID').HasKey('MAC')"
                     % intf, 1)
    # one node for the interface: netlink and OVS merged
    assert stack.count("G.V().Has('Name','%s','Type',NE('ovsport'))" % intf) == 1
    md = stack.node(intf, ",'Type','internal'")["Metadata"]
    assert isinstance(md["IfIndex"], int) and md["OfPort"] >= 1 and md["MTU"] > 0


def test_ovs_internal_moved_to_namespace(stack, ovs, net, ovs_bridges, names):
    br, intf, ns = names("ob"), names("i"), names("n")
    ovs_bridges.add(br)
    net.add_netns(ns)
    ovs_bridges.vsctl("add-port", br, intf, "--", "set", "interface", intf, "type=internal")
    stack.wait_count("G.V().Has('Type','internal','Name','%s')" % intf, 1)
    net.ip("link", "set", intf, "netns", ns, netns=ovs.netns)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s','Type','internal')" % (ns, intf), 1)
    assert stack.count("G.V().Has('Name','%s','Type','internal')" % intf) == 1
    assert stack.count("G.V().Has('Name','%s').In('Type','ovsport')" % intf) == 1
    node_id = stack.node(intf, ",'Type','internal'")["ID"]
    # and back to the host: still the same single node, owned by the host again
    net.ip("link", "set", intf, "netns", ovs.netns, netns=ns)
    host = "G.V().Has('Type','host','Name','%s')" % stack.agent_host_id
    stack.wait_count(host + ".OutE().Has('RelationType','ownership').OutV().Has('Name','%s','Type','internal')"
                     % intf, 1)
    assert stack.count("G.V().Has('Name','%s','Type','internal')" % intf) == 1
    assert stack.node(intf, ",'Type','internal'")["ID"] == node_id


def test_ovs_ownership_links(stack, ovs, ovs_bridges, names):
    br, vx, gre, patch, intf = names("ob"), names("vx"), names("gr"), names("p"), names("i")
    ovs_bridges.add(br)
    ovs_bridges.vsctl("add-port", br, vx, "--", "set", "interface", vx, "type=vxlan",
                      "options:remote_ip=10.9.9.2", "options:local_ip=10.9.9.1", "external_ids:iface-id=port-x")
    ovs_bridges.vsctl("add-port", br, gre, "--", "set", "interface", gre, "type=gre", "options:remote_ip=10.9.9.3")
    ovs_bridges.vsctl("add-port", br, patch, "--", "set", "interface", patch, "type=patch", "options:peer=nowhere")
    ovs_bridges.vsctl("add-port", br, intf, "--", "set", "interface", intf, "type=internal")
    bridge = "G.V().Has('Type','ovsbridge','Name','%s')" % br
    for name, kind in ((vx, "vxlan"), (gre, "gre"), (patch, "patch")):
        stack.wait_count(bridge + ".OutE().Has('RelationType','ownership').OutV().Has('Name','%s','Type','%s')"
                         % (name, kind), 1)
    stack.wait_count("G.V().Has('Name','%s','Type','internal')" % intf, 1)
    # internal port: owned by the host, not by the bridge
    assert stack.count(bridge + ".Out('Name','%s','Type','internal')" % intf) == 0
    host = "G.V().Has('Type','host','Name','%s')" % stack.agent_host_id
    assert stack.count(host + ".OutE().Has('RelationType','ownership').OutV().Has('Name','%s')" % intf) == 1
    md = stack.node(vx, ",'Type','vxlan'")["Metadata"]
    assert md["RemoteIP"] == "10.9.9.2" and md["LocalIP"] == "10.9.9.1"
    assert md["ExtID"] == {"iface-id": "port-x"}
    assert stack.count("G.V().Has('ExtID.iface-id','port-x')") == 1
    assert md["Driver"] == "openvswitch" and md["TID"]
    assert json.dumps(md["Ovs"]["Options"], sort_keys=True) == json.dumps(
        {"local_ip": "10.9.9.1", "remote_ip": "10.9.9.2"}, sort_keys=True)
    # removing a tunnel port removes its node
    ovs_bridges.vsctl("del-port", br, vx)
    stack.wait_count("G.V().Has('Name','%s')" % vx, 0)  # port and interface


def test_ovs_system_port_merged(stack, ovs, net, ovs_bridges, names):
    """A veth plugged into OVS is one node: netlink's veth with OVS's UUID/OfPort, below its ovsport."""
    br, a, b = names("ob"), names("a"), names("b")
    ovs_bridges.add(br)
    net.add_veth(a, b, netns_a=ovs.netns, netns_b=ovs.netns)
    ovs_bridges.vsctl("add-port", br, a, "--", "set", "interface", a, "external_ids:attached-mac=02:00:00:00:00:01")
    stack.wait_count("G.V().Has('Type','ovsport','Name','%s').Out('Name','%s','Type','veth').HasKey('UUID')" % (a, a), 1)
    assert stack.count("G.V().Has('Name','%s','Type',NE('ovsport'))" % a) == 1
    md = stack.node(a, ",'Type','veth'")["Metadata"]
    assert md["Driver"] == "veth" and md["OfPort"] >= 1 and md["ExtID"]["attached-mac"] == "02:00:00:00:00:01"
    host = "G.V().Has('Type','host','Name','%s')" % stack.agent_host_id
    assert stack.count(host + ".OutE().Has('RelationType','ownership').OutV().Has('Name','%s','Type','veth')" % a) == 1
    # leaving OVS keeps the interface, without its OVS keys
    ovs_bridges.vsctl("del-port", br, a)
    stack.wait_count("G.V().Has('Name','%s','Type','veth').HasKey('UUID')" % a, 0)
    assert stack.count("G.V().Has('Name','%s','Type','veth')" % a) == 1
    assert "ExtID" not in stack.node(a, ",'Type','veth'")["Metadata"]
