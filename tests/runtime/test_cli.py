"""`skydive` CLI against a real analyzer process: output, exit codes, one-line errors."""

import json
import os
import subprocess
import sys

from tests.fixtures.processes import REPO, free_port


def skydive(*args, analyzer=None, env=None, check=True):
    e = dict(os.environ, PYTHONPATH=REPO)
    e.pop("SKYDIVE_ANALYZER", None)
    e.update(env or {})
    cmd = [sys.executable, "-m", "skydive_runtime.cli.main"] + list(args)
    if analyzer and args and args[0] == "client":
        cmd = cmd[:3] + ["client", "--analyzer", analyzer] + list(args[1:])
    p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("skydive %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def test_version():
    assert skydive("version").stdout.startswith("skydive ")


def test_unreachable_analyzer_is_one_line_error():
    port = free_port()
    p = skydive("client", "status", analyzer="127.0.0.1:%d" % port, check=False)
    assert p.returncode == 1
    assert "cannot reach the analyzer at 127.0.0.1:%d" % port in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_bad_config_names_the_key(tmp_path):
    conf = tmp_path / "bad.yml"
    conf.write_text("flow:\n  update: -3\n")
    p = skydive("-c", str(conf), "analyzer", check=False)
    assert p.returncode == 2 and "flow.update" in p.stderr and "Traceback" not in p.stderr


def test_status_and_query(analyzer_process):
    a = analyzer_process.address
    status = json.loads(skydive("client", "status", analyzer=a).stdout)
    assert "Agents" in status
    assert json.loads(skydive("client", "query", "G.V().Count()", analyzer=a).stdout) == 0
    p = skydive("client", "query", "G.V(", analyzer=a, check=False)
    assert p.returncode == 1 and "(400)" in p.stderr and "Traceback" not in p.stderr


def test_node_edge_lifecycle(analyzer_process):
    a = analyzer_process.address
    n1 = json.loads(skydive("client", "node", "create", "--node-name", "tor1", "--node-type", "fabric",
                            "--metadata", "Vendor=acme, Rack.Row=3", analyzer=a).stdout)
    n2 = json.loads(skydive("client", "node", "create", "--node-name", "port1", "--node-type", "fabric",
                            analyzer=a).stdout)
    assert n1["Metadata"]["Rack"] == {"Row": "3"} and n1["Origin"].startswith("cli.")
    e = json.loads(skydive("client", "edge", "create", "--parent", n1["ID"], "--child", n2["ID"],
                           "--edge-type", "layer2", analyzer=a).stdout)
    assert e["Parent"] == n1["ID"]
    upd = json.loads(skydive("client", "node", "update", n1["ID"], "--add", "Speed=100", analyzer=a).stdout)
    assert upd["Metadata"]["Speed"] == 100 and upd["Revision"] == 2
    assert skydive("client", "node", "update", n1["ID"], "--add", "Speed=100", analyzer=a).stdout.strip() == "Not modified"
    dot = skydive("client", "query", "G.V().Has('Type','fabric').SubGraph()", "--format", "dot", analyzer=a).stdout
    assert "digraph" in dot and n1["ID"] in dot
    listed = json.loads(skydive("client", "node", "list", analyzer=a).stdout)
    assert n1["ID"] in listed and n2["ID"] in listed
    skydive("client", "node", "delete", "--gremlin", "G.V().Has('Type','fabric')", analyzer=a)
    assert json.loads(skydive("client", "query", "G.V().Count()", analyzer=a).stdout) == 0
    p = skydive("client", "node", "get", n1["ID"], analyzer=a, check=False)
    assert p.returncode == 1 and "404" in p.stderr


def test_topology_export_import(analyzer_process, tmp_path):
    a = analyzer_process.address
    graph = [{"Nodes": [
        {"ID": "imp-1", "Host": "h", "Metadata": {"Name": "sw1", "Type": "switch"}},
        {"ID": "imp-2", "Host": "h", "Metadata": {"Name": "sw2", "Type": "switch"}},
        {"ID": "imp-bad", "Host": "h", "Metadata": {"Name": "no type"}}],
        "Edges": [{"ID": "imp-e", "Host": "h", "Parent": "imp-1", "Child": "imp-2",
                   "Metadata": {"RelationType": "layer2"}}]}]
    f = tmp_path / "g.json"
    f.write_text(json.dumps(graph))
    skydive("client", "topology", "import", "--file", str(f), analyzer=a)
    exported = json.loads(skydive("client", "topology", "export", analyzer=a).stdout)[0]
    assert {n["ID"] for n in exported["Nodes"]} == {"imp-1", "imp-2"}, "the schema-invalid node is dropped"
    assert [e["ID"] for e in exported["Edges"]] == ["imp-e"]


def test_capture_commands(analyzer_process):
    a = analyzer_process.address
    c = json.loads(skydive("client", "capture", "create", "--gremlin", "G.V().Has('Name','nothing')",
                           "--name", "cap", analyzer=a).stdout)
    assert c["GremlinQuery"] == "G.V().Has('Name','nothing')" and c["LayerKeyMode"] == "L2"
    assert c["UUID"] in json.loads(skydive("client", "capture", "list", analyzer=a).stdout)
    dup = skydive("client", "capture", "create", "--gremlin", "G.V().Has('Name','nothing')", analyzer=a, check=False)
    assert dup.returncode == 1 and "409" in dup.stderr
    bad = skydive("client", "capture", "create", "--gremlin", "G.V().Foo()", analyzer=a, check=False)
    assert bad.returncode == 1 and "400" in bad.stderr
    skydive("client", "capture", "delete", c["UUID"], analyzer=a)
    assert json.loads(skydive("client", "capture", "list", analyzer=a).stdout) == {}


def _publish_to(base, monkeypatch, timeout):
    """Run wspublish against `base` with a short confirmation timeout; the ClientError text."""
    import asyncio
    import types

    import pytest

    from skydive_runtime.cli import wspublish
    from skydive_runtime.cli.rest import ClientError

    monkeypatch.setattr(wspublish, "CONFIRM_TIMEOUT", timeout)
    rest = types.SimpleNamespace(base=base, analyzer=base[7:], session=types.SimpleNamespace(auth=None))
    with pytest.raises(ClientError) as info:
        asyncio.run(wspublish._publish(rest, "/ws/publisher", [("NodeAdded", {"ID": "n1"})]))
    return str(info.value)


def test_topology_import_unconfirmed_is_a_timeout_not_unreachable(monkeypatch):
    """An analyzer that accepts the publisher WebSocket but never answers the SyncRequest: the
    error says so (Python >= 3.11 made asyncio.TimeoutError an OSError, which used to be
    reported as "cannot reach the analyzer")."""
    import asyncio
    import threading

    from aiohttp import web

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _msg in ws:      # read, never answer
            pass
        return ws

    ready = threading.Event()
    box = {}

    def serve():
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/ws/publisher", handler)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        box["port"] = site._server.sockets[0].getsockname()[1]
        box["loop"], box["runner"] = loop, runner
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        msg = _publish_to("http://127.0.0.1:%d" % box["port"], monkeypatch, 0.3)
        assert "did not confirm the import within 0.3 s" in msg, msg
    finally:
        box["loop"].call_soon_threadsafe(box["loop"].stop)
        t.join(10)


def test_topology_import_unreachable(monkeypatch):
    msg = _publish_to("http://127.0.0.1:%d" % free_port(), monkeypatch, 0.3)
    assert msg.startswith("cannot reach the analyzer at 127.0.0.1:"), msg
