"""Build the canonical agent topology (spec §3.2) on an analyzer through POST /api/node and /api/edge.

host ─ownership→ eth0 (device), veth-ns1 (veth), netns ns1 ─ownership→ eth0 (veth, in ns1)
     ─ownership→ ovsbridge br-int ─ownership+layer2→ ovsport ─layer2→ veth-ns1
veth-ns1 ─layer2 {Type: veth}→ eth0 in ns1
"""

import time
import uuid

import requests


def _id(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(parts)))


def _now_ms():
    return int(time.time() * 1000)


def post_node(base, nid, host, metadata):
    body = {"ID": nid, "Metadata": metadata, "Host": host, "Origin": "", "CreatedAt": _now_ms(),
            "UpdatedAt": _now_ms(), "Revision": 1}
    r = requests.post(base + "/api/node", json=body, timeout=10)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


def post_edge(base, parent, child, relation, host="", **metadata):
    md = dict(metadata, RelationType=relation)
    body = {"ID": _id(parent, child, relation), "Parent": parent, "Child": child, "Metadata": md,
            "Host": host, "Origin": "", "CreatedAt": _now_ms(), "UpdatedAt": _now_ms(), "Revision": 1}
    r = requests.post(base + "/api/edge", json=body, timeout=10)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


def populate(base, host="ui-host-1", namespaces=2):
    """Create one host's topology; returns {name: node JSON} (names unique per host)."""
    nodes = {}

    def n(key, metadata):
        nodes[key] = post_node(base, _id(host, key), host, metadata)
        return nodes[key]["ID"]

    h = n("host", {"Name": host, "Type": "host", "Hostname": host})
    eth0 = n("eth0", {"Name": "eth0", "Type": "device", "MTU": 1500, "MAC": "52:54:00:12:34:56",
                      "IPV4": ["192.168.122.10/24"], "State": "UP", "IfIndex": 2,
                      "Metric": {"RxPackets": 1200, "RxBytes": 98000, "TxPackets": 800, "TxBytes": 64000,
                                 "Start": _now_ms() - 5000, "Last": _now_ms()}})
    post_edge(base, h, eth0, "ownership", host)
    br = n("br-int", {"Name": "br-int", "Type": "ovsbridge", "UUID": _id(host, "br-int-uuid")})
    post_edge(base, h, br, "ownership", host)
    for i in range(1, namespaces + 1):
        ns = n("ns%d" % i, {"Name": "ns%d" % i, "Type": "netns", "Path": "/var/run/netns/ns%d" % i})
        post_edge(base, h, ns, "ownership", host)
        inner = n("ns%d/eth0" % i, {"Name": "eth0", "Type": "veth", "State": "UP", "MTU": 1500,
                                     "IPV4": ["10.0.%d.2/24" % i], "IfIndex": 2})
        post_edge(base, ns, inner, "ownership", host)
        outer = n("veth-ns%d" % i, {"Name": "veth-ns%d" % i, "Type": "veth", "State": "UP", "MTU": 1500})
        post_edge(base, h, outer, "ownership", host)
        post_edge(base, outer, inner, "layer2", host, Type="veth")
        port = n("port-ns%d" % i, {"Name": "veth-ns%d" % i, "Type": "ovsport", "UUID": _id(host, "port", str(i))})
        post_edge(base, br, port, "ownership", host)
        post_edge(base, br, port, "layer2", host)
        post_edge(base, port, outer, "layer2", host)
    return nodes
