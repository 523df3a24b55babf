"""Multi-node deployment over real SSH: deploy, idempotence, check mode, targeted restarts,
early validation failure and uninstall, on three simulated nodes (tests/deploy/simnodes.py).

The tests run in file order against one session cluster; each one states what it expects
the cluster to look like, so a failure in one shows up clearly in the next.
"""
import json
import os

import pytest

from tests.deploy.simnodes import REPO
from tests.fixtures.processes import wait_until

DEPLOY = os.path.join(REPO, "playbooks", "deploy.yml")
UNINSTALL = os.path.join(REPO, "playbooks", "uninstall.yml")

pytestmark = pytest.mark.timeout(1800)


def _extra(cluster, **kw):
    """-e JSON applying the same extra keys on every node on top of its own."""
    return ["-e", json.dumps(kw)]


def assert_deployed(cluster):
    status = cluster.status()
    agents = set((status.get("Agents") or {}).keys())
    assert set(cluster.names) <= agents, "agents connected: %s" % sorted(agents)
    for name in cluster.names:
        # an agent sends its topology right after connecting: allow it a moment
        query = "G.V().Has('Type', 'host', 'Name', '%s').Out().Has('Name', 'eth0')" % name
        nodes = wait_until(lambda: cluster.gremlin(query), timeout=20, interval=0.5,
                           message="the eth0 interface of %s in the graph" % name)
        assert all(n["Host"] == name for n in nodes), nodes
        ip = cluster.nodes[name]["ip"]
        assert any(ip + "/24" in (n["Metadata"].get("IPV4") or []) for n in nodes), \
            "eth0 of %s does not carry %s: %s" % (name, ip, [n["Metadata"] for n in nodes])
        lo = cluster.gremlin("G.V().Has('Type', 'host', 'Name', '%s').Out().Has('Name', 'lo')" % name)
        assert lo, "no lo interface of %s in the graph" % name
    pids = cluster.service_pids("controller")
    assert "analyzer" in pids and "agent" in pids, cluster.processes("controller")
    for name in cluster.names[1:]:
        pids = cluster.service_pids(name)
        assert "agent" in pids and "analyzer" not in pids, cluster.processes(name)


def test_deploy_three_nodes(sim_cluster):
    res = sim_cluster.playbook(DEPLOY)
    assert res.rc == 0, res.tail()
    assert set(res.recap) == set(sim_cluster.names)
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in res.recap.values())
    assert_deployed(sim_cluster)
    # every node got its own private directories
    for node in sim_cluster.nodes.values():
        cfg = os.path.join(node["root"], "etc", "skydive", "skydive.yml")
        with open(cfg) as fh:
            text = fh.read()
        assert "host_id: %s" % node["name"] in text
        assert os.path.exists(os.path.join(node["root"], "opt", "skydive", "venv", "bin", "skydive"))
        assert os.path.exists(os.path.join(node["root"], "etc", "systemd", "system", "skydive-agent.service"))
    assert os.path.exists(os.path.join(sim_cluster.nodes["controller"]["root"],
                                       "etc", "systemd", "system", "skydive-analyzer.service"))
    assert not os.path.exists(os.path.join(sim_cluster.nodes["compute1"]["root"],
                                           "etc", "systemd", "system", "skydive-analyzer.service"))


def test_second_run_changes_nothing(sim_cluster):
    before = {n: sim_cluster.service_pids(n) for n in sim_cluster.names}
    res = sim_cluster.playbook(DEPLOY)
    assert res.rc == 0, res.tail()
    assert res.changed() == {n: 0 for n in sim_cluster.names}, res.changed_tasks()
    assert {n: sim_cluster.service_pids(n) for n in sim_cluster.names} == before


def test_check_mode_changes_nothing(sim_cluster):
    before_files = sim_cluster.snapshot()
    before_pids = {n: sim_cluster.service_pids(n) for n in sim_cluster.names}
    res = sim_cluster.playbook(DEPLOY, "--check", "-e", "skydive_log_level=DEBUG")
    assert res.rc == 0, res.tail()
    # check mode predicts the change (new configuration, restarts) ...
    assert all(c > 0 for c in res.changed().values()), res.changed()
    # ... and makes none of it
    assert sim_cluster.snapshot() == before_files
    assert {n: sim_cluster.service_pids(n) for n in sim_cluster.names} == before_pids


def _extra_config(cluster, name, extra):
    cfg = dict(cluster.node_vars(name)["skydive_extra_config"])
    cfg.update(extra)
    return cfg


def _run_with_host_extra(cluster, extra, host_vars=None):
    """Deploy with `extra` merged into every node's skydive_extra_config (inventory), and
    `host_vars` set on every node."""
    inv = cluster.write_inventory()
    import yaml
    with open(inv) as fh:
        data = yaml.safe_load(fh)
    for name, hv in data["all"]["hosts"].items():
        hv["skydive_extra_config"] = _extra_config(cluster, name, extra)
        hv.update(host_vars or {})
    path = os.path.join(cluster.base, "inventory-extra.yml")
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh)
    return cluster.playbook(DEPLOY, inventory=path)


def test_agent_config_change_restarts_only_agents(sim_cluster):
    before = {n: sim_cluster.service_pids(n) for n in sim_cluster.names}
    res = _run_with_host_extra(sim_cluster, {"agent.metadata": {"rack": "r1"}})
    assert res.rc == 0, res.tail()
    after = {n: sim_cluster.service_pids(n) for n in sim_cluster.names}
    assert after["controller"]["analyzer"] == before["controller"]["analyzer"], "analyzer restarted"
    for n in sim_cluster.names:
        assert after[n]["agent"] != before[n]["agent"], "agent of %s not restarted" % n
    restarted = {t for t, _h in res.changed_tasks() if "Restart" in t}
    assert restarted == {"skydive_agent : Restart skydive-agent"}, res.changed_tasks()
    wait_until(lambda: set(sim_cluster.names) <= set(sim_cluster.status().get("Agents") or {}), 30, interval=0.5,
               message="every agent connected again")


def test_analyzer_config_change_restarts_only_analyzer(sim_cluster):
    """... and the lab services (skydive_etcd_embedded, skydive_clickhouse_deploy) come with it."""
    before = {n: sim_cluster.service_pids(n) for n in sim_cluster.names}
    res = _run_with_host_extra(sim_cluster, {"agent.metadata": {"rack": "r1"},
                                             "analyzer.flow.max_buffer_size": 5000},
                               {"skydive_fabric": ["TOR1[Name=tor1] -> PORT1[Name=p1]", "PORT1 --> *[Type=host]/lo"],
                                "skydive_etcd_embedded": True, "skydive_clickhouse_deploy": True})
    assert res.rc == 0, res.tail()
    after = {n: sim_cluster.service_pids(n) for n in sim_cluster.names}
    assert after["controller"]["analyzer"] != before["controller"]["analyzer"], "analyzer not restarted"
    for n in sim_cluster.names:
        assert after[n]["agent"] == before[n]["agent"], "agent of %s restarted" % n
    # the computes do not run an analyzer: nothing changed there at all
    assert res.changed()["compute1"] == 0 and res.changed()["compute2"] == 0, res.changed_tasks()
    # agents reconnect to the restarted analyzer (the playbook's check already waited for it)
    assert set(sim_cluster.names) <= set(sim_cluster.status().get("Agents") or {})
    # skydive_fabric reached analyzer.topology.fabric: the ToR, its port, linked to every host's lo
    assert sim_cluster.gremlin("G.V().Has('Probe','fabric','Name','tor1').Out('Name','p1').Dedup().Count()") == 1
    wait_until(lambda: sim_cluster.gremlin("G.V().Has('Probe','fabric','Name','p1').Out('Name','lo').Count()")
               == len(sim_cluster.names), 30, interval=0.5, message="p1 linked to each host's lo")
    _check_lab_services(sim_cluster)


def _check_lab_services(cluster):
    """The analyzer runs its embedded etcd member (master of every duty) and keeps its history in
    the ClickHouse the role runs (queried from the analyzer's node: it admits the analyzers only)."""
    import subprocess
    import sys
    import urllib.parse
    st = wait_until(lambda: (cluster.status().get("Etcd") or {}).get("Running") and cluster.status(),
                    timeout=30, interval=0.5, message="the embedded etcd member")
    analyzer = cluster.analyzers[0]
    assert set(st["Masters"].values()) == {analyzer}, st["Masters"]
    with open(os.path.join(cluster.credentials_dir, "clickhouse-password")) as fh:
        password = fh.read().split()[0]
    url = "http://%s:8123/?%s" % (cluster.nodes[analyzer]["ip"], urllib.parse.urlencode(
        {"user": "skydive", "password": password, "query": "SELECT count() FROM skydive.revisions"}))
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"

    def revisions():
        out = subprocess.run(["ip", "netns", "exec", cluster.nodes[analyzer]["ns"], sys.executable, "-c", fetch, url],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30, check=False)
        return int(out.stdout) if out.returncode == 0 else out.stderr[-300:]
    wait_until(lambda: isinstance(revisions(), int) and revisions() > 0, timeout=30, interval=0.5,
               message="history in the lab ClickHouse (%s)" % revisions())


def test_bad_variable_fails_before_any_change(sim_cluster):
    before = sim_cluster.snapshot()
    for bad, name in ((["-e", "skydive_analyzer_port=not-a-port"], "skydive_analyzer_port"),
                      (["-e", "skydive_install_source=ftp"], "skydive_install_source"),
                      (["-e", '{"skydive_topology_probes": {"ovsdb": 1}}'], "skydive_topology_probes")):
        res = sim_cluster.playbook(DEPLOY, *bad)
        assert res.rc != 0
        assert "Validation of arguments failed" in res.output, res.tail()
        if name:
            assert name in res.output
        # it failed in the validation play, before any role ran
        assert "PLAY [Deploy the analyzers]" not in res.output, res.tail()
    assert sim_cluster.snapshot() == before


def test_uninstall_leaves_nothing(sim_cluster):
    res = sim_cluster.playbook(UNINSTALL)
    assert res.rc == 0, res.tail()
    for node in sim_cluster.nodes.values():
        root = node["root"]
        for path in ("etc/skydive", "opt/skydive", "var/lib/skydive",
                     "etc/systemd/system/skydive-agent.service",
                     "etc/systemd/system/skydive-analyzer.service", "etc/systemd/system/skydive-clickhouse.service",
                     "etc/systemd/system/multi-user.target.wants/skydive-agent.service",
                     "run/skydive-agent.service.status", "run/skydive-analyzer.service.status"):
            assert not os.path.lexists(os.path.join(root, path)), "%s left on %s" % (path, node["name"])
        assert sim_cluster.service_pids(node["name"]) == {}, sim_cluster.processes(node["name"])
        assert all("sshd" in p for p in sim_cluster.processes(node["name"])), sim_cluster.processes(node["name"])
    if not sim_cluster.user_existed:
        import subprocess
        assert subprocess.run(["getent", "passwd", sim_cluster.sys_user], stdout=subprocess.DEVNULL).returncode != 0
        assert subprocess.run(["getent", "group", sim_cluster.sys_user], stdout=subprocess.DEVNULL).returncode != 0
    res = sim_cluster.playbook(UNINSTALL)
    assert res.rc == 0 and res.changed() == {n: 0 for n in sim_cluster.names}, res.changed_tasks()
