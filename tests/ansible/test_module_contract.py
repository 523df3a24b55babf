"""The idempotence, check mode and diff contract every state module keeps, from one declaration
per module: real `ansible-playbook --diff` runs against a live analyzer, the analyzer read back
over REST between the steps.

present in check mode (changed, nothing created), present (changed, created, diff), present again
(not changed), absent in check mode (changed, nothing deleted), absent (changed, gone), absent
again (not changed). What is particular to a module (drift, bad input, waits) stays in
test_modules.py.
"""

import pytest
import requests

pytestmark = [pytest.mark.ansible]


class ModuleContract:
    """present: the module's options; absent: those of state=absent (default present + state);
    resource/owns: the REST collection and the predicate selecting what the task manages;
    nodes: graph nodes the task refers to, created over REST first."""

    def __init__(self, module, present, resource, owns, absent=None, nodes=()):
        self.module = "skydive.skydive.skydive_" + module
        self.name = module
        self.present = present
        self.absent = absent or dict(present, state="absent")
        self.resource = resource
        self.owns = owns
        self.nodes = nodes

    def __repr__(self):
        return self.name


def _named(name):
    return lambda r: r.get("Name") == name


CONTRACTS = [
    ModuleContract("node", {"name": "mc-node", "node_type": "switch", "metadata": {"Rack": "r1"}},
                   "node", lambda n: n["Metadata"].get("Name") == "mc-node"),
    ModuleContract("edge", {"parent_node": "mc-edge-a", "child_node": "G.V().Has('Name', 'mc-edge-b')",
                            "relation_type": "layer2", "metadata": {"Speed": "25G"}},
                   "edge", lambda e: (e["Parent"], e["Child"]) == ("mc-edge-a", "mc-edge-b"),
                   nodes=[("mc-edge-a", "switch", {}), ("mc-edge-b", "device", {})]),
    ModuleContract("capture", {"query": "G.V().Has('Name', 'mc-cap-if')", "capture_name": "mc-cap",
                               "bpf_filter": "icmp"}, "capture", _named("mc-cap")),
    ModuleContract("injection", {"src": "G.V().Has('Name', 'mc-inj-src')", "dst": "G.V().Has('Name', 'mc-inj-dst')",
                                 "count": 2, "interval": 10},
                   "injectpacket", lambda i: i["Src"] == "G.V().Has('Name', 'mc-inj-src')",
                   nodes=[("mc-inj-src", "veth", {"IPV4": ["10.66.0.1/24"], "MAC": "02:00:00:66:00:01"}),
                          ("mc-inj-dst", "veth", {"IPV4": ["10.66.0.2/24"], "MAC": "02:00:00:66:00:02"})]),
    ModuleContract("alert", {"name": "mc-alert", "expression": "G.V().Has('State', 'DOWN')"}, "alert",
                   _named("mc-alert"), absent={"name": "mc-alert", "state": "absent"}),
    ModuleContract("node_rule", {"name": "mc-nr", "action": "create", "node_name": "mc-nr1", "node_type": "fabric"},
                   "noderule", _named("mc-nr"), absent={"name": "mc-nr", "state": "absent"}),
    ModuleContract("edge_rule", {"name": "mc-er", "src": "G.V().Has('Name', 'mc-er-a')",
                                 "dst": "G.V().Has('Name', 'mc-er-b')", "relation_type": "layer2"},
                   "edgerule", _named("mc-er"), absent={"name": "mc-er", "state": "absent"}),
]


def _owned(analyzer, contract, listing=None):
    if listing is None:
        resp = requests.get("%s/api/%s" % (analyzer.url, contract.resource), timeout=10)
        assert resp.status_code == 200, resp.text
        listing = resp.json()
    return [r for r in listing.values() if contract.owns(r)]


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.name for c in CONTRACTS])
def test_check_mode_idempotence_and_diff(analyzer, runner, contract):
    for ident, node_type, md in contract.nodes:
        resp = requests.post(analyzer.url + "/api/node", timeout=10, json={
            "ID": ident, "Host": "mc-host", "Metadata": dict(md, Name=ident, Type=node_type)})
        assert resp.status_code == 201, resp.text
    listing = {"ansible.builtin.uri": {"url": "%s/api/%s" % (analyzer.url, contract.resource),
                                       "return_content": True}}
    task = contract.module
    run = runner.play([
        {"name": "check_present", task: contract.present, "check_mode": True},
        dict(listing, name="after_check_present"),
        {"name": "present", task: contract.present},
        dict(listing, name="after_present"),
        {"name": "present_again", task: contract.present},
        {"name": "check_absent", task: contract.absent, "check_mode": True},
        dict(listing, name="after_check_absent"),
        {"name": "absent", task: contract.absent},
        dict(listing, name="after_absent"),
        {"name": "absent_again", task: contract.absent},
    ], module_defaults={"group/skydive.skydive.skydive": {"analyzer": analyzer.address}}, extra_args=["--diff"])
    for name in ("check_present", "present", "present_again", "check_absent", "absent", "absent_again"):
        assert not run[name].get("failed"), (name, run[name].get("msg"))

    def owned(step):
        return _owned(analyzer, contract, run[step]["json"])

    check = run["check_present"]
    assert check["changed"] is True and owned("after_check_present") == []
    assert check["diff"]["before"] == {} and check["diff"]["after"]

    present = run["present"]
    created = owned("after_present")
    assert present["changed"] is True and len(created) == 1
    assert present["diff"]["before"] == {} and present["diff"]["after"]
    key = "UUID" if "UUID" in created[0] else "ID"
    assert present["id"] == created[0][key]
    assert "+++ after" in run.stdout      # --diff printed it

    again = run["present_again"]
    assert again["changed"] is False and again["id"] == present["id"]
    assert again["diff"]["before"] == again["diff"]["after"]

    check_absent = run["check_absent"]
    assert check_absent["changed"] is True and check_absent["diff"]["after"] == {}
    assert check_absent["diff"]["before"]
    assert [r[key] for r in owned("after_check_absent")] == [present["id"]]

    assert run["absent"]["changed"] is True and owned("after_absent") == []
    assert run["absent_again"]["changed"] is False
    assert _owned(analyzer, contract) == []
