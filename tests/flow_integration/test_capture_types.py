"""Capture types against a real analyzer and agent: what the agent advertises (host node
`CaptureTypes`), the 400s for types no selected node can run and for options a type cannot do,
the capture's Port, and a capture failing on a node shown in GET /api/capture `Errors`."""

import os
import shutil

import pytest
import requests

from skydive_runtime.flow import capabilities
from tests.fixtures.processes import free_port
from tests.flow_integration.conftest import HAVE_TOOLS, FlowStack, Pair


def host_types(stack):
    (host,) = stack.q("G.V().Has('Type','host','Name','%s')" % stack.agent_host_id)
    return host["Metadata"]["CaptureTypes"]


def refused(stack, **body):
    r = stack.create_capture(**body)
    assert r.status_code == 400, r.text
    return r.text


def test_agent_advertises_what_this_host_runs(stack):
    from skydive_runtime.config import Config
    here = [t for t, why in capabilities.available_types(Config(stack.agent_cfg)).items() if why is None]
    assert host_types(stack) == here
    assert {"afpacket", "pcapsocket", "sflow"} <= set(here)
    status = requests.get(stack.agent.url + "/api/status", timeout=10).json()
    assert status["FlowProbes"] == here


def test_type_no_selected_node_can_take(stack, net, names):
    p = Pair(net, names)
    q = "G.V().Has('Name','%s')" % p.a
    stack.wait_count(q, 1)
    text = refused(stack, GremlinQuery=q, Type="ovssflow")
    assert "Type: no node the query selects can run this ovssflow capture" in text
    assert "%s@%s: veth nodes cannot take ovssflow captures" % (p.a, stack.agent_host_id) in text
    # no node yet: the capture waits for its nodes (upstream)
    r = stack.create_capture(GremlinQuery="G.V().Has('Name','%s')" % names("later"), Type="ovssflow")
    assert r.status_code == 201, r.text
    assert stack.delete_capture(r.json()["UUID"]).status_code == 200


@pytest.mark.parametrize("body, message", [
    ({"Type": "dpdk"}, "Type: dpdk capture is not implemented (available: afpacket, pcap"),
    ({"Type": "ovsnetflow", "BPFFilter": "icmp"}, "ovsnetflow capture doesn't support BPF filtering"),
    ({"Type": "dpdk"}, "Type: dpdk capture is not implemented"),
    ({"Type": "afpacket", "Port": 9000}, "Port: not supported by afpacket capture (only pcapsocket, sflow, ovssflow, ovsnetflow)"),
    ({"Type": "pcap", "SamplingRate": 10}, "SamplingRate: not supported by pcap capture (only ovssflow)"),
    ({"Type": "ebpf", "HeaderSize": 128}, "HeaderSize: not supported by ebpf capture"),
    ({"Type": "ebpf", "IPDefrag": True}, "IPDefrag: not supported by ebpf capture (only afpacket, pcap"),
    ({"Type": "afpacket", "ReassembleTCP": True}, "ReassembleTCP: not implemented (no extra layer needs it"),
    ({"Type": "ebpf", "ExtraLayers": ["DNS"]}, "ExtraLayers: not supported by ebpf capture (only afpacket, pcap, pcapsocket"),
    ({"Type": "ebpf", "Target": "192.0.2.9", "TargetType": "erspanv1"},
     "TargetType: erspanv1 mirrors packets: not supported by ebpf capture, which does not see them (only afpacket, pcap"),
    ({"Target": "192.0.2.999", "TargetType": "erspanv1"}, "Target: '192.0.2.999' is not an IPv4 address"),
    ({"TargetType": "erspanv1"}, "TargetType: erspanv1 needs a Target (the IPv4 address"),
    ({"TargetType": "netflowv5"}, "TargetType: netflowv5 needs a Target"),
    ({"Target": "[::1]:2055"}, "Target: '[::1]:2055' is not an ip:port address (IPv4)"),
])
def test_unsupported_option_named(stack, body, message):
    assert message in refused(stack, GremlinQuery="G.V().Has('Name','nothing-%s')" % os.urandom(3).hex(), **body)


def test_port_and_errors_on_the_node(stack, net, names):
    p = Pair(net, names)
    q = "G.V().Has('Name','%s')" % p.a
    stack.wait_count(q, 1)
    port = free_port()
    cid = stack.capture(GremlinQuery=q, Type="pcapsocket", Port=port)
    stack.wait_active(cid, q)
    (cap,) = [c for c in stack.node(p.a)["Metadata"]["Captures"] if c["ID"] == cid]
    assert cap["PCAPSocket"] == "127.0.0.1:%d" % port
    # the same port again on the other end cannot be bound: error on that node, in GET
    qb = "G.V().Has('Name','%s')" % p.b
    stack.wait_count(qb, 1)
    bad = stack.capture(GremlinQuery=qb, Type="pcapsocket", Port=port)
    try:
        stack.wait_q(qb + ".Has('Captures.ID', '%s', 'Captures.State', 'error').Count()" % bad, 1)
        got = requests.get(stack.url + "/api/capture/" + bad, timeout=10).json()
        (err,) = got["Errors"]
        node = stack.node(p.b)
        assert (err["NodeID"], err["Host"], err["Name"]) == (node["ID"], stack.agent_host_id, p.b)
        assert "no free pcapsocket port in %d-%d" % (port, port) in err["Error"]
        assert got["Count"] == 0
        assert "Errors" not in requests.get(stack.url + "/api/capture/" + cid, timeout=10).json()
        assert bad in requests.get(stack.url + "/api/capture", timeout=10).json()
    finally:
        assert stack.delete_capture(bad).status_code == 200
        assert stack.delete_capture(cid).status_code == 200


def _path_without(tmp_path, tool):
    """A PATH holding every tool of this PATH but `tool` (links in tmp_path)."""
    d = tmp_path / "bin"
    d.mkdir()
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(entry):
            continue
        for name in os.listdir(entry):
            src = os.path.join(entry, name)
            if name != tool and not (d / name).exists() and os.access(src, os.X_OK):
                (d / name).symlink_to(src)
    return str(d)


@pytest.fixture
def agent_without_ovs_vsctl(tmp_path, ovs, monkeypatch):
    """An agent beside the private switch whose PATH has no ovs-vsctl: it cannot run ovssflow."""
    if os.geteuid() != 0 or not HAVE_TOOLS or not shutil.which("ovs-vsctl"):
        pytest.skip("needs root, iproute2 and Open vSwitch")
    s = FlowStack(tmp_path / "stack", ovs.remote, ovs=ovs)
    try:
        s.start(agent=False)
        monkeypatch.setenv("PATH", _path_without(tmp_path, "ovs-vsctl"))
        s.start_agent()
        monkeypatch.undo()
        yield s
    finally:
        s.stop()


def test_type_the_agent_cannot_run(agent_without_ovs_vsctl, ovs, names):
    stack = agent_without_ovs_vsctl
    assert "ovssflow" not in host_types(stack) and "afpacket" in host_types(stack)
    br = names("sb")
    ovs.add_bridge(br)
    try:
        q = "G.V().Has('Name','%s','Type','ovsbridge')" % br
        stack.wait_count(q, 1)
        text = refused(stack, GremlinQuery=q, Type="ovssflow")
        assert "%s@%s: the agent of host %s cannot run ovssflow captures (it runs: afpacket" % (
            br, stack.agent_host_id, stack.agent_host_id) in text
        # untyped: ovssflow is the bridge's default, refused the same way
        assert "cannot run ovssflow captures" in refused(stack, GremlinQuery=q)
        # a type the agent runs on that bridge is accepted
        cid = stack.capture(GremlinQuery=q, Type="pcapsocket")
        stack.wait_active(cid, q)
        assert stack.delete_capture(cid).status_code == 200
    finally:
        ovs.del_bridge(br)
