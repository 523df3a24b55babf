"""Time travel through a real analyzer process: G.At(t) and G.At(t, d) survive a restart."""

import time

import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config


def _post(proc, path, body, expect):
    r = requests.post(proc.url + path, json=body, timeout=10)
    assert r.status_code == expect, r.text
    return r.json()


def _ms():
    return time.time_ns() // 1_000_000


def test_history_of_updated_and_deleted_node_survives_restart(tmp_path):
    cfg = analyzer_config(tmp_path)
    proc = SkydiveProcess("analyzer", tmp_path, cfg)
    proc.start()
    try:
        t0 = _ms()
        _post(proc, "/api/node", {"ID": "hist-n1", "Host": "h", "Revision": 1,
                            "Metadata": {"Name": "tap1", "Type": "tuntap", "MTU": 1500}}, 201)
        time.sleep(0.05)
        t_created = _ms()
        time.sleep(0.05)
        r = requests.patch(proc.url + "/api/node/hist-n1",
                           json=[{"op": "replace", "path": "/Metadata/MTU", "value": 9000}], timeout=10)
        assert r.status_code == 200 and r.json()["Revision"] == 2
        time.sleep(0.05)
        t_updated = _ms()
        time.sleep(0.05)
        assert requests.delete(proc.url + "/api/node/hist-n1", timeout=10, headers={"Content-Type": "application/json"}).status_code == 200
        time.sleep(0.05)
        t_deleted = _ms()
        assert proc.query("G.V().Has('Name', 'tap1')") == []
    finally:
        proc.stop()

    # a new analyzer process on the same store
    proc = SkydiveProcess("analyzer", tmp_path, cfg, port=proc.port)
    proc.start()
    try:
        at_created = proc.query("G.At(%d).V().Has('Name', 'tap1')" % t_created)
        assert [(n["Revision"], n["Metadata"]["MTU"]) for n in at_created] == [(1, 1500)]
        at_updated = proc.query("G.At(%d).V().Has('Name', 'tap1')" % t_updated)
        assert [(n["Revision"], n["Metadata"]["MTU"]) for n in at_updated] == [(2, 9000)]
        assert proc.query("G.At(%d).V().Has('Name', 'tap1')" % t_deleted) == []
        assert proc.query("G.At(%d).V().Has('Name', 'tap1')" % (t0 - 1000)) == []
        window_s = (t_deleted - t0) // 1000 + 2
        revisions = proc.query("G.At(%d, %d).V().Has('Name', 'tap1')" % (t_deleted, window_s))
        assert sorted(n["Revision"] for n in revisions) == [1, 2]
        assert all(n["ID"] == "hist-n1" for n in revisions)
        graph = proc.query("G.At(%d)" % t_updated)
        assert [n["ID"] for n in graph[0]["Nodes"] or [] if n["ID"] == "hist-n1"] == ["hist-n1"]
    finally:
        proc.stop()
