"""skydive_audit and skydive_topology_diff through real ansible-playbook runs against a live
analyzer (graph made through the node/edge API), and playbooks/audit.yml on an inventory whose
analyzer is that one: reports written, the play failing when a rule fails."""

import json
import os
import time

import requests

from tests.ansible.conftest import ANSIBLE_PLAYBOOK, run_command
from tests.audit.helpers import junit_failures, sarif_results
from tests.fixtures.processes import REPO

RULES = ("rules:\n  - name: mtu\n    severity: warning\n    query: \"G.V().Has('Name', Regex('am-.*')).Has('MTU', NE(1500))\"\n")


def _node(analyzer, nid, **md):
    r = requests.post(analyzer.url + "/api/node", json={"ID": nid, "Host": "am-h", "Metadata": md}, timeout=10)
    assert r.status_code == 201, r.text


def test_audit_and_diff_modules(analyzer, runner, tmp_path):
    _node(analyzer, "am-1", Name="am-1", Type="veth", MTU=1400)
    t0 = int(time.time() * 1000)
    time.sleep(0.3)
    requests.patch(analyzer.url + "/api/node/am-1", json=[{"op": "replace", "path": "/Metadata/MTU", "value": 1450}],
                   timeout=10).raise_for_status()
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    base = {"analyzer": analyzer.address}
    run = runner.play([
        {"name": "warn", "skydive.skydive.skydive_audit": dict(base, rules_files=[str(rules)], formats=["junit", "sarif"]),
         "check_mode": True},
        {"name": "fail", "skydive.skydive.skydive_audit": dict(base, rules_files=[str(rules)], fail_on="warning")},
        {"name": "inline", "skydive.skydive.skydive_audit": dict(base, rules=[
            {"name": "am-exists", "query": "G.V().Has('Name', 'am-1')", "expect": "nonempty"}])},
        {"name": "badrule", "skydive.skydive.skydive_audit": dict(base, rules=[{"name": "x", "query": "G.V()", "expect": "sometimes"}])},
        {"name": "norules", "skydive.skydive.skydive_audit": base},
        {"name": "diff", "skydive.skydive.skydive_topology_diff": dict(base, **{"from": str(t0), "gremlin": "G.V().Has('Name', 'am-1')"})},
        {"name": "diff_gate", "skydive.skydive.skydive_topology_diff": dict(
            base, fail_on_change=True, **{"from": str(t0), "gremlin": "G.V().Has('Name', 'am-1')"})},
        {"name": "diff_bad", "skydive.skydive.skydive_topology_diff": dict(base, **{"from": "whenever"})},
    ])
    warn = run["warn"]
    assert not warn.get("failed") and warn["changed"] is False and warn["summary"]["Failed"] == 1, warn
    (tmp_path / "w.xml").write_text(warn["reports"]["junit"])
    cases, dummy = junit_failures(tmp_path / "w.xml")
    assert cases[(str(rules), "mtu")]["failures"] == ["found am-1@am-h (veth)"]
    (tmp_path / "w.sarif").write_text(warn["reports"]["sarif"])
    assert list(sarif_results(tmp_path / "w.sarif")[0]) == ["%s/mtu" % rules]
    fail = run["fail"]
    assert fail["failed"] and "audit failed: 1 of 1 rules failed (1 violations)" in fail["msg"]
    assert fail["report"]["Files"][0]["Rules"][0]["Violations"][0]["Nodes"][0]["Name"] == "am-1"
    assert not run["inline"].get("failed") and run["inline"]["report"]["Files"][0]["Name"] == "inline"
    assert run["badrule"]["failed"] and "expect: must be empty, nonempty" in run["badrule"]["msg"]
    assert run["norules"]["failed"] and "no rules" in run["norules"]["msg"]
    diff = run["diff"]
    assert diff["changes"] == 1 and diff["diff"]["Nodes"]["Changed"][0]["Changes"] == {"MTU": {"Old": 1400, "New": 1450}}
    assert run["diff_gate"]["failed"] and "the topology changed: 1 elements" in run["diff_gate"]["msg"]
    assert run["diff_bad"]["failed"] and "'whenever' is not a time" in run["diff_bad"]["msg"]


def test_audit_playbook_writes_reports_and_fails(analyzer, ansible_env, tmp_path):
    _node(analyzer, "am-2", Name="am-2", Type="veth", MTU=1400)
    host, port = analyzer.address.rsplit(":", 1)
    inv = tmp_path / "inv.yml"
    inv.write_text(json.dumps({"all": {"children": {
        "analyzers": {"hosts": {"an1": {"ansible_connection": "local", "skydive_listen_ip": host,
                                        "skydive_analyzer_port": int(port), "skydive_auth_type": "noauth"}}},
        "agents": {"hosts": {"ag-missing": {"ansible_connection": "local"}}}}}}))
    reports = tmp_path / "reports"
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    extra = json.dumps({"skydive_audit_report_dir": str(reports), "skydive_audit_rules_files": [str(rules)],
                        "skydive_audit_scope": "G.V().Has('Name', Regex('am-.*'))"})
    cmd = [ANSIBLE_PLAYBOOK, "-i", str(inv), os.path.join(REPO, "playbooks", "audit.yml"), "-e", extra]
    proc = run_command(cmd, 300, env=ansible_env, cwd=str(tmp_path))
    assert proc.returncode != 0, proc.stdout
    assert (reports / "skydive-audit.txt").exists(), proc.stdout[-3000:]
    assert "the agent of host ag-missing is not connected" in open(str(reports / "skydive-audit.txt")).read()
    cases, dummy = junit_failures(reports / "skydive-audit.xml")
    assert cases[("builtin", "expected-agents-connected")]["failures"] == ["the agent of host ag-missing is not connected"]
    assert cases[(str(rules), "mtu")]["failures"]
    sarif_results(reports / "skydive-audit.sarif")
    assert json.load(open(str(reports / "skydive-audit.json")))["Failed"] is True
    assert "audit failed" in proc.stdout
