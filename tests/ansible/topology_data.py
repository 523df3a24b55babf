"""The topology the inventory tests put into a live analyzer (REST POST /api/node and /api/edge)
and that tests/unit/plugins/inventory/fixtures/topology.json records (GET /api/topology of that
analyzer; kept there only, since tests/unit ships with the collection and ansible-test runs it).

It looks like what two agents and a static switch give: host nodes owning their interfaces,
a netns and an OVS bridge, one interface carrying an active capture, and a ToR switch declared
with skydive_node.
"""

import json
import os

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
RECORDED = os.path.join(HERE, "..", "unit", "plugins", "inventory", "fixtures", "topology.json")


def _node(ident, name, node_type, host, **metadata):
    metadata.update(Name=name, Type=node_type)
    return {"ID": ident, "Metadata": metadata, "Host": host}


def _own(parent, child):
    return {"ID": "own-%s-%s" % (parent, child), "Parent": parent, "Child": child,
            "Metadata": {"RelationType": "ownership"}}


def topology():
    nodes = [
        _node("h-compute-0", "compute-0", "host", "compute-0", Hostname="compute-0.example.com",
              OS="linux", Role="compute", Manager="tripleo"),
        _node("c0-lo", "lo", "device", "compute-0", IfIndex=1, MTU=65536, State="UP", EncapType="loopback",
              IPV4=["127.0.0.1/8"], IPV6=["::1/128"]),
        _node("c0-eth0", "eth0", "device", "compute-0", IfIndex=2, MTU=1500, State="UP", MAC="52:54:00:00:00:01",
              Driver="virtio_net", IPV4=["192.0.2.10/24"], IPV6=["2001:db8::10/64", "fe80::5054:ff:fe00:1/64"]),
        _node("c0-eth1", "eth1", "device", "compute-0", IfIndex=3, MTU=9000, State="DOWN", MAC="52:54:00:00:01:01",
              IPV4=["198.51.100.10/24"]),
        _node("c0-brint", "br-int", "ovsbridge", "compute-0", UUID="0d4f6c1e-br-int"),
        _node("c0-ns", "qrouter-1", "netns", "compute-0", Path="/var/run/netns/qrouter-1"),
        _node("c0-tap", "tap1", "veth", "compute-0", IfIndex=7, MTU=1450, State="UP", MAC="fa:16:3e:00:00:07",
              Captures=[{"ID": "cap-uuid-1", "Name": "web", "State": "active", "Type": "afpacket"},
                        {"ID": "cap-uuid-2", "Name": "broken", "State": "error", "Error": "no such device"}]),
        _node("h-compute-1", "compute-1", "host", "compute-1", Hostname="compute-1.example.com",
              OS="linux", Role="compute"),
        _node("c1-eth0", "eth0", "device", "compute-1", IfIndex=2, MTU=1500, State="UP", MAC="52:54:00:00:00:02",
              IPV4=["192.0.2.11/24"], IPV6=["2001:db8::11/64"]),
        _node("h-controller-0", "controller-0", "host", "controller-0", Hostname="controller-0.example.com",
              OS="linux", Role="controller", ManagementIP="203.0.113.5"),
        _node("ct0-eth0", "eth0", "device", "controller-0", IfIndex=2, MTU=1500, State="UP",
              MAC="52:54:00:00:00:03", IPV4=["192.0.2.20/24"]),
        _node("tor1", "tor1", "switch", "", Model="QFX5100", ManagementIP="203.0.113.254/24"),
    ]
    edges = [_own("h-compute-0", c) for c in ("c0-lo", "c0-eth0", "c0-eth1", "c0-brint", "c0-ns", "c0-tap")]
    edges += [_own("h-compute-1", "c1-eth0"), _own("h-controller-0", "ct0-eth0")]
    edges += [{"ID": "l2-tor1-c0-eth1", "Parent": "tor1", "Child": "c0-eth1",
               "Metadata": {"RelationType": "layer2", "Type": "fabric"}}]
    return nodes, edges


def populate(url):
    """POST the topology to the analyzer at ``url``."""
    nodes, edges = topology()
    for node in nodes:
        resp = requests.post(url + "/api/node", json=node, timeout=10)
        assert resp.status_code in (200, 201), resp.text
    for edge in edges:
        resp = requests.post(url + "/api/edge", json=edge, timeout=10)
        assert resp.status_code in (200, 201), resp.text


def record(url, path=RECORDED):
    """Write GET /api/topology of the analyzer at ``url`` to ``path`` (regenerates the fixture)."""
    resp = requests.get(url + "/api/topology", timeout=10)
    resp.raise_for_status()
    data = resp.json()
    data["Nodes"].sort(key=lambda n: n["ID"])
    data["Edges"].sort(key=lambda e: e["ID"])
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return data
