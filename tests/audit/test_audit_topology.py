"""Audits of a real topology (namespaces, veths, a Linux bridge, Open vSwitch with a VXLAN
tunnel; the agent beside the private switch) with planted misconfigurations: a veth pair with
MTU 1400 on one end, a DOWN interface holding an address, the same IP in two namespaces, a
missing bridge, an OVS port on a device that does not exist, a VXLAN tunnel whose payload MTU
does not fit its underlay. The audit finds exactly those, in every format; `--at` finds the MTU
fault after it is fixed, and the diff between before and after the fix lists only that change."""

import json
import os
import random
import time

import pytest
import requests

from tests.audit.helpers import cli, junit_failures, sarif_results
from tests.fixtures.topology import Names, NetEnv
from tests.flow_integration.conftest import HAVE_TOOLS, FlowStack


@pytest.fixture(scope="module")
def topo(tmp_path_factory, ovs):
    if os.geteuid() != 0 or not HAVE_TOOLS:
        pytest.skip("needs root and iproute2")
    names, net = Names("au"), NetEnv()
    stack = FlowStack(tmp_path_factory.mktemp("audit"), ovs.remote, ovs=ovs)
    p = "10.%d.%d" % (random.randint(100, 250), random.randint(1, 250))
    t = {"names": names, "prefix": p, "stack": stack, "ovs": ovs}
    bridges = []
    try:
        stack.start()
        # 1. veth pair between two namespaces, MTU 1400 on one end
        ns1, ns2 = net.add_netns(names("ns")), net.add_netns(names("ns"))
        t["va"], t["vb"] = names("va"), names("vb")
        net.add_veth(t["va"], t["vb"], netns_a=ns1, netns_b=ns2)
        net.ip("link", "set", t["vb"], "mtu", "1400", netns=ns2)
        for ns, v, ip in ((ns1, t["va"], p + ".1"), (ns2, t["vb"], p + ".2")):
            net.ip("addr", "add", ip + "/24", "dev", v, netns=ns)
            net.ip("link", "set", v, "up", netns=ns)
        t["ns2"] = ns2
        # 2. a DOWN interface holding an address
        ns3 = net.add_netns(names("ns"))
        t["down"] = names("dn")
        net.add_veth(t["down"], names("dp"), netns_a=ns3, netns_b=ns3)      # no dummy module here: veth pairs
        net.ip("addr", "add", "10.%d.9.1/24" % random.randint(1, 99), "dev", t["down"], netns=ns3)
        # 3. the same IP in two namespaces
        t["dup"] = []
        dup_ip = "10.%d.%d.7/24" % (random.randint(1, 99), random.randint(1, 250))
        for _ in range(2):
            ns = net.add_netns(names("ns"))
            d = names("du")
            net.add_veth(d, names("dp"), netns_a=ns, netns_b=ns)
            net.ip("addr", "add", dup_ip, "dev", d, netns=ns)
            net.ip("link", "set", d, "up", netns=ns)
            t["dup"].append(d)
        t["dup_ip"] = dup_ip.split("/")[0]
        # a clean Linux bridge with two veth members towards two namespaces
        ns6 = net.add_netns(names("ns"))
        lbr = names("lb")
        net.add_link(lbr, "bridge", netns=ns6)
        for _ in range(2):
            nsx = net.add_netns(names("ns"))
            m, peer = names("m"), names("mp")
            net.add_veth(m, peer, netns_a=ns6, netns_b=nsx)
            net.ip("link", "set", m, "master", lbr, netns=ns6)
            net.ip("link", "set", m, "up", netns=ns6)
            net.ip("link", "set", peer, "up", netns=nsx)
        net.ip("link", "set", lbr, "up", netns=ns6)
        # Open vSwitch: the integration bridge with a namespace's port, a port on a missing device,
        # a VXLAN tunnel over an underlay of MTU 1500 while the bridge's ports carry 1500
        t["int"], t["tun"] = names("int"), names("tun")      # only `int` is made: `tun` is the missing bridge
        ovs.add_bridge(t["int"])
        bridges.append(t["int"])
        nsv = net.add_netns(names("ns"))
        t["port"], inner = names("po"), names("pi")
        net.add_veth(t["port"], inner, netns_a=ovs.netns, netns_b=nsv)
        ovs.vsctl("add-port", t["int"], t["port"])
        ovs.ip("link", "set", t["port"], "up")
        net.ip("link", "set", inner, "up", netns=nsv)
        t["ghost"] = names("gh")
        ovs.vsctl("add-port", t["int"], t["ghost"])
        t["underlay"] = names("ul")
        net.add_veth(t["underlay"], names("up"), netns_a=ovs.netns, netns_b=ovs.netns)
        subnet = "192.168.%d" % random.randint(1, 250)
        local = subnet + ".1"
        ovs.ip("addr", "add", local + "/24", "dev", t["underlay"])
        ovs.ip("link", "set", t["underlay"], "up")
        t["vx"] = names("vx")
        ovs.vsctl("add-port", t["int"], t["vx"], "--", "set", "interface", t["vx"], "type=vxlan",
                  "options:remote_ip=%s.2" % subnet,
                  "options:local_ip=%s" % local)
        t["scope"] = "G.V().HasEither('Name', Regex('au%s.*'), 'Type', 'host').SubGraph()" % names.tag
        st = stack
        st.wait_q("G.V().Has('Name', Regex('au%s.*')).Count()" % names.tag, lambda v: v >= 34, timeout=30)
        st.wait_count("G.V().Has('Name', '%s', 'Ovs.Error', NE(''))" % t["ghost"], 1, timeout=20)
        st.wait_count("G.V().Has('Name', '%s').HasKey('LocalIP')" % t["vx"], 1, timeout=20)
        st.wait_count("G.V().Has('Name', '%s', 'MTU', 1400)" % t["vb"], 1, timeout=20)
        st.wait_count("G.V().Has('Name', '%s').Both('Type', 'veth')" % t["va"], 1, timeout=20)
        st.wait_count("G.V().Has('Name', '%s').HasKey('IPV4')" % t["down"], 1, timeout=20)
        yield t
    finally:
        stack.stop()
        for b in bridges:
            ovs.del_bridge(b)
        net.cleanup()


def rules_file(tmp_path, t):
    path = tmp_path / "site.yaml"
    path.write_text("""rules:
  - name: veth-mtu-1500
    description: every veth carries the standard MTU
    severity: error
    query: "G.V().Has('Type','veth').Has('MTU', NE(1500))"
    expect: empty
  - name: bridges-present
    description: the integration and tunnel bridges exist on every host
    query: "G.V().Has('Type', 'ovsbridge', 'Name', Within('%s', '%s'))"
    per: Host
    expect: {count: "== 2"}
  - name: tunnel-bridge-present
    query: "G.V().Has('Type', 'ovsbridge', 'Name', '%s')"
    per: Host
    expect: nonempty
""" % (t["int"], t["tun"], t["tun"]))
    return str(path)


def expected_findings(t):
    n = t["names"]
    return {
        ("builtin", "l2-mtu-consistent"): 1,
        ("builtin", "tunnel-mtu-fits-underlay"): 1,
        ("builtin", "down-interface-with-address"): 1,
        ("builtin", "ovs-interface-error"): 1,
        ("builtin", "unique-ipv4"): 1,
        ("site", "veth-mtu-1500"): 1,
        ("site", "bridges-present"): 1,
        ("site", "tunnel-bridge-present"): 1,
    }, n


def audit_json(t, rules, at=None, formats=()):
    """The report of the built-in pack + the site rules through POST /api/audit."""
    from skydive_runtime.api.audit.rules import read_rule_file
    body = {"Builtin": True, "Files": [read_rule_file(rules)], "Scope": t["scope"], "At": at, "Formats": list(formats)}
    r = requests.post(t["stack"].url + "/api/audit", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def findings(report):
    out = {}
    for f in report["Files"]:
        short = "builtin" if f["Name"] == "builtin" else "site"
        for r in f["Rules"]:
            assert r["Status"] != "error", r
            if r["Violations"]:
                out[(short, r["Name"])] = r["Violations"]
    return out


def test_planted_faults_found_exactly_in_every_format(topo, tmp_path):
    t = topo
    rules = rules_file(tmp_path, t)
    report = audit_json(t, rules, formats=["sarif"])
    got = findings(report)
    expected, _ = expected_findings(t)
    assert {k: len(v) for k, v in got.items()} == expected, json.dumps(got, indent=1)[:4000]
    l2 = got[("builtin", "l2-mtu-consistent")][0]
    assert {n["Name"] for n in l2["Nodes"]} == {t["va"], t["vb"]} and l2["Values"] == {"MTU": [1500, 1400]} or \
        l2["Values"] == {"MTU": [1400, 1500]}
    assert got[("site", "veth-mtu-1500")][0]["Nodes"][0]["Name"] == t["vb"]
    assert got[("site", "veth-mtu-1500")][0]["Nodes"][0]["Namespace"] == t["ns2"]
    assert got[("builtin", "down-interface-with-address")][0]["Nodes"][0]["Name"] == t["down"]
    dup = got[("builtin", "unique-ipv4")][0]
    assert {n["Name"] for n in dup["Nodes"]} == set(t["dup"]) and dup["Values"] == {"IPV4": t["dup_ip"]}
    assert got[("builtin", "ovs-interface-error")][0]["Nodes"][0]["Name"] == t["ghost"]
    tun = got[("builtin", "tunnel-mtu-fits-underlay")][0]
    assert tun["Values"] == {"InnerMTU": 1500, "Overhead": 50, "UnderlayMTU": 1500}
    assert [n["Name"] for n in tun["Nodes"][:2]] == [t["vx"], t["underlay"]]
    host = t["stack"].agent_host_id
    assert got[("site", "tunnel-bridge-present")][0]["Message"] == "host %s: the query found nothing" % host
    assert got[("site", "bridges-present")][0]["Message"] == "host %s: count is 1, expected == 2" % host
    assert report["Failed"] is True
    for v in got.values():
        for n in v[0].get("Nodes") or ():
            assert n["Host"] == host and n["TID"], n            # Host, Name, Type, TID of each node named
    # JUnit: one suite per file, one case per rule, one failure per violation
    out = tmp_path / "a.xml"
    p = cli(t["stack"].analyzer.address, "audit", "--builtin", "--rules", rules, "--scope", t["scope"],
            "--format", "junit", "--output", str(out))
    assert p.returncode == 1, p.stderr
    cases, xml = junit_failures(out)
    failing = {(("builtin" if s == "builtin" else "site"), c): len(r["failures"]) for (s, c), r in cases.items() if r["failures"]}
    assert failing == expected
    assert [s.name for s in xml] == ["builtin", rules] and xml.failures == len(expected)
    assert not any(r["errors"] for r in cases.values())
    assert "result: FAILED" in p.stdout           # with --output, the table on stdout
    assert sum(line.startswith("  FAILED") for line in p.stdout.splitlines()) == len(expected)
    # SARIF 2.1.0 (the same audit's, rendered by the analyzer)
    out = tmp_path / "a.sarif"
    out.write_text(report["Rendered"]["sarif"])
    results, doc = sarif_results(out)
    assert {("site" if "/" in rid else "builtin", rid.rsplit("/", 1)[-1]): len(m) for rid, m in results.items()} == expected


def settle(t, quiet_s=1.5, timeout=20):
    """Wait until nothing in the scope changes for quiet_s (late IPv6 link-local addresses,
    routes): the diff must then see the test's change only."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        t0 = int(time.time() * 1000)
        time.sleep(quiet_s)
        r = requests.post(t["stack"].url + "/api/topology/diff", json={"From": t0, "GremlinFilter": t["scope"]}, timeout=30)
        d = r.json()
        if not any(d[p][k] for p in ("Nodes", "Edges") for k in ("Added", "Removed", "Changed")):
            return
    raise AssertionError("the topology under %s kept changing" % t["scope"])


def test_at_finds_the_fixed_fault_and_diff_lists_only_the_fix(topo, tmp_path):
    t = topo
    st = t["stack"]
    rules = rules_file(tmp_path, t)
    settle(t)
    before = int(time.time() * 1000)
    time.sleep(0.5)
    NetEnv().ip("link", "set", t["vb"], "mtu", "1500", netns=t["ns2"])
    st.wait_count("G.V().Has('Name', '%s', 'MTU', 1500)" % t["vb"], 1, timeout=20)
    time.sleep(0.5)
    after = int(time.time() * 1000)
    now = audit_json(t, rules)
    assert ("builtin", "l2-mtu-consistent") not in findings(now) and ("site", "veth-mtu-1500") not in findings(now)
    then = audit_json(t, rules, at=before)
    assert findings(then)[("builtin", "l2-mtu-consistent")][0]["Values"]["MTU"] in ([1500, 1400], [1400, 1500])
    assert findings(then)[("site", "veth-mtu-1500")][0]["Nodes"][0]["Name"] == t["vb"]
    # the diff between before and after the change: that change only
    p = cli(st.analyzer.address, "topology", "diff", "--from", str(before), "--to", str(after), "--gremlin", t["scope"],
            "--format", "json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert not d["Nodes"]["Added"] and not d["Nodes"]["Removed"] and not any(d["Edges"].values())
    assert [(c["Name"], c["Changes"]) for c in d["Nodes"]["Changed"]] == [(t["vb"], {"MTU": {"Old": 1400, "New": 1500}})]
    # a rule on the diff: "nothing but the MTU of vb changed"
    gate = tmp_path / "gate.yaml"
    gate.write_text("rules:\n  - name: only-mtu\n    changed_since: %d\n    changed_until: %d\n    query: \"%s\"\n"
                    "    ignore: [MTU, Metric, LastUpdateMetric]\n" % (before, after, t["scope"].replace('"', '\\"')))
    p = cli(st.analyzer.address, "audit", "--rules", str(gate))
    assert p.returncode == 0, p.stdout + p.stderr
