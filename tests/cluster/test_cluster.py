"""Three analyzers as one (issue 14, docs/scale-out.md): a 3-member etcd cluster and ClickHouse on
loopback, three real analyzers (replication full mesh, resources and elections in etcd, flows and
history in ClickHouse) and two real agents, each in its own network namespace.

One module-scoped cluster; the test walks the whole life: capture created on one analyzer runs
on the agents linked to the two others, flows live and stored from every analyzer, the graph of
any analyzer holds both agents, kill -9 of the master (another is master within 10 s, the
capture keeps counting, an alert fires exactly once, an injection is not run again, the agent
moves, the host of an agent that died with it leaves every graph), restart (it rejoins and catches up), nothing stored is lost. The master of the captures
and injections duties starts them on every agent (the one linked to another analyzer through it).
"""

import os
import shutil
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.fixtures.cluster import AnalyzerCluster
from tests.fixtures.processes import SkydiveProcess, wait_until
from tests.fixtures.servers import clickhouse_server, etcd_cluster
from tests.fixtures.topology import NetEnv, Names

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("ping"),
                                reason="needs root, ip and ping (network namespaces)")


class Webhook:
    """Counts the alert POSTs it receives."""

    def __init__(self, address):
        self.posts = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hook.posts.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass
        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.url = "http://%s:%d/hook" % (address, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Namespaces: an address the analyzers listen on, two agent namespaces routed to it."""
    net, names = NetEnv(), Names("kc")
    tag = uuid.uuid4().int % 200 + 20
    try:
        dummy, peer = names("d"), names("e")     # a veth pair in the root namespace holds the address
        net.add_veth(dummy, peer)
        address = "10.%d.0.1" % tag
        net.ip("addr", "add", address + "/32", "dev", dummy)
        net.ip("link", "set", dummy, "up")
        net.ip("link", "set", peer, "up")
        agents = []
        for k in (1, 2):
            ns = net.add_netns(names("n"))
            host_if, ns_if = names("h"), names("v")
            net.add_veth(host_if, ns_if, netns_b=ns)
            hip, nip = "10.%d.%d.1" % (tag, k), "10.%d.%d.2" % (tag, k)
            net.ip("addr", "add", hip + "/30", "dev", host_if)
            net.ip("link", "set", host_if, "up")
            net.ip("addr", "add", nip + "/30", "dev", ns_if, netns=ns)
            net.ip("link", "set", ns_if, "up", netns=ns)
            net.ip("link", "set", "lo", "up", netns=ns)
            net.ip("route", "add", "default", "via", hip, netns=ns)
            agents.append({"netns": ns, "ifname": ns_if, "ip": nip, "peer": hip, "host_if": host_if})
        d = tmp_path_factory.mktemp("cluster")
        yield {"address": address, "agents": agents, "dir": d, "net": net}
    finally:
        net.cleanup()


class GhostAgent:
    """A simulated agent linked to one analyzer only: it publishes its host node and stays
    connected until that analyzer dies (then it is gone for good, like an agent on its machine)."""

    def __init__(self, url, host):
        import asyncio
        self.host, self.url = host, url
        self.loop = asyncio.new_event_loop()
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)
        self.thread.start()

    async def _run(self):
        import json
        import aiohttp
        headers = {"X-Host-ID": self.host, "X-Client-Type": "agent", "X-Client-Protocol": "json",
                   "X-Persistence-Policy": "DeleteOnDisconnect"}
        now = int(time.time() * 1000)
        node = {"ID": self.host + "-node", "Metadata": {"Name": self.host, "Type": "host"}, "Host": self.host,
                "Origin": "agent." + self.host, "CreatedAt": now, "UpdatedAt": now, "Revision": 1}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(self.url + "/ws/agent/topology", headers=headers) as ws:
                    await ws.send_str(json.dumps({"Namespace": "Graph", "Type": "Sync", "UUID": "", "Status": 200,
                                                  "Obj": {"Nodes": [node], "Edges": []}}))
                    self.connected.set()
                    async for _msg in ws:
                        pass
        except aiohttp.ClientError:
            pass


def _agent(workdir, name, info, analyzers):
    empty = os.path.join(str(workdir), name + "-netns")     # not the other agent's namespace
    os.makedirs(empty, exist_ok=True)
    cfg = {"host_id": name, "analyzers": analyzers, "agent": {"topology": {"probes": [], "netns": {"run_path": empty}},
                                                              "capture": {"stats_update": 1}},
           "flow": {"update": 1, "expire": 600}, "logging": {"level": "INFO"}}
    return SkydiveProcess("agent", os.path.join(str(workdir), name), cfg, host=info["ip"], netns=info["netns"])


@pytest.fixture(scope="module")
def cluster(env):
    d = env["dir"]
    with clickhouse_server(d) as ch, etcd_cluster(d, members=3) as etcd:
        c = AnalyzerCluster(d, 3, etcd, ch, address=env["address"])
        try:
            c.start()
            yield c
        finally:
            c.stop()


def test_load_small(cluster):
    """benchmarks/cluster_bench.py in small: simulated agents on the three analyzers, every update
    reaches the subscribers of every analyzer, with a bounded lag."""
    import asyncio
    from benchmarks.cluster_bench import run_load
    r = asyncio.run(run_load([cluster.url(n) for n in cluster.names], agents=6, rate=10, duration=4))
    assert r["sent"] == 6 * 40
    assert r["missing"] == [0, 0, 0], r
    assert r["lag_p95"] < 2.0, r


def test_three_analyzers_two_agents_failover(env, cluster):
    d = env["dir"]
    agents = []
    hook = Webhook(env["address"])
    try:
        a0 = cluster.names[0]
        addr = dict(zip(cluster.names, cluster.addresses()))
        # everyone agrees on the masters, and the peers are the real ones
        master = wait_until(lambda: len({cluster.masters(n)["alerts"] for n in cluster.names}) == 1
                            and cluster.masters(a0)["alerts"], message="one alerts master")
        duties = ("alerts", "rules", "captures", "injections", "history")
        wait_until(lambda: all(cluster.masters(n) == cluster.masters(a0) for n in cluster.names)
                   and all(cluster.masters(a0)[d] for d in duties), message="one master per duty")
        masters = cluster.masters(a0)
        for n in cluster.names:
            st = cluster.status(n)
            assert st["Alerts"]["IsMaster"] is (n == master)
            assert st["Captures"]["IsMaster"] is (n == masters["captures"])
            assert cluster.linked_peers(n) == set(cluster.names) - {n}
        # two agents: the first prefers the master, the second another analyzer
        others = [n for n in cluster.names if n != master]
        order1 = [master] + others
        order2 = [others[0], others[1], master]
        names = ["kcag1-%s" % uuid.uuid4().hex[:4], "kcag2-%s" % uuid.uuid4().hex[:4]]
        for name, info, order in zip(names, env["agents"], (order1, order2)):
            agents.append(_agent(d, name, info, [addr[n] for n in order]).start())
        ghost = GhostAgent(cluster.url(master), "kcghost-%s" % uuid.uuid4().hex[:4])
        assert ghost.connected.wait(10)
        hosts_q = "G.V().Has('Type','host').Values('Name')"
        for n in cluster.names:     # one graph from any analyzer
            wait_until(lambda n=n: ghost.host in (cluster.q(n, hosts_q) or []), timeout=20, message="ghost on %s" % n)
            wait_until(lambda n=n: cluster.q(n, "G.V().Has('Type','host').Values('Name')") and
                       set(names) <= set(cluster.q(n, "G.V().Has('Type','host').Values('Name')")),
                       timeout=20, message="both agents' hosts on %s" % n)
        time.sleep(0.5)
        t_seen = int(time.time() * 1000)     # both agents in every graph (and history) from now on
        linked = {n: set(cluster.status(n)["Agents"]) for n in cluster.names}
        # history recorded once: by the analyzer each agent is linked to, not by every analyzer
        for name in names:
            nid = cluster.q(a0, "G.V().Has('Type', 'host', 'Name', '%s')" % name)[0]["ID"]
            recorders = cluster.clickhouse.query("SELECT DISTINCT recorder FROM %s.revisions WHERE eid = '%s'"
                                                 % (cluster.database, nid)).split()
            assert recorders == [master if name == names[0] else others[0]], (name, recorders)
        assert linked[master] == {names[0], ghost.host} and linked[others[0]] == {names[1]} and linked[others[1]] == set()
        # traffic in both namespaces, a capture created on the analyzer without agents
        for info in env["agents"]:
            env["net"].spawn(["ping", "-q", "-i", "0.2", info["peer"]], netns=info["netns"])
        ifs = [info["ifname"] for info in env["agents"]]
        creator = others[1]
        r = requests.post(cluster.url(creator) + "/api/capture", timeout=10,
                          json={"GremlinQuery": "G.V().Has('Name', Within('%s', '%s'))" % tuple(ifs), "Name": "cl"})
        assert r.status_code == 201, r.text
        cid = r.json()["UUID"]
        active = "G.V().Has('Captures.ID', '%s', 'Captures.State', 'active').Count()" % cid
        for n in cluster.names:
            wait_until(lambda n=n: cluster.q(n, active) == 2, timeout=30, message="capture active on both agents (%s: %s)"
                       % (n, cluster.q(n, "G.V().Has('Name', Within('%s', '%s')).Values('Captures')" % tuple(ifs))))
        live = "G.Flows().Has('CaptureID', '%s', 'Application', 'ICMPv4')" % cid
        stored = "G.At('-0s', 600).Flows().Has('CaptureID', '%s', 'Application', 'ICMPv4')" % cid
        for n in cluster.names:   # live and stored flows of both agents from every analyzer
            wait_until(lambda n=n: len(set(cluster.q(n, live + ".Values('NodeTID')"))) == 2, timeout=30,
                       message="live flows of both agents on %s" % n)
            wait_until(lambda n=n: len(set(cluster.q(n, stored + ".Values('NodeTID')"))) == 2, timeout=30,
                       message="stored flows of both agents on %s" % n)
        # an alert created on one analyzer fires once for the cluster
        trigger = "kc-trigger-%s" % uuid.uuid4().hex[:4]
        r = requests.post(cluster.url(others[0]) + "/api/alert", timeout=10,
                          json={"Expression": "G.V().Has('Name', Regex('%s-.*'))" % trigger, "Action": hook.url})
        assert r.status_code == 201, r.text
        time.sleep(0.5)
        r = requests.post(cluster.url(others[0]) + "/api/node", timeout=10,
                          json={"ID": trigger + "-1", "Metadata": {"Name": trigger + "-1", "Type": "device"}})
        assert r.status_code == 201, r.text
        wait_until(lambda: len(hook.posts) == 1, timeout=10, message="one alert firing")
        # an injection from agent 1's interface, created on another analyzer, run once by the master
        with open("/sys/class/net/%s/address" % env["agents"][0]["host_if"]) as f:
            gw_mac = f.read().strip()
        r = requests.post(cluster.url(others[1]) + "/api/injectpacket", timeout=10,
                          json={"Src": "G.V().Has('Name', '%s')" % env["agents"][0]["ifname"], "Type": "icmp4",
                                "DstIP": env["agents"][0]["peer"], "DstMAC": gw_mac, "Count": 3, "Interval": 50,
                                "ICMPID": 4242})
        assert r.status_code == 201, r.text
        injected = live + ".Has('ICMP.ID', 4242).Values('Metric.ABPackets')"
        wait_until(lambda: cluster.q(others[0], injected) == [3], timeout=20, message="3 injected packets, once")
        stored_before = set(cluster.q(others[0], stored + ".Values('UUID')"))
        packets_before = max(cluster.q(others[0], live + ".Has('NodeTID', '%s').Values('Metric.ABPackets')"
                                       % _tid(cluster, others[0], env["agents"][0]["ifname"], names[0])))

        # kill -9 the master
        t_kill = time.monotonic()
        os.killpg(cluster.analyzers[master].proc.pid, signal.SIGKILL)
        cluster.analyzers[master].proc.wait(10)
        cluster.analyzers[master].proc = None
        new = wait_until(lambda: cluster.masters(others[0])["alerts"] not in ("", master)
                         and cluster.masters(others[0])["alerts"], timeout=10, message="a new master")
        assert time.monotonic() - t_kill < 10
        wait_until(lambda: cluster.masters(others[1])["alerts"] == new, timeout=5, message="agreement on the new master")
        wait_until(lambda: all(cluster.masters(others[0])[d] in others for d in duties), timeout=10,
                   message="every duty taken over")
        # the master's agent moved to the next analyzer of its list
        wait_until(lambda: any(names[0] in cluster.status(n)["Agents"] for n in others), timeout=15, message="agent 1 moved")
        # the agent that died with it leaves every graph after agent_grace (3 s); the moved one stays
        for n in others:
            wait_until(lambda n=n: ghost.host not in cluster.q(n, hosts_q), timeout=15, message="ghost gone on %s" % n)
            assert names[0] in cluster.q(n, hosts_q)
        # ... and from the history: the dead analyzer's record ends at its last heartbeat
        at_now = "G.At(%d).V().Has('Type','host').Values('Name')"
        wait_until(lambda: ghost.host not in (cluster.q(others[1], at_now % int(time.time() * 1000)) or []),
                   timeout=15, message="ghost out of the history")
        assert names[0] in cluster.q(others[1], at_now % int(time.time() * 1000))
        # the capture keeps counting (seen from the analyzer that did not hold it)
        tid1 = _tid(cluster, others[1], env["agents"][0]["ifname"], names[0])
        wait_until(lambda: max(cluster.q(others[1], live + ".Has('NodeTID', '%s').Values('Metric.ABPackets')" % tid1)
                               or [0]) > packets_before + 5, timeout=20, message="capture still counting")
        # the alert fires exactly once for a new trigger, from the new master
        r = requests.post(cluster.url(others[1]) + "/api/node", timeout=10,
                          json={"ID": trigger + "-2", "Metadata": {"Name": trigger + "-2", "Type": "device"}})
        assert r.status_code == 201, r.text
        wait_until(lambda: len(hook.posts) >= 2, timeout=10, message="second firing")
        time.sleep(1.5)
        assert len(hook.posts) == 2
        # the new master took the injection over from its record: agent 1's interface (now linked
        # to a live analyzer, in the graph again) did not get it a second time
        assert cluster.q(others[1], injected) == [3]
        # nothing stored is lost
        after = set(cluster.q(others[1], stored + ".Values('UUID')"))
        assert stored_before <= after

        # restart the killed analyzer: it rejoins and catches up
        cluster.start_one(master)
        cluster.wait_mesh()
        wait_until(lambda: set(names) <= set(cluster.q(master, "G.V().Has('Type','host').Values('Name')")),
                   timeout=20, message="restarted analyzer sees both agents")
        assert ghost.host not in cluster.q(master, hosts_q)
        assert cluster.q(master, active) == 2
        assert len(requests.get(cluster.url(master) + "/api/alert", timeout=10).json()) == 1
        assert stored_before <= set(cluster.q(master, stored + ".Values('UUID')"))
        # its own history before the kill is still there (recorded in ClickHouse)
        assert set(names) <= set(cluster.q(master, "G.At(%d).V().Has('Type','host').Values('Name')" % t_seen) or [])
        assert cluster.masters(master)["alerts"] == new
    finally:
        for p in agents:
            p.stop()
        hook.close()
        for p in cluster.analyzers.values():
            if p.proc is not None and os.environ.get("KC_KEEP_LOGS"):
                print(p.log_tail(30))
        for p in agents:
            if os.environ.get("KC_KEEP_LOGS"):
                print(p.log_tail(30))


def _tid(cluster, an, ifname, host):
    tids = cluster.q(an, "G.V().Has('Name', '%s').Values('TID')" % ifname)
    assert tids, "no TID for %s on %s" % (ifname, host)
    return tids[0]
