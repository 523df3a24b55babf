"""GET /metrics on a real analyzer and a real agent: Prometheus text format (0.0.4), the families
operators need, values that follow what happens (a node added, a store write)."""

import re

import requests

from tests.fixtures.processes import SkydiveProcess, wait_until

LINE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$')


def scrape(url):
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values, types = {}, {}
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            _h, _t, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, "not Prometheus text: %r" % line
        values[line.rsplit(" ", 1)[0]] = float(m.group(4))
    assert all(types[n] == "counter" for n in types if n.endswith("_total"))
    return values, types


def test_analyzer_and_agent_metrics(analyzer_process, tmp_path):
    values, types = scrape(analyzer_process.url)
    for name in ("skydive_graph_nodes", "skydive_graph_edges", "skydive_graph_events_total", "skydive_agents_connected",
                 "skydive_flows_received_total", "skydive_flows_stored_total", "skydive_store_queue_depth",
                 "skydive_store_commit_seconds_total", "skydive_ws_queued_messages", "skydive_master"):
        assert name in types, name
    assert values['skydive_master{duty="alerts"}'] == 1          # standalone: master of every duty
    nodes = values["skydive_graph_nodes"]
    r = requests.post(analyzer_process.url + "/api/node", json={"ID": "m1", "Metadata": {"Name": "m1", "Type": "device"}},
                      timeout=10)
    assert r.status_code == 201
    values, _ = scrape(analyzer_process.url)
    assert values["skydive_graph_nodes"] == nodes + 1
    assert values['skydive_store_batches_total{backend="sqlite",role="topology"}'] >= 1
    agent = SkydiveProcess("agent", tmp_path / "agent", {"host_id": "metrics-agent", "analyzers": [analyzer_process.address],
                                                         "agent": {"topology": {"probes": []}}})
    agent.start()
    try:
        wait_until(lambda: scrape(analyzer_process.url)[0]["skydive_agents_connected"] == 1, timeout=15,
                   message="agent counted")
        values, types = scrape(agent.url)
        assert values['skydive_analyzer_connected{analyzer="%s"}' % analyzer_process.address] == 1
        assert values["skydive_graph_nodes"] >= 1 and "skydive_flows_sent_total" in types
        assert "skydive_capture_packets_total" in types
    finally:
        agent.stop()
