"""The built-in workflows on a real analyzer: listed with upstream's UUIDs and parameters, not
deletable, user (JavaScript) workflows refused; CheckMTU and FlowMatrix on nodes made through
the node/edge API (the capture-and-inject workflows run on a real OVS in test_workflows_ovs.py)."""

import pytest
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config

UUIDS = {"CheckConnectivity": "85757b38-6e21-11e8-b42d-28d2442e1329",
         "CheckMTU": "85757b38-6e21-11e8-b42d-28d2442e1325",
         "FlowMatrix": "bcc2e200-7a57-11e8-913c-28d2442e1325",
         "FlowValidation": "1c79a9d2-6fcb-4e10-7d40-78819b07781c"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    d = tmp_path_factory.mktemp("wfapi")
    proc = SkydiveProcess("analyzer", d, analyzer_config(d))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _post(analyzer, path, body):
    return requests.post(analyzer.url + path, json=body, timeout=30)


def _node(analyzer, nid, **md):
    md.setdefault("Type", "device")
    r = _post(analyzer, "/api/node", {"ID": nid, "Host": md.pop("Host", "wfh"), "Metadata": md})
    assert r.status_code == 201, r.text


def _edge(analyzer, eid, parent, child, rel="layer2"):
    r = _post(analyzer, "/api/edge", {"ID": eid, "Parent": parent, "Child": child, "Metadata": {"RelationType": rel}})
    assert r.status_code == 201, r.text


def call(analyzer, ident, *params):
    return _post(analyzer, "/api/workflow/%s/call" % ident, {"Params": list(params)})


def test_builtins_listed_with_upstream_uuids_and_parameters(analyzer):
    listed = requests.get(analyzer.url + "/api/workflow", timeout=10).json()
    assert {w["Name"]: uid for uid, w in listed.items()} == UUIDS
    fv = listed[UUIDS["FlowValidation"]]
    assert [p["Name"] for p in fv["Parameters"]] == ["Checkpoint-1", "Checkpoint-2", "All", "Protocol", "Source-IP",
                                                     "Destination-IP", "ID/Port", "Time"]
    assert [v["Value"] for v in fv["Parameters"][3]["Values"]] == ["icmp", "tcp", "udp"]
    assert fv["Parameters"][7]["Default"] == 5 and fv["BuiltIn"] is True
    got = requests.get(analyzer.url + "/api/workflow/" + UUIDS["CheckMTU"], timeout=10).json()
    assert [p["Type"] for p in got["Parameters"]] == ["node", "node"]
    r = requests.delete(analyzer.url + "/api/workflow/" + UUIDS["CheckMTU"], headers=JSON, timeout=10)
    assert r.status_code == 400 and "built in" in r.text


def test_javascript_workflows_refused(analyzer):
    r = _post(analyzer, "/api/workflow", {"Name": "mine", "Source": "function() { return 1 }"})
    assert r.status_code == 400 and "user workflows are JavaScript, which this analyzer does not run" in r.text
    r = call(analyzer, "no-such-workflow")
    assert r.status_code == 400 and "Workflow 'no-such-workflow' not found" in r.text


def test_bad_parameters_are_400(analyzer):
    r = call(analyzer, "CheckMTU", "a", "b", "c")
    assert r.status_code == 400 and "at most 2 parameters (source, destination)" in r.text
    r = call(analyzer, "CheckMTU", 3, "b")
    assert r.status_code == 400 and "parameter source: expected a node TID" in r.text
    r = call(analyzer, UUIDS["FlowMatrix"], False, "svg")
    assert r.status_code == 400 and "parameter format: expected one of graph, dot" in r.text
    r = call(analyzer, "FlowMatrix", True)
    assert r.status_code == 400 and "socketinfo" in r.text
    r = _post(analyzer, "/api/workflow/CheckMTU/call", {"Params": "x"})
    assert r.status_code == 400 and "Params: expected an array" in r.text


def test_check_mtu_along_the_path(analyzer):
    # a -> b -> c with MTUs 1500, 1500, 1500: true; b lowered to 1400: false; no path: false
    for name in ("a", "b", "c", "lone"):
        _node(analyzer, "wfm-" + name, Name="wfm-" + name, TID="tid-" + name, MTU=1500)
    _edge(analyzer, "wfm-ab", "wfm-a", "wfm-b")
    _edge(analyzer, "wfm-bc", "wfm-b", "wfm-c")
    r = call(analyzer, UUIDS["CheckMTU"], "tid-a", "tid-c")
    assert r.status_code == 200 and r.json() is True, r.text
    p = requests.patch(analyzer.url + "/api/node/wfm-c", json=[{"op": "replace", "path": "/Metadata/MTU", "value": 1400}],
                       timeout=10)
    assert p.status_code == 200, p.text
    assert call(analyzer, "CheckMTU", "tid-a", "tid-c").json() is False
    assert call(analyzer, "CheckMTU", "tid-c", "tid-a").json() is True      # 1400 then 1500: not lower
    assert call(analyzer, "CheckMTU", "tid-a", "tid-lone").json() is False


def test_flow_matrix_from_sockets(analyzer):
    srv = {"Protocol": "TCP", "LocalAddress": "10.9.0.1", "LocalPort": 80, "RemoteAddress": "0.0.0.0",
           "RemotePort": 0, "State": "LISTEN", "Process": "/usr/sbin/nginx", "Name": "nginx"}
    srv_conn = dict(srv, RemoteAddress="10.9.0.2", RemotePort=41000, State="ESTABLISHED")
    cli = {"Protocol": "TCP", "LocalAddress": "10.9.0.2", "LocalPort": 41000, "RemoteAddress": "10.9.0.1",
           "RemotePort": 80, "State": "ESTABLISHED", "Process": "/usr/bin/curl", "Name": "curl"}
    _node(analyzer, "fm-h1", Name="fm-h1", Type="host", Host="fm-h1", Sockets=[srv, srv_conn])
    _node(analyzer, "fm-h2", Name="fm-h2", Type="host", Host="fm-h2", Sockets=[cli])
    _node(analyzer, "fm-i1", Name="eth0", Host="fm-h1", IPV4=["10.9.0.1/24"])
    _node(analyzer, "fm-i2", Name="eth0", Host="fm-h2", IPV4=["10.9.0.2/24"])
    g = call(analyzer, "FlowMatrix", False, "graph").json()
    procs = {n["Metadata"]["Name"]: n for n in g["nodes"].values()}
    assert set(procs) == {"nginx", "curl"} and procs["nginx"]["Metadata"]["Ports"] == [80]
    assert procs["nginx"]["Host"] == "fm-h1" and procs["curl"]["Metadata"]["ServiceType"] == "client"
    conn = [e for e in g["edges"].values() if e["Metadata"]["RelationType"] == "connection"]
    assert len(conn) == 1 and conn[0]["Parent"] == procs["curl"]["ID"] and conn[0]["Child"] == procs["nginx"]["ID"]
    dot = call(analyzer, "FlowMatrix", False, "dot").json()
    assert '"fm-h2curl" -> "fm-h1nginx" [label="TCP:10.9.0.1:80"]' in dot
