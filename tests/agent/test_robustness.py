"""Robustness: OVS late, analyzer restart, namespace bursts, rename + move, TIDs across restarts,
and the agent's own API."""

import os

import pytest
import requests

from tests.agent.conftest import agent_config, agent_stack
from tests.fixtures.processes import SkydiveProcess, analyzer_config, free_port, wait_until
from tests.fixtures.topology import PrivateOVS, run

pytestmark = pytest.mark.needs_root


def agent_status(stack):
    return requests.get(stack.agent.url + "/api/status", timeout=5).json()


def agent_query(stack, q):
    r = requests.post(stack.agent.url + "/api/topology", json={"GremlinQuery": q},
                      headers={"Accept": "application/json"}, timeout=10)
    r.raise_for_status()
    return r.json()


def test_agent_api(stack, net, names):
    info = requests.get(stack.agent.url + "/api", timeout=5).json()
    assert info["Service"] == "agent" and info["Host"] == stack.agent_host_id
    st = agent_status(stack)
    link = list(st["Analyzers"].values())[0]
    assert link["IsConnected"] is True and link["ClientProtocol"] == "json" and link["IsMaster"] is True
    assert st["TopologyProbes"]["netlink"]["State"] == "running"
    assert "afpacket" in st["FlowProbes"]
    assert st["TopologyProbes"]["ovsdb"]["State"] == "connected"
    a, b = names("a"), names("b")
    net.add_veth(a, b)
    wait_until(lambda: agent_query(stack, "G.V().Has('Name','%s').Count()" % a) == 1, message="veth on the agent")
    whole = requests.get(stack.agent.url + "/api/topology", timeout=5).json()
    assert any(n["Metadata"].get("Name") == a for n in whole["Nodes"])
    # the analyzer lists the agent
    an = requests.get(stack.analyzer.url + "/api/status", timeout=5).json()
    assert an["Agents"][stack.agent_host_id]["IsConnected"] is True


def test_ovs_absent_then_started(tmp_path):
    if not PrivateOVS.available():
        pytest.skip("Open vSwitch is not installed")
    ovs = PrivateOVS(str(tmp_path / "ovs"))
    os.makedirs(ovs.dir, exist_ok=True)
    s = agent_stack(tmp_path / "stack", ovs.remote)
    try:
        s.start()
        st = agent_status(s)["TopologyProbes"]["ovsdb"]
        assert st["State"] == "waiting" and "Error" in st
        ovs.start()
        br = "agl%s" % os.urandom(3).hex()
        ovs.add_bridge(br)
        wait_until(lambda: agent_status(s)["TopologyProbes"]["ovsdb"]["State"] == "connected", timeout=10,
                   message="ovsdb probe connected")
        s.wait_count("G.V().Has('Type','ovsbridge','Name','%s')" % br, 1)
        s.wait_count("G.V().Has('Type','ovsport','Name','%s').Out('Type','internal','Name','%s')" % (br, br), 1)
        # OVS goes away again: its nodes leave the graph, the status says so
        ovs.stop()
        s.wait_count("G.V().Has('Type','ovsbridge','Name','%s')" % br, 0, timeout=15)
        assert agent_status(s)["TopologyProbes"]["ovsdb"]["State"] == "waiting"
    finally:
        s.stop()
        ovs.stop()


def _agent_ids(stack):
    g = requests.get(stack.agent.url + "/api/topology", timeout=5).json()
    return {n["ID"] for n in g["Nodes"]}, {e["ID"] for e in g["Edges"]}


def _analyzer_ids(stack):
    g = requests.get(stack.analyzer.url + "/api/topology", timeout=5).json()
    origin = "agent.%s" % stack.agent_host_id
    return ({n["ID"] for n in g["Nodes"] if n["Origin"] == origin},
            {e["ID"] for e in g["Edges"] if e["Origin"] == origin})


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_analyzer_restart(tmp_path, net, names, backend):
    """With sqlite the analyzer reloads the agent's old elements at restart: the Sync replaces them."""
    s = agent_stack(tmp_path, backend=backend)
    try:
        s.start()
        a, b, c, d = names("a"), names("b"), names("c"), names("d")
        net.add_veth(a, b)
        s.wait_count("G.V().Has('Name','%s')" % a, 1)
        s.analyzer.stop()
        wait_until(lambda: not list(agent_status(s)["Analyzers"].values())[0]["IsConnected"], timeout=10,
                   message="agent sees the analyzer gone")
        net.add_veth(c, d)   # changes while the analyzer is away
        net.ip("link", "del", a)
        s.analyzer.start()
        wait_until(lambda: list(agent_status(s)["Analyzers"].values())[0]["IsConnected"], timeout=15,
                   message="agent reconnected")
        s.wait_count("G.V().Has('Name','%s').Both('Name','%s')" % (c, d), 1)
        assert s.count("G.V().Has('Name',Within('%s','%s'))" % (a, b)) == 0
        # the analyzer holds exactly the agent's graph (retry: other tests change the host meanwhile)
        wait_until(lambda: _agent_ids(s) == _analyzer_ids(s), timeout=10, message="same graph on both sides")
        assert list(agent_status(s)["Analyzers"].values())[0]["Syncs"] >= 2
    finally:
        s.stop()


def _fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_netns_burst(stack, net, names, tmp_path):
    count = 200
    nss = [names("z") for _ in range(count)]
    pairs = [(names("v"), names("w"), nss[i]) for i in range(0, count, 4)]
    prefix = names.prefix + names.tag
    before = agent_status(stack)["TopologyProbes"]["netlink"]["Namespaces"]
    fds_before = _fd_count(stack.agent.proc.pid)
    batch = tmp_path / "add.batch"
    batch.write_text("".join("netns add %s\n" % n for n in nss)
                     + "".join("link add %s type veth peer name %s netns %s\n" % p for p in pairs))
    net.netns.extend(nss)
    net.links.extend((None, p[0]) for p in pairs)
    run(["ip", "-batch", str(batch)], timeout=120)
    stack.wait_count("G.V().Has('Type','netns','Name',Regex('%s.*'))" % prefix, count, timeout=30)
    stack.wait_count("G.V().Has('Type','netns','Name',Regex('%s.*')).Out('Type','veth')" % prefix, len(pairs),
                     timeout=30)
    stack.wait_count("G.V().Has('Name',Regex('%sv.*')).Both('Type','veth','Name',Regex('%sw.*'))" % (prefix, prefix),
                     len(pairs), timeout=30)
    batch = tmp_path / "del.batch"
    batch.write_text("".join("netns del %s\n" % n for n in nss))
    run(["ip", "-batch", str(batch)], timeout=120)
    stack.wait_count("G.V().Has('Name',Regex('%s.*'))" % prefix, 0, timeout=30)
    stack.wait_count("G.V().Has('Path',Regex('/var/run/netns/%s.*'))" % prefix, 0)
    # nothing left on the agent either: no namespace view, no socket
    wait_until(lambda: agent_status(stack)["TopologyProbes"]["netlink"]["Namespaces"] <= before, timeout=10,
               message="namespace views released")
    assert agent_query(stack, "G.V().Has('Name',Regex('%s.*')).Count()" % prefix) == 0
    wait_until(lambda: _fd_count(stack.agent.proc.pid) <= fds_before + 2, timeout=10,
               message="file descriptors released (%d before)" % fds_before)


def test_rename_and_move_between_namespaces(stack, net, names):
    ns1, ns2, a, b, c = names("n"), names("n"), names("a"), names("b"), names("c")
    net.add_netns(ns1)
    net.add_netns(ns2)
    net.add_veth(a, b, netns_b=ns1)
    net.track_link(c, ns2)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s')" % (ns1, b), 1)
    net.ip("link", "set", b, "name", c, netns=ns1)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s')" % (ns1, c), 1)
    net.ip("link", "set", c, "netns", ns2, netns=ns1)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s','Type','veth')" % (ns2, c), 1)
    stack.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s')" % (ns1, c), 0)
    assert stack.count("G.V().Has('Name',Within('%s','%s'))" % (b, c)) == 1
    # the peer link follows the interface into its new namespace
    stack.wait_count("G.V().Has('Name','%s').Both('Type','veth','Name','%s')" % (a, c), 1)
    stack.wait_count("G.V().Has('Name','%s','LinkNetNsName','%s')" % (a, ns2), 1)


def test_tid_stable_across_agent_restart(tmp_path, net, names):
    s = agent_stack(tmp_path)
    try:
        s.start()
        ns, a, b = names("n"), names("a"), names("b")
        net.add_netns(ns)
        net.add_veth(a, b, netns_b=ns)
        s.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s')" % (ns, b), 1)

        def tids():
            return {n["Metadata"]["Name"]: (n["ID"], n["Metadata"]["TID"])
                    for n in s.q("G.V().Has('Name',Within('%s','%s','%s','%s'))" % (s.agent_host_id, ns, a, b))}
        first = tids()
        assert len(first) == 4
        s.agent.stop()
        s.wait_count("G.V().Has('Name','%s')" % ns, 0)      # DeleteOnDisconnect
        s.start_agent()
        s.wait_count("G.V().Has('Name','%s','Type','netns').Out('Name','%s')" % (ns, b), 1)
        second = tids()
        assert {k: v[1] for k, v in first.items()} == {k: v[1] for k, v in second.items()}
        assert first[a][0] != second[a][0]   # node IDs are per run, TIDs are not
    finally:
        s.stop()


def test_netns_flicker(stack, net, names, tmp_path):
    """Namespaces deleted while the agent is still discovering them: nothing may stay behind."""
    nss = [names("f") for _ in range(60)]
    keep = names("k")
    prefix = names.prefix + names.tag
    batch = tmp_path / "flicker.batch"
    lines = []
    for n in nss:
        lines += ["netns add %s\n" % n, "netns del %s\n" % n]
    lines.append("netns add %s\n" % keep)
    batch.write_text("".join(lines))
    net.netns.extend(nss + [keep])
    run(["ip", "-force", "-batch", str(batch)], timeout=120)
    stack.wait_count("G.V().Has('Type','netns','Name','%s').Out('Name','lo')" % keep, 1, timeout=20)
    stack.wait_count("G.V().Has('Type','netns','Name',Regex('%sf.*'))" % prefix, 0, timeout=20)
    assert agent_query(stack, "G.V().Has('Name',Regex('%sf.*')).Count()" % prefix) == 0
    assert agent_status(stack)["TopologyProbes"]["netlink"]["State"] == "running"


def test_agent_subscriber_ws(stack, net, names):
    """The agent's own /ws/subscriber: SyncReply with its graph, then live events."""
    import asyncio
    import json

    import aiohttp

    a, b = names("a"), names("b")

    async def run_ws():
        hdr = {"X-Host-ID": "t-%s" % names.tag, "X-Client-Type": "test"}
        url = stack.agent.url.replace("http://", "ws://") + "/ws/subscriber"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers=hdr) as ws:
                await ws.send_str(json.dumps({"Namespace": "Graph", "Type": "SyncRequest", "UUID": "1", "Obj": {}}))
                reply = None
                while reply is None:
                    msg = json.loads((await ws.receive(timeout=10)).data)
                    for m in (msg if isinstance(msg, list) else [msg]):
                        if m.get("Type") == "SyncReply":
                            reply = m
                hosts = [n for n in reply["Obj"]["Nodes"] if n["Metadata"].get("Type") == "host"]
                assert [h["Metadata"]["Name"] for h in hosts] == [stack.agent_host_id]
                await asyncio.get_running_loop().run_in_executor(None, net.add_veth, a, b)
                seen = set()
                while not {a, b} <= seen:
                    msg = json.loads((await ws.receive(timeout=10)).data)
                    for m in (msg if isinstance(msg, list) else [msg]):
                        if m.get("Type") == "NodeAdded":
                            seen.add(m["Obj"]["Metadata"].get("Name"))
    asyncio.run(run_ws())


def test_two_analyzers_and_ovsdb_over_tcp(tmp_path, net, names):
    """Every analyzer of `analyzers` gets the whole graph; ovs.ovsdb may be tcp://."""
    if not PrivateOVS.available():
        pytest.skip("Open vSwitch is not installed")
    ovs = PrivateOVS(str(tmp_path / "ovs"))
    procs = []
    try:
        ovs.start()
        port = free_port()
        run(["ovs-appctl", "-t", os.path.join(ovs.dir, "ovsdb-server.ctl"), "ovsdb-server/add-remote",
             "ptcp:%d:127.0.0.1" % port])
        br = names("ob")
        ovs.add_bridge(br)
        analyzers = []
        for i in range(2):
            cfg = analyzer_config(tmp_path / ("an%d" % i))
            cfg["analyzer"]["topology"]["backend"] = "memory"
            cfg["host_id"] = "an%d-%s" % (i, names.tag)
            p = SkydiveProcess("analyzer", str(tmp_path / ("an%d" % i)), cfg)
            procs.append(p)
            analyzers.append(p.start())
        cfg = agent_config(None, "tcp://127.0.0.1:%d" % port)
        cfg["analyzers"] = [a.address for a in analyzers]
        agent = SkydiveProcess("agent", str(tmp_path / "agent"), cfg)
        procs.append(agent)
        agent.start()
        a, b = names("a"), names("b")
        net.add_veth(a, b)
        for an in analyzers:
            wait_until(lambda: an.query("G.V().Has('Name','%s').Both('Name','%s').Count()" % (a, b)) == 1,
                       message="veth on %s" % an.address)
            wait_until(lambda: an.query("G.V().Has('Type','ovsbridge','Name','%s').Count()" % br) == 1,
                       message="OVS bridge (over tcp) on %s" % an.address)
        st = requests.get(agent.url + "/api/status", timeout=5).json()
        assert sorted(v["IsConnected"] for v in st["Analyzers"].values()) == [True, True]
        assert sum(v["IsMaster"] for v in st["Analyzers"].values()) == 1
    finally:
        for p in reversed(procs):
            p.stop()
        ovs.stop()


def test_interface_metrics_history(tmp_path, net, names):
    """Upstream TestInterfaceMetrics on a history backend: the LastUpdateMetric revisions of `lo`
    aggregate to every packet the pings sent."""
    s = agent_stack(tmp_path, backend="sqlite")
    try:
        s.start()
        ns = names("n")
        net.add_netns(ns)
        net.ip("link", "set", "lo", "up", netns=ns)
        lo = "G.V().Has('Name','%s','Type','netns').Out('Name','lo')" % ns
        s.wait_count(lo, 1)
        net.spawn(["ping", "-c", "5", "-i", "0.2", "127.0.0.1"], netns=ns).wait(timeout=10)

        def aggregated():
            res = s.q("G.At('-1s', 300).%s.Metrics().Aggregates(10)" % lo[2:])
            total = sum(a.get("TxPackets", 0) for a in res[0]["Aggregated"]) if res else 0
            return res if total >= 10 else None
        res = wait_until(aggregated, timeout=15, message="10 packets in the aggregated lo metrics")
        for a in res[0]["Aggregated"]:
            assert a["Start"] < a["Last"] and a["RxPackets"] == a["TxPackets"]
        live = s.q(lo + ".Metrics().Sum()")
        assert live["TxPackets"] > 0
    finally:
        s.stop()


def test_cluster_credentials(tmp_path, net, names):
    """An analyzer with basic cluster auth takes the agent with the right credentials only."""
    cfg = analyzer_config(tmp_path / "an")
    cfg["analyzer"]["topology"]["backend"] = "memory"
    cfg["analyzer"]["auth"] = {"cluster": {"backend": "clusterauth"}}
    cfg["auth"] = {"clusterauth": {"type": "basic", "users": {"agentuser": "s3cret"}}}
    analyzer = SkydiveProcess("analyzer", str(tmp_path / "an"), cfg)
    agents = []
    try:
        analyzer.start()
        for user, password in (("agentuser", "wrong"), ("agentuser", "s3cret")):
            acfg = agent_config(analyzer)
            acfg["agent"]["auth"] = {"cluster": {"username": user, "password": password}}
            agent = SkydiveProcess("agent", str(tmp_path / ("ag-" + password)), acfg)
            agents.append(agent)
            agent.start()
        bad, good = agents

        def link_of(agent):
            return list(requests.get(agent.url + "/api/status", timeout=5).json()["Analyzers"].values())[0]
        wait_until(lambda: link_of(good)["IsConnected"], timeout=10, message="agent with credentials connected")
        bad_link = wait_until(lambda: link_of(bad).get("Error") and link_of(bad), timeout=10,
                              message="agent without credentials refused")
        assert bad_link["IsConnected"] is False and "401" in bad_link["Error"]
        host_ids = [a.config["host_id"] for a in agents]
        st = requests.get(analyzer.url + "/api/status", timeout=5).json()
        assert host_ids[1] in st["Agents"] and host_ids[0] not in st["Agents"]
    finally:
        for p in agents + [analyzer]:
            p.stop()
