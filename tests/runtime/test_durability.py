"""Durability of a real analyzer process: every 2xx survives kill -9, a bad write harms no other,
published/API/rule nodes and edges come back after a restart (agents' do not), damaged stores
are refused with the way to recover, and `skydive store check|backup|restore`."""

import asyncio
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import requests

from tests.fixtures.processes import REPO, SKYDIVE, SkydiveProcess, analyzer_config, wait_until

JSON = {"Content-Type": "application/json"}
N_EACH = 15   # 5 kinds created over the API (+ the edges between the nodes): 75 acknowledged writes


def _ms():
    return time.time_ns() // 1_000_000


def _kill9(proc):
    os.killpg(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait(10)
    proc.stop()


def _post(proc, path, body, headers=None):
    return requests.post(proc.url + path, json=body, headers=headers, timeout=30)


def _publish(proc, path, client_type, messages):
    """Send Graph messages on a publisher WebSocket, then close it (Persistent publisher)."""
    async def run():
        headers = {"X-Client-Type": client_type, "X-Host-ID": "pub-host", "X-Persistence-Policy": "Persistent"}
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect("ws://%s%s" % (proc.address, path), headers=headers) as ws:
                for type_, obj in messages:
                    await ws.send_str(json.dumps({"Namespace": "Graph", "Type": type_, "Obj": obj}))
                await asyncio.sleep(0.2)
    asyncio.run(run())


def _node(nid, name, rev=1, **extra):
    return dict({"ID": nid, "Host": "", "Revision": rev, "Metadata": {"Name": name, "Type": "switch"}}, **extra)


def _names(proc, gremlin):
    return sorted(n["Metadata"]["Name"] for n in proc.query(gremlin))


def _skydive(args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(SKYDIVE + list(args), capture_output=True, text=True, timeout=120, env=env, cwd=str(cwd))


def test_acknowledged_writes_survive_kill9_with_published_history(tmp_path):
    cfg = analyzer_config(tmp_path)
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    try:
        # a publisher (ToR switch + port, as `skydive client topology import` does) and an agent's node
        _publish(proc, "/ws/publisher", "tor-import", [
            ("NodeAdded", _node("tor-1", "tor-1")), ("NodeAdded", _node("tor-1-p1", "tor-1-p1")),
            ("EdgeAdded", {"ID": "tor-1-own", "Parent": "tor-1", "Child": "tor-1-p1",
                           "Metadata": {"RelationType": "ownership"}})])
        wait_until(lambda: _names(proc, "G.V().Has('Name', 'tor-1')") == ["tor-1"], message="published node")
        t_rev1 = _ms()
        time.sleep(0.05)
        _publish(proc, "/ws/publisher", "tor-import", [
            ("NodeUpdated", dict(_node("tor-1", "tor-1", rev=2), Metadata={"Name": "tor-1", "Type": "switch",
                                                                           "Model": "x9"}))])
        wait_until(lambda: proc.query("G.V().Has('Model', 'x9')"), message="published update")
        _publish(proc, "/ws/agent/topology", "agent", [("NodeAdded", _node("agent-n", "agent-n", Origin="agent.h9"))])
        wait_until(lambda: proc.query("G.V().Has('Name', 'agent-n')"), message="agent node")
        t_before = _ms()

        nodes = [_post(proc, "/api/node", _node("api-n%d" % i, "api-n%d" % i)) for i in range(N_EACH)]
        assert [r.status_code for r in nodes] == [201] * N_EACH, nodes[-1].text
        jobs = [("/api/edge", {"ID": "api-e%d" % i, "Parent": "api-n%d" % i, "Child": "api-n%d" % ((i + 1) % N_EACH),
                               "Metadata": {"RelationType": "layer2"}}) for i in range(N_EACH)]
        jobs += [("/api/capture", {"GremlinQuery": "G.V().Has('Name', 'cap%d')" % i}) for i in range(N_EACH)]
        jobs += [("/api/alert", {"Expression": "G.V().Has('Name', 'alert%d')" % i}) for i in range(N_EACH)]
        jobs += [("/api/noderule", {"Action": "create", "Metadata": {"Name": "rule-n%d" % i, "Type": "fabric"}})
                 for i in range(N_EACH - 1)]
        jobs += [("/api/edgerule", {"Src": "G.V().Has('Name', 'tor-1')", "Dst": "G.V().Has('Name', 'api-n0')",
                                    "Metadata": {"RelationType": "layer2", "Rule": "r"}})]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda job: _post(proc, *job), jobs))
        assert [r.status_code for r in answers] == [201] * len(jobs), [r.text for r in answers if r.status_code != 201]
        created = {path: [] for path, _ in jobs}
        for (path, body), r in zip(jobs, answers):
            created[path].append(r.json()["UUID"] if path != "/api/edge" else r.json()["ID"])
        assert len(nodes) + len(answers) == 5 * N_EACH
        # deletions are acknowledged once committed too
        deleted = [created[p].pop() for p in ("/api/capture", "/api/alert", "/api/edge")]
        with ThreadPoolExecutor(4) as pool:
            gone = list(pool.map(lambda p: requests.delete(proc.url + p, timeout=10, headers=JSON),
                                 ["/api/capture/" + deleted[0], "/api/alert/" + deleted[1], "/api/edge/" + deleted[2]]))
        _kill9(proc)    # at once after the last 2xx
        assert [r.status_code for r in gone] == [200] * 3

        proc = SkydiveProcess("analyzer", tmp_path, cfg, port=proc.port).start()
        for path in ("/api/capture", "/api/alert", "/api/noderule", "/api/edgerule", "/api/edge"):
            have = requests.get(proc.url + path, timeout=10).json()
            assert sorted(created[path]) == sorted(set(created[path]) & set(have)), path
            assert not set(deleted) & set(have), path
        have_nodes = requests.get(proc.url + "/api/node", timeout=10).json()
        assert {"api-n%d" % i for i in range(N_EACH)} <= set(have_nodes)
        assert _names(proc, "G.V().Has('Type', 'fabric')") == sorted("rule-n%d" % i for i in range(N_EACH - 1))
        assert proc.query("G.V().Has('Name', 'tor-1').Out().Values('Name')") == ["tor-1-p1"] or \
            sorted(proc.query("G.V().Has('Name', 'tor-1').Out().Values('Name')")) == ["api-n0", "tor-1-p1"]
        restored = proc.query("G.V().Has('Name', 'tor-1')")
        assert [(n["Revision"], n["Metadata"].get("Model"), n["Origin"]) for n in restored] == [(2, "x9", "tor-import.pub-host")]
        assert proc.query("G.V().Has('Name', 'agent-n')") == []       # the agent brings it back itself
        # the history of the published node survived, the agent's node is in the past only
        at1 = proc.query("G.At(%d).V().Has('Name', 'tor-1')" % t_rev1)
        assert [(n["Revision"], n["Metadata"].get("Model")) for n in at1] == [(1, None)]
        assert [n["ID"] for n in proc.query("G.At(%d).V().Has('Name', 'agent-n')" % t_before)] == ["agent-n"]
        # the restored elements keep living: an update is a new revision of the same history
        r = requests.patch(proc.url + "/api/node/api-n1", json=[{"op": "add", "path": "/Metadata/MTU", "value": 9000}],
                           timeout=10)
        assert r.status_code == 200 and r.json()["Revision"] == 2
    finally:
        proc.stop()


def test_bad_values_in_a_burst_harm_no_other_write(tmp_path):
    cfg = analyzer_config(tmp_path)
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    try:
        good = [("/api/capture", {"GremlinQuery": "G.V().Has('Name', 'good%d')" % i}, {"X-Resource-TTL": "1h"})
                for i in range(20)]
        good += [("/api/node", _node("good-n%d" % i, "good-n%d" % i), None) for i in range(20)]
        bad = [("/api/capture", {"GremlinQuery": "G.V()"}, {"X-Resource-TTL": "100000000h"}),
               ("/api/capture", {"GremlinQuery": "G.V()"}, {"X-Resource-TTL": "1e400h"}),
               ("/api/node", _node("bad-rev", "bad-rev", rev=2 ** 63), None),
               ("/api/node", _node("bad-created", "bad-created", CreatedAt=2 ** 64), None),
               ("/api/edge", {"ID": "bad-e", "Parent": "good-n0", "Child": "good-n1", "UpdatedAt": 2 ** 63,
                              "Metadata": {"RelationType": "layer2"}}, None)]
        jobs = good[:20] + bad + good[20:]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda job: _post(proc, *job), jobs))
        statuses = [r.status_code for r in answers]
        assert statuses == [201] * 20 + [400] * len(bad) + [201] * 20, [r.text for r in answers]
        texts = [r.text for r in answers[20:20 + len(bad)]]
        assert "invalid ttl" in texts[0] and "too large" in texts[0]
        assert "invalid ttl" in texts[1]
        assert "Revision of bad-rev must be a non-negative integer below 2^63-1" in texts[2]
        assert "CreatedAt of bad-created" in texts[3] and "UpdatedAt of bad-e" in texts[4]
        # a publisher's bad node is dropped with a reason, its neighbours in the same burst are kept
        _publish(proc, "/ws/publisher", "burst", [
            ("NodeAdded", _node("pub-ok1", "pub-ok1")), ("NodeAdded", _node("pub-bad", "pub-bad", rev=2 ** 63)),
            ("NodeAdded", _node("pub-ok2", "pub-ok2")),
            ("NodePartiallyUpdated", {"ID": "pub-ok1", "Revision": 2 ** 64, "Ops": [{"Type": 1, "Key": "X", "Value": 1}]}),
            ("NodeUpdated", dict(_node("pub-ok2", "pub-ok2", rev=2), UpdatedAt=2 ** 63))])
        wait_until(lambda: _names(proc, "G.V().Has('Name', Regex('pub-.*'))") == ["pub-ok1", "pub-ok2"],
                   message="good published nodes")
        ok = _post(proc, "/api/node", _node("last", "last"))   # its 201 means all of the above is committed
        assert ok.status_code == 201
        _kill9(proc)
        log = open(proc.log_path, encoding="utf-8", errors="replace").read()
        assert "NodeAdded dropped: Revision of pub-bad must be a non-negative integer below 2^63-1" in log
        assert "Traceback" not in log

        proc = SkydiveProcess("analyzer", tmp_path, cfg, port=proc.port).start()
        captures = requests.get(proc.url + "/api/capture", timeout=10).json()
        assert sorted(c["GremlinQuery"] for c in captures.values()) == sorted(b["GremlinQuery"] for _, b, _ in good[:20])
        names = _names(proc, "G.V()")
        assert names == sorted(["good-n%d" % i for i in range(20)] + ["last", "pub-ok1", "pub-ok2"])
        assert [n["Revision"] for n in proc.query("G.V().Has('Name', Regex('pub-.*'))")] == [1, 1]
    finally:
        proc.stop()


def _make_store(tmp_path, cfg):
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    try:
        for i in range(5):
            assert _post(proc, "/api/alert", {"Expression": "G.V().Has('Name', 'a%d')" % i}).status_code == 201
    finally:
        proc.stop()
    return cfg["storage"]["sqlite"]["path"]


def _refusal(tmp_path, cfg, path):
    proc = SkydiveProcess("analyzer", tmp_path, cfg)
    try:
        proc.start(timeout=30)
    except RuntimeError as exc:
        text = str(exc)
    else:
        raise AssertionError("the analyzer started on a damaged store")
    finally:
        proc.stop()
    assert "exited with 1" in text, text
    assert "store %s " % path in text
    assert "skydive store restore BACKUP --path %s" % path in text
    assert "mv %s %s.damaged" % (path, path) in text
    return text


def test_damaged_stores_are_refused_with_the_recovery(tmp_path):
    cfg = analyzer_config(tmp_path)
    path = _make_store(tmp_path, cfg)
    good = open(path, "rb").read()
    assert len(good) > 6 * 4096

    open(path, "wb").close()
    assert "is empty (0 bytes)" in _refusal(tmp_path, cfg, path)

    with open(path, "wb") as fh:
        fh.write(good[:len(good) // 2 + 100])
    assert "is truncated" in _refusal(tmp_path, cfg, path)

    damaged = bytearray(good)
    damaged[4 * 4096:5 * 4096] = bytes(range(256)) * 16     # one b-tree page overwritten
    with open(path, "wb") as fh:
        fh.write(damaged)
    assert "fails its integrity check" in _refusal(tmp_path, cfg, path)

    damaged = bytearray(good)
    damaged[:16] = b"not a database!!"
    with open(path, "wb") as fh:
        fh.write(damaged)
    assert "is not an SQLite database" in _refusal(tmp_path, cfg, path)

    # following the advice (move the file away) starts empty; a missing file is a first start
    os.replace(path, path + ".damaged")
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    try:
        assert requests.get(proc.url + "/api/alert", timeout=10).json() == {}
    finally:
        proc.stop()


def test_store_check_backup_restore(tmp_path):
    cfg = analyzer_config(tmp_path)
    path = cfg["storage"]["sqlite"]["path"]
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    try:
        alerts = [_post(proc, "/api/alert", {"Expression": "G.V().Has('Name', 'b%d')" % i}).json()["UUID"]
                  for i in range(5)]
        conf = proc.conf_path
        # while the analyzer runs: check and backup (from the configuration's store path)
        r = _skydive(["-c", conf, "store", "check"], tmp_path)
        assert r.returncode == 0 and "store %s: ok" % path in r.stdout, r.stderr
        backup = str(tmp_path / "skydive.backup")
        r = _skydive(["-c", conf, "store", "backup", backup], tmp_path)
        assert r.returncode == 0 and "backed up to %s (verified)" % backup in r.stdout, r.stderr
        assert json.loads(r.stdout[r.stdout.index("{"):])["resources"] == 5
        r = _skydive(["store", "check", "--path", backup], tmp_path)
        assert r.returncode == 0, r.stderr
        # restore refuses while the analyzer has the store open
        r = _skydive(["-c", conf, "store", "restore", backup], tmp_path)
        assert r.returncode == 1 and "is in use (an analyzer has it open): stop the analyzer" in r.stderr
        assert _post(proc, "/api/alert", {"Expression": "G.V().Has('Name', 'after-backup')"}).status_code == 201
    finally:
        proc.stop()

    # a damaged backup is refused before anything is touched
    bad = str(tmp_path / "bad.backup")
    with open(bad, "wb") as fh:
        fh.write(open(backup, "rb").read()[:5000])
    r = _skydive(["-c", conf, "store", "restore", bad], tmp_path)
    assert r.returncode == 1 and "backup %s is not usable, nothing restored" % bad in r.stderr, r.stderr
    r = _skydive(["store", "check", "--path", bad], tmp_path)
    assert r.returncode == 1 and "store %s is truncated" % bad in r.stderr, r.stderr

    # the store is damaged: restore the backup, the analyzer starts on it
    with open(path, "r+b") as fh:
        fh.truncate(4096 * 3)
    r = _skydive(["-c", conf, "store", "restore", backup], tmp_path)
    assert r.returncode == 0 and "restored from %s (verified)" % backup in r.stdout, r.stderr
    kept = r.stdout.split("the replaced file is kept as ")[1].split()[0]
    assert os.path.getsize(kept) == 4096 * 3
    proc = SkydiveProcess("analyzer", tmp_path, cfg, port=proc.port).start()
    try:
        have = requests.get(proc.url + "/api/alert", timeout=10).json()
        assert sorted(have) == sorted(alerts)    # the state of the backup (made before 'after-backup')
    finally:
        proc.stop()


def test_a_write_the_store_cannot_commit_is_not_acknowledged(tmp_path):
    cfg = analyzer_config(tmp_path)
    cfg["storage"]["sqlite"]["max_size_mb"] = 0.3     # a full store: commits fail with "database or disk is full"
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    try:
        acknowledged, refused = [], None
        for i in range(200):
            r = _post(proc, "/api/alert", {"Expression": "G.V().Has('Name', '%s')" % ("x%d" % i).ljust(20000, "x")})
            if r.status_code != 201:
                refused = r
                break
            acknowledged.append(r.json()["UUID"])
        assert acknowledged and refused is not None and refused.status_code == 503, refused
        assert refused.text.startswith("Alert not created: writing to store ") and "full" in refused.text
        have = requests.get(proc.url + "/api/alert", timeout=10).json()
        assert sorted(have) == sorted(acknowledged)      # the refused one is not shown either
        _kill9(proc)
        proc = SkydiveProcess("analyzer", tmp_path, cfg, port=proc.port).start()
        assert sorted(requests.get(proc.url + "/api/alert", timeout=10).json()) == sorted(acknowledged)
    finally:
        proc.stop()


def test_restored_edge_to_an_agent_node_waits_for_the_agent(tmp_path):
    cfg = analyzer_config(tmp_path)
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    agent_node = _node("agent-if", "agent-if", Origin="agent.h7")
    try:
        _publish(proc, "/ws/agent/topology", "agent", [("NodeAdded", agent_node)])
        wait_until(lambda: proc.query("G.V().Has('Name', 'agent-if')"), message="agent node")
        assert _post(proc, "/api/node", _node("tor-9", "tor-9")).status_code == 201
        r = _post(proc, "/api/edge", {"ID": "tor-9-link", "Parent": "tor-9", "Child": "agent-if",
                                      "Metadata": {"RelationType": "layer2"}})
        assert r.status_code == 201, r.text
        _kill9(proc)
        proc = SkydiveProcess("analyzer", tmp_path, cfg, port=proc.port).start()
        assert _names(proc, "G.V()") == ["tor-9"]
        assert proc.query("G.E()") == []
        _publish(proc, "/ws/agent/topology", "agent", [("NodeAdded", agent_node)])   # the agent is back
        edges = wait_until(lambda: proc.query("G.E()"), message="the restored edge")
        assert [(e["ID"], e["Parent"], e["Child"]) for e in edges] == [("tor-9-link", "tor-9", "agent-if")]
        assert proc.query("G.V().Has('Name', 'tor-9').Out().Values('Name')") == ["agent-if"]
    finally:
        proc.stop()
