"""/api/status walks the real parts: an analyzer with two agents (started as `skydive agent -c FILE`),
rules and a peer analyzer link; `skydive allinone -c FILE`."""

import asyncio
import os

import aiohttp
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config, free_port, wait_until
from tests.runtime.test_service_cli import _Service, _write


def _status(address):
    r = requests.get("http://%s/api/status" % address, timeout=5)
    r.raise_for_status()
    return r.json()


def _agent_conf(tmp_path, analyzer, host_id, port, probes):
    return _write(tmp_path, "%s.yml" % host_id, {
        "host_id": host_id, "analyzers": [analyzer], "ovs": {"ovsdb": "unix:///nonexistent/%s.sock" % host_id},
        "agent": {"listen": "127.0.0.1:%d" % port, "topology": {"probes": probes}}})


async def _with_peer(analyzer, peer_id, check):
    """Connect to the analyzer as another analyzer forwarding its graph would, run check() meanwhile."""
    headers = {"X-Host-ID": peer_id, "X-Client-Type": "analyzer", "X-Client-Protocol": "json"}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect("ws://%s/ws/agent/topology" % analyzer, headers=headers):
            return await asyncio.get_running_loop().run_in_executor(None, check)


def test_status_of_an_analyzer_with_two_agents_rules_and_a_peer(tmp_path):
    tag = os.urandom(3).hex()
    analyzer = SkydiveProcess("analyzer", tmp_path / "analyzer", analyzer_config(tmp_path / "analyzer"))
    agents = []
    try:
        analyzer.start()
        a = analyzer.address
        for host_id, probes in (("st-ovs-%s" % tag, ["ovsdb"]), ("st-plain-%s" % tag, [])):
            port = free_port()
            svc = _Service(["agent", "-c", _agent_conf(tmp_path, a, host_id, port, probes)], tmp_path)
            agents.append((host_id, "127.0.0.1:%d" % port, svc))
        for host_id, address, svc in agents:
            svc.wait_status(address)
        wait_until(lambda: set(_status(a)["Agents"]) == {h for h, _addr, _svc in agents}, timeout=20,
                   message="both agents connected")
        rule = {"Name": "tor-%s" % tag, "Action": "create", "Metadata": {"Name": "tor-%s" % tag, "Type": "fabric"}}
        requests.post("http://%s/api/noderule" % a, json=rule, timeout=5).raise_for_status()
        edge = {"Name": "tor-link-%s" % tag, "Src": "G.V().Has('Name', 'tor-%s')" % tag,
                "Dst": "G.V().Has('Type', 'host', 'Name', '%s')" % agents[0][0], "Metadata": {"RelationType": "layer2"}}
        requests.post("http://%s/api/edgerule" % a, json=edge, timeout=5).raise_for_status()
        wait_until(lambda: analyzer.query("G.V().Has('Name', 'tor-%s').Both().Count()" % tag) == 1, timeout=10,
                   message="rule-made node linked to the first agent's host")

        st = _status(a)
        assert set(st) == {"Agents", "Peers", "Publishers", "Subscribers", "Alerts", "Captures", "Probes"}
        assert st["Peers"] == {"Incomers": {}, "Outgoers": {}}
        assert st["Probes"] == {"fabric": {"Nodes": 0, "Links": 0}}   # always on (analyzer/probes.py), nothing configured
        assert st["Alerts"]["IsMaster"] is True and st["Captures"] == {"IsMaster": True}
        for host_id, _addr, _svc in agents:
            assert st["Agents"][host_id]["ServiceType"] == "agent" and st["Agents"][host_id]["IsConnected"]

        ovs_agent, plain_agent = (_status(addr) for _h, addr, _svc in agents)
        assert set(ovs_agent["TopologyProbes"]) == {"netlink", "netns", "ovsdb"}
        assert ovs_agent["TopologyProbes"]["ovsdb"]["State"] == "waiting"          # no ovsdb at that address
        assert set(plain_agent["TopologyProbes"]) == {"netlink", "netns"}
        assert plain_agent["TopologyProbes"]["netlink"]["State"] == "running"
        assert plain_agent["Analyzers"]["test-analyzer"]["IsConnected"] is True

        peer = "peer-%s" % tag
        seen = asyncio.run(_with_peer(a, peer, lambda: wait_until(
            lambda: peer in _status(a)["Peers"]["Incomers"] and _status(a), timeout=10, message="peer listed")))
        assert seen["Peers"]["Incomers"][peer]["ServiceType"] == "analyzer"
        assert peer not in seen["Agents"] and set(seen["Agents"]) == {h for h, _addr, _svc in agents}
        wait_until(lambda: _status(a)["Peers"]["Incomers"] == {}, timeout=10, message="peer gone")
    finally:
        for _h, _addr, svc in agents:
            svc.stop()
        analyzer.stop()


def test_allinone_with_conf_after_the_command(tmp_path):
    port, agent_port = free_port(), free_port()
    host_id = "allinone-%s" % os.urandom(3).hex()
    conf = _write(tmp_path, "allinone.yml", {
        "host_id": host_id, "ovs": {"ovsdb": "unix:///nonexistent/db.sock"},
        "analyzer": {"listen": "127.0.0.1:%d" % port, "topology": {"backend": "memory"}, "flow": {"backend": "memory"}},
        "agent": {"listen": "127.0.0.1:%d" % agent_port, "topology": {"probes": []}}})
    svc = _Service(["allinone", "-c", conf], tmp_path)
    try:
        st = svc.wait_status("127.0.0.1:%d" % port, ok=lambda s: host_id in s["Agents"])
        assert st["Agents"][host_id]["IsConnected"] is True
        assert set(_status("127.0.0.1:%d" % agent_port)["TopologyProbes"]) == {"netlink", "netns"}
    finally:
        assert svc.stop() == 0
