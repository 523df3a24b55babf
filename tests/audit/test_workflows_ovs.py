"""The built-in workflows on a two-namespace Open vSwitch setup (the private switch, the agent
beside it): CheckConnectivity, CheckMTU and FlowValidation answer true, then false once the
path is cut (the destination's port down, then removed from the bridge)."""

import os
import threading

import pytest
import requests

from tests.fixtures.topology import Names, NetEnv, run
from tests.flow_integration.conftest import HAVE_TOOLS, FlowStack

CHECK_CONNECTIVITY = "85757b38-6e21-11e8-b42d-28d2442e1329"
CHECK_MTU = "85757b38-6e21-11e8-b42d-28d2442e1325"
FLOW_VALIDATION = "1c79a9d2-6fcb-4e10-7d40-78819b07781c"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ovs):
    if os.geteuid() != 0 or not HAVE_TOOLS:
        pytest.skip("needs root, iproute2 and ping")
    names, net = Names("wf"), NetEnv()
    stack = FlowStack(tmp_path_factory.mktemp("wfovs"), ovs.remote, ovs=ovs)
    br = names("br")
    try:
        stack.start()
        ovs.add_bridge(br)
        prefix = "10.%d.%d" % tuple(__import__("random").randint(1, 250) for _ in range(2))
        ends = []
        for i in (1, 2):
            n = net.add_netns(names("ns"))
            inner, outer = names("i"), names("o")
            net.add_veth(outer, inner, netns_a=ovs.netns, netns_b=n)
            ovs.vsctl("add-port", br, outer)
            net.ip("link", "set", outer, "up", netns=ovs.netns)
            net.ip("addr", "add", "%s.%d/24" % (prefix, i), "dev", inner, netns=n)
            net.ip("link", "set", inner, "up", netns=n)
            run(["ip", "netns", "exec", n, "ethtool", "-K", inner, "tx", "off"], check=False)
            ends.append({"ns": n, "inner": inner, "outer": outer, "ip": "%s.%d" % (prefix, i)})
        ovs.ip("link", "set", br, "up", check=False)
        for e in ends:
            q = "G.V().Has('Name','%s').Has('TID').Has('MAC').Has('IPV4')" % e["inner"]
            stack.wait_count(q, 1, timeout=20)
            e["tid"] = stack.q(q)[0]["Metadata"]["TID"]
        path = "G.V().Has('TID','%s').ShortestPathTo(Metadata('TID','%s'), Metadata('RelationType','layer2'))" % (
            ends[0]["tid"], ends[1]["tid"])
        stack.wait_q(path, lambda v: bool(v) and len(v[0]) == 7, timeout=20, message="the OVS path")
        run(["ip", "netns", "exec", ends[0]["ns"], "ping", "-c", "1", "-W", "2", ends[1]["ip"]], check=False)
        yield stack, ovs, br, ends
    finally:
        stack.stop()
        ovs.del_bridge(br)
        net.cleanup()


def call(stack, wid, *params, timeout=90):
    r = requests.post(stack.url + "/api/workflow/%s/call" % wid, json={"Params": list(params)}, timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json()


def flow_validation(stack, ends, protocol="icmp"):
    """FlowValidation on both ends while ping runs between them."""
    out = {}
    t = threading.Thread(target=lambda: out.update(r=call(stack, FLOW_VALIDATION, ends[0]["tid"], ends[1]["tid"], False,
                                                          protocol, None, None, None, 4)))
    t.start()
    run(["ip", "netns", "exec", ends[0]["ns"], "ping", "-c", "12", "-i", "0.3", "-W", "1", ends[1]["ip"]], check=False,
        timeout=30)
    t.join(60)
    return out["r"]


def test_workflows_true_then_false_when_the_path_is_cut(setup):
    stack, ovs, br, ends = setup
    src, dst = ends[0]["tid"], ends[1]["tid"]
    assert call(stack, CHECK_MTU, src, dst) is True
    res = call(stack, CHECK_CONNECTIVITY, src, dst)
    assert res["Connectivity"] is True, res
    assert res["Flows"] and all(f["ICMP"]["ID"] == res["Flows"][0]["ICMP"]["ID"] for f in res["Flows"])
    stack.wait_count("G.V().Has('Captures')", 0)      # the workflow deleted its capture
    assert requests.get(stack.url + "/api/capture", timeout=10).json() == {}
    res = flow_validation(stack, ends)
    assert res.get("Connectivity") is True, res
    # cut: the destination's switch port down (the path is still in the graph, packets are lost)
    ovs.ip("link", "set", ends[1]["outer"], "down")
    try:
        res = call(stack, CHECK_CONNECTIVITY, src, dst)
        assert res["Connectivity"] is False, res
        res = flow_validation(stack, ends)
        assert res["Connectivity"] is False and ends[1]["inner"] in {n["Metadata"]["Name"] for n in res["NotReachedNodes"]}, res
    finally:
        ovs.ip("link", "set", ends[1]["outer"], "up")
    # cut: the port removed from the bridge: no path
    ovs.vsctl("del-port", br, ends[1]["outer"])
    stack.wait_q("G.V().Has('TID','%s').ShortestPathTo(Metadata('TID','%s'), Metadata('RelationType','layer2'))" % (
        src, dst), lambda v: not v, timeout=20)
    assert call(stack, CHECK_MTU, src, dst) is False
    assert requests.get(stack.url + "/api/capture", timeout=10).json() == {}
