"""Topology diff on a real analyzer with its SQLite history: nodes and edges made and changed
through the node/edge API; the API, the CLI (table and JSON) and the bad inputs."""

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    d = tmp_path_factory.mktemp("diff")
    proc = SkydiveProcess("analyzer", d, analyzer_config(d))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _ms():
    return int(time.time() * 1000)


def _node(url, nid, **md):
    r = requests.post(url + "/api/node", json={"ID": nid, "Host": "dh", "Metadata": dict(md, Type="device")}, timeout=10)
    assert r.status_code == 201, r.text


def client(analyzer, *args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "skydive_runtime.cli.main", "client", "--analyzer", analyzer.address]
                          + list(args), capture_output=True, text=True, env=env, timeout=60)


def diff(url, **body):
    r = requests.post(url + "/api/topology/diff", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_diff_lists_exactly_the_change(analyzer):
    url = analyzer.url
    _node(url, "df-keep", Name="df-keep", MTU=1500)
    _node(url, "df-gone", Name="df-gone", MTU=1500)
    _node(url, "df-same", Name="df-same", MTU=1500)
    r = requests.post(url + "/api/edge", json={"ID": "df-e1", "Parent": "df-keep", "Child": "df-gone",
                                               "Metadata": {"RelationType": "layer2"}}, timeout=10)
    assert r.status_code == 201
    time.sleep(0.3)
    t1 = _ms()
    time.sleep(0.3)
    requests.patch(url + "/api/node/df-keep", json=[{"op": "replace", "path": "/Metadata/MTU", "value": 1400},
                                                    {"op": "add", "path": "/Metadata/Ovs", "value": {"Error": "x"}}],
                   timeout=10).raise_for_status()
    requests.delete(url + "/api/node/df-gone", headers={"Content-Type": "application/json"}, timeout=10).raise_for_status()
    _node(url, "df-new", Name="df-new")
    time.sleep(0.3)
    t2 = _ms()
    flt = "G.V().Has('Name', Regex('df-.*')).SubGraph()"
    d = diff(url, From=t1, To=t2, GremlinFilter=flt)
    assert [n["ID"] for n in d["Nodes"]["Added"]] == ["df-new"]
    assert [n["ID"] for n in d["Nodes"]["Removed"]] == ["df-gone"]
    assert [(c["ID"], c["Changes"]) for c in d["Nodes"]["Changed"]] == [
        ("df-keep", {"MTU": {"Old": 1500, "New": 1400}, "Ovs.Error": {"Old": None, "New": "x"}})]
    assert [e["ID"] for e in d["Edges"]["Removed"]] == ["df-e1"] and not d["Edges"]["Added"] + d["Edges"]["Changed"]
    # the live graph as the end, an ignored key, a node filter
    d = diff(url, From=t1, GremlinFilter="G.V().Has('Name', 'df-keep')", Ignore=["Ovs"])
    assert d["To"] is None and [c["Changes"] for c in d["Nodes"]["Changed"]] == [{"MTU": {"Old": 1500, "New": 1400}}]
    # nothing changed after t2
    d = diff(url, From=t2, GremlinFilter=flt)
    assert not any(d[p][k] for p in ("Nodes", "Edges") for k in ("Added", "Removed", "Changed"))
    # GET form (the UI's "changed since")
    r = requests.get(url + "/api/topology/diff", params={"from": str(t1), "to": str(t2), "gremlin": flt}, timeout=10)
    assert r.status_code == 200 and [n["ID"] for n in r.json()["Nodes"]["Added"]] == ["df-new"]
    # CLI: table and JSON
    p = client(analyzer, "topology", "diff", "--from", str(t1), "--to", str(t2), "--gremlin", flt)
    assert p.returncode == 0, p.stderr
    assert "node added (1):\n  + dh df-new (device) df-new" in p.stdout
    assert "node changed (1):" in p.stdout and "      MTU: 1500 -> 1400" in p.stdout
    assert "      Ovs.Error: (absent) -> x" in p.stdout and "edge removed (1):" in p.stdout
    p = client(analyzer, "topology", "diff", "--from", str(t1), "--to", str(t2), "--gremlin", flt, "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["Nodes"]["Removed"][0]["ID"] == "df-gone"


@pytest.mark.parametrize("body,message", [
    ({}, "From: the start time is required"),
    ({"From": "yesterday"}, "From: 'yesterday' is not a time"),
    ({"From": 2000, "To": 1000}, "is before From"),
    ({"From": "-1m", "GremlinFilter": "G.V().Count()"}, "must return a graph, nodes or edges"),
    ({"From": "-1m", "GremlinFilter": "G.V().Foo()"}, "Foo"),
    ({"From": "-1m", "Ignore": "MTU"}, "Ignore: expected a list"),
])
def test_bad_requests_are_400(analyzer, body, message):
    r = requests.post(analyzer.url + "/api/topology/diff", json=body, timeout=10)
    assert r.status_code == 400 and message in r.text, r.text


def test_cli_error_is_clear(analyzer):
    p = client(analyzer, "topology", "diff", "--from", "soon")
    assert p.returncode == 1 and "'soon' is not a time" in p.stderr and "Traceback" not in p.stderr
