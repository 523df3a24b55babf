"""Ping-mesh (POST /api/pingmesh, `skydive client injection ping-mesh`) between three namespaces on
a Linux bridge, one of whose bridge ports is DOWN: a 3x3 matrix, RTTs and no loss between the two
reachable ones, 100 % loss to and from the third, nothing left behind (captures, injections)."""

import json
import os
import random
import subprocess
import sys

import pytest
import requests

from skydive_runtime.cli.mesh_table import mesh_table
from tests.fixtures.topology import run

pytestmark = pytest.mark.needs_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ping_mesh_three_namespaces_one_down(stack, net, names):
    prefix = "10.%d.%d" % (random.randint(100, 250), random.randint(1, 250))
    br = names("pb")
    net.add_link(br, "bridge")
    inner, outer, nss = [], [], []
    for i in (1, 2, 3):
        ns = net.add_netns(names("pn"))
        a, pa = names("pi"), names("po")
        net.add_veth(pa, a, netns_b=ns)
        net.ip("link", "set", pa, "master", br)
        net.ip("link", "set", pa, "up")
        net.ip("addr", "add", "%s.%d/24" % (prefix, i), "dev", a, netns=ns)
        net.ip("link", "set", a, "up", netns=ns)
        inner.append(a), outer.append(pa), nss.append(ns)
    net.ip("link", "set", br, "up")
    for ns in nss[:2]:                 # neighbours learnt, then the third port goes down
        for i in (1, 2, 3):
            run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "%s.%d" % (prefix, i)], check=False)
    net.ip("link", "set", outer[2], "down")
    q = "G.V().Has('Name', Within(%s))" % ", ".join("'%s'" % a for a in inner)
    stack.wait_count(q + ".Has('IPV4')", 3)
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-m", "skydive_runtime.cli.main", "client", "--analyzer", stack.analyzer.address,
                        "injection", "ping-mesh", "--src", q, "--dst", q, "--count", "3", "--interval", "100",
                        "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    mesh = json.loads(p.stdout)
    ids = {mesh["Nodes"][n]["Name"]: n for n in mesh["Nodes"]}
    assert sorted(ids) == sorted(inner) and sorted(mesh["Src"]) == sorted(mesh["Dst"]) == sorted(ids.values())
    m = mesh["Matrix"]
    assert len(m) == 3 and all(len(row) == 3 for row in m.values())
    one, two, three = (ids[a] for a in inner)
    for s, d in ((one, two), (two, one)):
        cell = m[s][d]
        assert (cell["Sent"], cell["Received"], cell["Loss"]) == (3, 3, 0.0), cell
        assert 0 < cell["RTT"]["Min"] <= cell["RTT"]["Avg"] <= cell["RTT"]["Max"] < 1000
    for s, d in ((one, three), (two, three), (three, one), (three, two)):
        cell = m[s][d]
        assert cell.get("Error") or (cell["Received"] == 0 and cell["Loss"] == 100.0 and "RTT" not in cell), cell
    assert m[one][one] is None and m[three][three] is None
    text = mesh_table(mesh)
    assert text.splitlines()[0].startswith("icmp4 x 3, 100 ms") and "(0% loss)" in text and "(100% loss)" in text
    # nothing left behind
    assert not [c for c in requests.get(stack.url + "/api/capture", timeout=5).json().values()
                if c.get("Name", "").startswith("ping-mesh")]
    assert requests.get(stack.url + "/api/injectpacket", timeout=5).json() == {}


@pytest.mark.parametrize("body, message", [
    ({"Dst": "G.V()"}, "Src: a Gremlin query selecting the source nodes is required"),
    ({"Src": "G.V()", "Dst": "G.V()", "Type": "tcp4"}, "Type: 'tcp4' is not supported (icmp4, icmp6)"),
    ({"Src": "G.V()", "Dst": "G.V()", "Count": 0}, "Count: an integer between 1 and 100"),
    ({"Src": "G.V().Has('Name','nothing-here')", "Dst": "G.V()"}, "Src selects no node"),
    ({"Src": "G.V().Nope(", "Dst": "G.V()"}, "query G.V().Nope( failed"),
])
def test_ping_mesh_bad_requests(stack, body, message):
    r = requests.post(stack.url + "/api/pingmesh", json=body, timeout=10)
    assert r.status_code == 400 and message in r.text, r.text
