"""`skydive client audit` on a real analyzer whose graph is made through the node/edge API (the
OpenStack metadata too): every check, `per`/`when`, rules on the diff, `--at`, rule-file errors
and exit codes, the JUnit (junitparser) and SARIF (2.1.0 schema) reports."""

import json
import time

import pytest
import requests

from skydive_runtime.api.audit.rules import read_rule_file
from tests.audit.helpers import cli, junit_failures, sarif_results
from tests.fixtures.processes import SkydiveProcess, analyzer_config

RULES = """
rules:
  - name: veth-mtu-1500
    description: every veth carries the standard MTU
    severity: error
    query: "G.V().Has('Type','veth').Has('MTU', NE(1500))"
    expect: empty
  - name: two-veths
    severity: info
    query: "G.V().Has('Type','veth')"
    expect: {count: "== 2"}
  - name: l2-mtu
    query: "G.E().Has('RelationType','layer2')"
    same: MTU
  - name: unique-mac
    severity: warning
    query: "G.V().HasKey('MAC')"
    unique: MAC
  - name: bridge-everywhere
    query: "G.V().Has('Type','ovsbridge','Name','br-int')"
    per: Host
    expect: nonempty
  - name: neutron-only
    when: "G.V().Has('Manager','neutron')"
    query: "G.V().Has('Type','veth')"
    expect: empty
"""


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    d = tmp_path_factory.mktemp("auditapi")
    proc = SkydiveProcess("analyzer", d, analyzer_config(d))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def node(url, nid, host="aa-h1", **md):
    r = requests.post(url + "/api/node", json={"ID": nid, "Host": host, "Metadata": md}, timeout=10)
    assert r.status_code == 201, r.text


def edge(url, eid, parent, child, **md):
    r = requests.post(url + "/api/edge", json={"ID": eid, "Parent": parent, "Child": child, "Metadata": md}, timeout=10)
    assert r.status_code == 201, r.text


def patch(url, nid, ops):
    requests.patch(url + "/api/node/" + nid, json=ops, timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def graph(analyzer):
    url = analyzer.url
    node(url, "aa-h1", Name="aa-h1", Type="host")
    node(url, "aa-h2", host="aa-h2", Name="aa-h2", Type="host")
    node(url, "aa-br1", Name="br-int", Type="ovsbridge")
    node(url, "aa-br2", host="aa-h2", Name="br-ex", Type="ovsbridge")
    node(url, "aa-v1", Name="v1", Type="veth", MTU=1500, MAC="02:00:00:00:00:01")
    node(url, "aa-v2", host="aa-h2", Name="v2", Type="veth", MTU=1400, MAC="02:00:00:00:00:01")
    edge(url, "aa-e1", "aa-v1", "aa-v2", RelationType="layer2", Type="veth")
    edge(url, "aa-o1", "aa-h1", "aa-br1", RelationType="ownership")
    edge(url, "aa-o2", "aa-h2", "aa-br2", RelationType="ownership")
    return url


def test_findings_in_every_format(analyzer, graph, tmp_path):
    rules = tmp_path / "net.yaml"
    rules.write_text(RULES)
    p = cli(analyzer.address, "audit", "--rules", str(rules), "--format", "json")
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    got = {r["Name"]: r for r in report["Files"][0]["Rules"]}
    assert {k: r["Status"] for k, r in got.items()} == {
        "veth-mtu-1500": "failed", "two-veths": "passed", "l2-mtu": "failed", "unique-mac": "failed",
        "bridge-everywhere": "failed", "neutron-only": "skipped"}
    v = got["veth-mtu-1500"]["Violations"]
    assert [n["Nodes"][0]["Name"] for n in v] == ["v2"] and v[0]["Nodes"][0]["Host"] == "aa-h2"
    assert got["l2-mtu"]["Violations"][0]["Values"] == {"MTU": [1500, 1400]}
    assert "MTU differs across the veth link: 1500 on v1@aa-h1, 1400 on v2@aa-h2" in got["l2-mtu"]["Violations"][0]["Message"]
    assert got["unique-mac"]["Violations"][0]["Message"].startswith("MAC 02:00:00:00:00:01 is held by 2 nodes")
    assert [x["Message"] for x in got["bridge-everywhere"]["Violations"]] == ["host aa-h2: the query found nothing"]
    assert report["Summary"]["Violations"] == 4 and report["Failed"] is True
    # junit through the CLI (the table on stdout), read by a JUnit parser
    out = tmp_path / "audit.xml"
    p = cli(analyzer.address, "audit", "--rules", str(rules), "--format", "junit", "--output", str(out))
    assert p.returncode == 1 and "FAILED  error   veth-mtu-1500" in p.stdout and "result: FAILED" in p.stdout
    cases, xml = junit_failures(out)
    name = str(rules)
    assert cases[(name, "veth-mtu-1500")]["failures"] == ["found v2@aa-h2 (veth)"]
    assert cases[(name, "two-veths")] == {"failures": [], "errors": [], "skipped": False}
    assert cases[(name, "neutron-only")]["skipped"] is True
    assert len(cases) == 6 and xml.tests == 6 and xml.failures == 4
    # sarif, rendered by the analyzer, valid against the 2.1.0 schema
    r = requests.post(analyzer.url + "/api/audit", json={"Files": [read_rule_file(name)], "Formats": ["sarif"]}, timeout=30)
    out = tmp_path / "audit.sarif"
    out.write_text(r.json()["Rendered"]["sarif"])
    results, doc = sarif_results(out)
    failing = ("veth-mtu-1500", "l2-mtu", "unique-mac", "bridge-everywhere")
    assert sorted(results) == sorted("%s/%s" % (name, r) for r in failing)
    loc = doc["runs"][0]["results"][0]["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == name and loc["physicalLocation"]["region"]["startLine"] == 3


def test_fail_on_and_exit_codes(analyzer, graph, tmp_path):
    rules = tmp_path / "w.yaml"
    rules.write_text("rules:\n  - name: w\n    severity: warning\n    query: \"G.V().Has('Name','v2')\"\n")
    assert cli(analyzer.address, "audit", "--rules", str(rules)).returncode == 0          # warning < error
    assert cli(analyzer.address, "audit", "--rules", str(rules), "--fail-on", "warning").returncode == 1
    for fail_on, failed in (("info", True), ("warning", True), ("error", False)):
        r = requests.post(analyzer.url + "/api/audit", json={"Files": [read_rule_file(str(rules))], "FailOn": fail_on},
                          timeout=30)
        assert r.json()["Failed"] is failed


@pytest.mark.parametrize("text,message", [
    ("rules: [{name: x}]", "rules[0] (rule x): query is required"),
    ("rules: [{name: x, query: 'G.V().Nope()'}]", "query: "),
    ("rules: [{name: x, query: 'G.V()', expect: {count: '~ 3'}}]", "expect: must be empty, nonempty or {count"),
    ("rules: [{name: x, query: 'G.V()', severity: fatal}]", "severity must be one of error, warning, info"),
    ("rules: [{name: x, query: 'G.V()', same: MTU, unique: MAC}]", "one check a rule, got same and unique"),
    ("rules: [{name: x, query: 'G.V()', colour: red}]", "unknown field colour"),
    ("rules: [{name: x, query: 'G.V()'}, {name: x, query: 'G.V()'}]", "rule name x appears twice"),
    ("rules: [{name: x, query: 'G.V()', per: Name}]", "only `per: Host`"),
    ("rules: [{name: x, query: 'G.V()', hosts: 'G.V()'}]", "hosts: only with `per: Host`"),
    ("- 1", "expected a mapping with a `rules` list"),
])
def test_rule_file_errors_are_400(analyzer, tmp_path, text, message):
    rules = tmp_path / "bad.yaml"
    rules.write_text(text)
    r = requests.post(analyzer.url + "/api/audit", json={"Files": [read_rule_file(str(rules))]}, timeout=30)
    assert r.status_code == 400 and message in r.text and str(rules) in r.text, r.text


def test_rule_file_errors_exit_2(analyzer, tmp_path):
    for text, message in (("rules:\n  - name: [", "not YAML"), ("rules: [{name: x}]", "query is required")):
        rules = tmp_path / "bad.yaml"
        rules.write_text(text)
        p = cli(analyzer.address, "audit", "--rules", str(rules))
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_bad_requests_are_400(analyzer):
    for body, message in (({}, "no rules"), ({"Builtin": True, "At": "later"}, "At: 'later' is not a time"),
                          ({"Builtin": True, "FailOn": "fatal"}, "FailOn"),
                          ({"Builtin": True, "Scope": "G.V().Count()"}, "must return a graph or nodes"),
                          ({"Builtin": True, "Formats": ["pdf"]}, "Formats"),
                          ({"Builtin": True, "Files": {"rules": []}}, "Files: expected a list")):
        r = requests.post(analyzer.url + "/api/audit", json=body, timeout=10)
        assert r.status_code == 400 and message in r.text, (body, r.text)


def test_at_finds_a_fault_fixed_since_and_diff_rule(analyzer, graph, tmp_path):
    url = analyzer.url
    node(url, "aa-d1", Name="aa-down", Type="device", State="DOWN", IPV4=["10.77.0.1/24"])
    time.sleep(0.3)
    t_fault = int(time.time() * 1000)
    time.sleep(0.3)
    patch(url, "aa-d1", [{"op": "replace", "path": "/Metadata/State", "value": "UP"}])
    time.sleep(0.3)
    rules = tmp_path / "down.yaml"
    rules.write_text("rules:\n  - name: down-with-address\n    query: \"G.V().Has('State','DOWN').HasKey('IPV4')\"\n"
                     "  - name: only-aa-down-changed\n    changed_since: %d\n"
                     "    query: \"G.V().Has('Name', Regex('aa-.*|v.'))\"\n    expect: empty\n" % t_fault)
    r = requests.post(url + "/api/audit", json={"Files": [read_rule_file(str(rules))]}, timeout=30)
    now = {x["Name"]: x for x in r.json()["Files"][0]["Rules"]}
    assert now["down-with-address"]["Status"] == "passed"
    assert [v["Message"] for v in now["only-aa-down-changed"]["Violations"]] == [
        "node changed: aa-down@aa-h1: State 'DOWN' -> 'UP'"]
    p = cli(analyzer.address, "audit", "--rules", str(rules), "--at", str(t_fault), "--format", "json")
    assert p.returncode == 1, p.stderr
    then = {r["Name"]: r for r in json.loads(p.stdout)["Files"][0]["Rules"]}
    assert [v["Nodes"][0]["Name"] for v in then["down-with-address"]["Violations"]] == ["aa-down"]
    assert then["only-aa-down-changed"]["Status"] == "passed"          # nothing changed up to --at


def test_builtin_openstack_rules_on_neutron_and_ovn_metadata(analyzer, graph):
    url = analyzer.url
    h = "aa-os"
    node(url, "os-host", host=h, Name=h, Type="host")
    node(url, "os-brint", host=h, Name="br-int", Type="ovsbridge")
    edge(url, "os-o1", "os-host", "os-brint", RelationType="ownership")
    # a tap with its Neutron port, a tap without (iface-id but no Neutron metadata)
    node(url, "os-tap1", host=h, Name="tapa1", Type="tun", MTU=1450, **{"ExtID": {"iface-id": "p1"}},
         Manager="neutron", Neutron={"PortID": "p1", "NetworkID": "n1"})
    node(url, "os-tap2", host=h, Name="tapa2", Type="tun", MTU=1450, **{"ExtID": {"iface-id": "p2"}})
    # OVN: lsp p1 bound (mapping edge to tapa1), lsp p3 of an instance unbound, a router port (ignored)
    node(url, "os-lsp1", host="", Name="p1", Type="LogicalSwitchPort", Manager="ovn", OVN={"Name": "p1", "Type": ""})
    node(url, "os-lsp3", host="", Name="p3", Type="LogicalSwitchPort", Manager="ovn", OVN={"Name": "p3", "Type": ""})
    node(url, "os-lsp4", host="", Name="p4", Type="LogicalSwitchPort", Manager="ovn", OVN={"Name": "p4", "Type": "router"})
    edge(url, "os-m1", "os-tap1", "os-lsp1", RelationType="mapping")
    r = requests.post(url + "/api/audit", json={"Builtin": True, "Scope": "G.V().Has('Name', Regex('aa-os|br-int|tapa.|p.')).SubGraph()",
                                                "ExpectedAgents": [h, "aa-missing"]}, timeout=30)
    assert r.status_code == 200, r.text
    got = {x["Name"]: x for x in r.json()["Files"][0]["Rules"]}
    msgs = {k: [v["Message"] for v in x["Violations"]] for k, x in got.items()}
    assert msgs["tap-has-neutron-port"] == ["found tapa2@aa-os (tun)"]
    assert msgs["neutron-port-has-tap"] == ["p3@- (LogicalSwitchPort) has no RelationType=mapping link"]
    assert msgs["tap-has-logical-port"] == ["tapa2@aa-os (tun) has no RelationType=mapping link"]
    assert msgs["expected-agents-connected"] == ["the agent of host aa-missing is not connected"]
    assert got["br-int-on-every-ovs-host"]["Status"] == "passed"
    assert got["br-ex-on-router-hosts"]["Status"] == "skipped" and got["br-tun-beside-br-int"]["Status"] == "skipped"
    failing = sorted(k for k, x in got.items() if x["Status"] == "failed")
    assert failing == ["expected-agents-connected", "neutron-port-has-tap", "tap-has-logical-port", "tap-has-neutron-port"]
