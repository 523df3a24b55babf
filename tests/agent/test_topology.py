"""Topology scenarios of upstream tests/topology_test.go, asserted with Gremlin on the ANALYZER
fed by a real agent. Every test scopes its queries to the unique names it created."""

import os

import pytest

from tests.fixtures.processes import wait_until
from tests.fixtures.topology import run

pytestmark = pytest.mark.needs_root


def test_veth(stack, net, names):
    a, b = names("a"), names("b")
    net.add_veth(a, b)
    stack.wait_count("G.V().Has('Type','veth','Name','%s').Both('Type','veth','Name','%s')" % (a, b), 1)
    # the layer2 link is typed veth, and both ends are owned by the host
    assert stack.count("G.V().Has('Name','%s').BothE().Has('RelationType','layer2','Type','veth')" % a) == 1
    host = stack.agent_host_id
    assert stack.count("G.V().Has('Type','host','Name','%s').Out().Has('Name',Within('%s','%s'))" % (host, a, b)) == 2
    net.ip("link", "del", a)
    stack.wait_count("G.V().Has('Name',Within('%s','%s'))" % (a, b), 0)


def test_netlink_metadata(stack, net, names):
    a, b = names("a"), names("b")
    net.add_veth(a, b)
    net.ip("link", "set", a, "up")
    net.ip("link", "set", b, "up")
    net.ip("addr", "add", "172.31.250.1/24", "dev", a)
    net.ip("addr", "add", "fd12:3456::1/64", "dev", a, "nodad")
    stack.wait_count("G.V().Has('Name','%s','IPV4','172.31.250.1/24','State','UP')" % a, 1)
    stack.wait_count("G.V().Has('Name','%s','IPV6','fd12:3456::1/64')" % a, 1)
    node = stack.node(a)
    md = node["Metadata"]
    assert md["Type"] == "veth" and md["Driver"] == "veth" and md["EncapType"] == "ether"
    assert isinstance(md["IfIndex"], int) and md["MTU"] == 1500
    assert md["LinkFlags"][0] == "UP" and "BROADCAST" in md["LinkFlags"] and "MULTICAST" in md["LinkFlags"]
    peer = stack.node(b)["Metadata"]
    assert md["PeerIfIndex"] == peer["IfIndex"] and peer["PeerIfIndex"] == md["IfIndex"]
    assert md["MAC"] == open("/sys/class/net/%s/address" % a).read().strip()
    assert md["Speed"] == 10000
    assert md["TID"] and md["TID"] != peer["TID"]
    # live updates: MTU, state, address removal
    net.ip("link", "set", a, "mtu", "1400")
    net.ip("link", "set", a, "down")
    net.ip("addr", "del", "172.31.250.1/24", "dev", a)
    stack.wait_count("G.V().Has('Name','%s','MTU',1400,'State','DOWN')" % a, 1)
    stack.wait_count("G.V().Has('Name','%s').HasKey('IPV4')" % a, 0)


def test_namespace(stack, net, names):
    ns = names("n")
    net.add_netns(ns)
    stack.wait_count("G.V().Has('Name','%s','Type','netns')" % ns, 1)
    node = stack.node(ns, ",'Type','netns'")
    md = node["Metadata"]
    assert md["Path"] == "/var/run/netns/" + ns and md["Inode"] > 0 and md["TID"]
    # lo inside the namespace is owned by the netns node
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','lo')" % ns, 1)
    net.ip("netns", "del", ns)
    stack.wait_count("G.V().Has('Name','%s')" % ns, 0)
    stack.wait_count("G.V().Has('Path','/var/run/netns/%s')" % ns, 0)


def test_namespace_veth(stack, net, names):
    ns, a, b = names("n"), names("a"), names("b")
    net.add_netns(ns)
    net.add_veth(a, b, netns_b=ns)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s','Type','veth')" % (ns, b), 1)
    # the veth link crosses the namespaces
    stack.wait_count("G.V().Has('Name','%s','Type','veth').Both('Name','%s','Type','veth')" % (a, b), 1)
    assert stack.node(a)["Metadata"]["LinkNetNsName"] == ns


def test_namespace_two_veth(stack, net, names):
    ns1, ns2, a, b = names("n"), names("n"), names("a"), names("b")
    net.add_netns(ns1)
    net.add_netns(ns2)
    net.add_veth(a, b, netns_a=ns1, netns_b=ns2)
    stack.wait_count("G.V().Has('LinkNetNsName','%s').Has('Name',Within('%s','%s'))" % (ns1, a, b), 1)
    stack.wait_count("G.V().Has('LinkNetNsName','%s').Has('Name',Within('%s','%s'))" % (ns2, a, b), 1)
    assert stack.node(a)["Metadata"]["LinkNetNsName"] == ns2
    stack.wait_count("G.V().Has('Name','%s').Both('Type','veth','Name','%s')" % (a, b), 1)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s')" % (ns1, a), 1)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s')" % (ns2, b), 1)


def test_bridge(stack, net, names):
    br, a, b = names("br"), names("a"), names("b")
    net.add_link(br, "bridge")
    net.add_veth(a, b)
    net.ip("link", "set", a, "master", br)
    stack.wait_count("G.V().Has('Type','bridge','Name','%s').Out('Name','%s')" % (br, a), 1)
    assert stack.node(br)["Metadata"]["Driver"] == "bridge"
    assert stack.node(a)["Metadata"]["MasterIndex"] == stack.node(br)["Metadata"]["IfIndex"]
    net.ip("link", "set", a, "nomaster")
    stack.wait_count("G.V().Has('Type','bridge','Name','%s').Out('Name','%s')" % (br, a), 0)
    stack.wait_count("G.V().Has('Name','%s').HasKey('MasterIndex')" % a, 0)


def test_mac_name_update(stack, net, names):
    a, b, renamed = names("a"), names("b"), names("r")
    net.add_veth(a, b)
    net.track_link(renamed)
    stack.wait_count("G.V().Has('Name','%s')" % a, 1)
    node_id = stack.node(a)["ID"]
    net.ip("link", "set", a, "name", renamed)
    net.ip("link", "set", renamed, "address", "00:00:00:00:00:aa")
    stack.wait_count("G.V().Has('Name','%s','MAC','00:00:00:00:00:aa')" % renamed, 1)
    stack.wait_count("G.V().Has('Name','%s')" % a, 0)
    assert stack.node(renamed)["ID"] == node_id   # same interface, same node


def test_agent_metadata(stack):
    host = "G.V().Has('Type','host','Name','%s')" % stack.agent_host_id
    assert stack.count(host + ".Has('mydict.value',123)") == 1
    assert stack.count(host + ".Has('myarrays.integers',1)") == 1
    assert stack.count(host + ".Has('myarrays.strings','cat')") == 1
    assert stack.count(host + ".Has('myarrays.bools',true)") == 1
    assert stack.count(host + ".HasKey('Hostname')") == 1
    assert stack.count(host + ".Has('OS','linux','KernelVersion','%s')" % os.uname().release) == 1


def test_route_table(stack, net, names):
    ns, a, b = names("n"), names("a"), names("b")
    net.add_netns(ns)
    net.add_veth(a, b, netns_b=ns)
    net.ip("link", "set", b, "up", netns=ns)
    net.ip("addr", "add", "172.31.251.2/24", "dev", b, netns=ns)
    net.ip("route", "add", "10.77.0.0/16", "via", "172.31.251.1", "table", "2000", netns=ns)

    def route():
        n = stack.node(b, ",'Type','veth'")
        if n is None:
            return None
        for t in n["Metadata"].get("RoutingTables", []):
            if t["ID"] == 2000:
                for r in t["Routes"]:
                    if r["Prefix"] == "10.77.0.0/16":
                        return r
        return None
    r = wait_until(route, message="route 10.77.0.0/16 in table 2000")
    assert r["NextHops"][0]["IP"] == "172.31.251.1"
    assert r["NextHops"][0]["IfIndex"] == stack.node(b)["Metadata"]["IfIndex"]
    net.ip("route", "del", "10.77.0.0/16", "via", "172.31.251.1", "table", "2000", netns=ns)
    wait_until(lambda: route() is None, message="route removed")


def test_neighbors(stack, net, names):
    ns, a, b = names("n"), names("a"), names("b")
    net.add_netns(ns)
    net.add_veth(a, b, netns_b=ns)
    net.ip("link", "set", b, "up", netns=ns)
    net.ip("neigh", "add", "172.31.252.9", "lladdr", "02:00:00:aa:bb:cc", "dev", b, "nud", "permanent", netns=ns)

    def neigh():
        n = stack.node(b, ",'Type','veth'")
        for e in (n or {}).get("Metadata", {}).get("Neighbors", []):
            if e.get("IP") == "172.31.252.9":
                return e
        return None
    e = wait_until(neigh, message="neighbour entry")
    assert e["MAC"] == "02:00:00:aa:bb:cc" and "NUD_PERMANENT" in e["State"]
    assert stack.count("G.V().Has('Name','%s','Neighbors.IP','172.31.252.9')" % b) == 1


def test_interface_metrics(stack, net, names):
    ns = names("n")
    net.add_netns(ns)
    net.ip("link", "set", "lo", "up", netns=ns)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','lo')" % ns, 1)
    net.spawn(["ping", "-c", "5", "-i", "0.2", "127.0.0.1"], netns=ns).wait(timeout=10)

    def metric():
        found = stack.q("G.V().Has('Name','%s','Type','netns').Out('Name','lo')" % ns)
        md = found[0]["Metadata"] if found else {}
        m, last = md.get("Metric", {}), md.get("LastUpdateMetric", {})
        return (m, last) if m.get("TxPackets", 0) >= 10 and last.get("TxPackets", 0) > 0 else None
    m, last = wait_until(metric, timeout=10, message="lo metrics")
    assert m["RxPackets"] >= 10 and m["Last"] >= m["Start"]
    assert last["Start"] < last["Last"]


def test_interface_features(stack, net, names):
    a, b = names("a"), names("b")
    net.add_veth(a, b)
    stack.wait_count("G.V().Has('Name','%s','Features.highdma',true)" % a, 1)
    stack.wait_count("G.V().Has('Name','%s','Features.tx-tcp-segmentation',true)" % a, 1)
    run(["ethtool", "-K", a, "tso", "off"])
    stack.wait_count("G.V().Has('Name','%s','Features.tx-tcp-segmentation',false)" % a, 1)


def test_link_flicker(stack, net, names, tmp_path):
    """Links created and deleted faster than the agent can look at them leave nothing behind."""
    pairs = [(names("x"), names("y")) for _ in range(60)]
    keep = (names("k"), names("l"))
    lines = []
    for a, b in pairs:
        lines += ["link add %s type veth peer name %s\n" % (a, b), "link set %s mtu 1400\n" % a,
                  "link set %s name %sr\n" % (b, b), "link del %s\n" % a]
    lines.append("link add %s type veth peer name %s\n" % keep)
    batch = tmp_path / "flicker.batch"
    batch.write_text("".join(lines))
    net.links.extend((None, a) for a, _ in pairs)
    net.track_link(keep[0])
    run(["ip", "-force", "-batch", str(batch)], timeout=60)
    stack.wait_count("G.V().Has('Name','%s').Both('Type','veth','Name','%s')" % keep, 1)
    prefix = names.prefix + names.tag
    stack.wait_count("G.V().Has('Name',Regex('%s[xy].*'))" % prefix, 0)
