"""`skydive analyzer|agent|allinone` through the real CLI: where `-c` goes, and the configurations
that are refused at start (unknown probe, Keystone without auth_url, peering) with exit code 2 and a message."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
import yaml

from skydive_runtime.agent.probes import PROBES as AGENT_PROBES
from skydive_runtime.analyzer.probes import PROBES as ANALYZER_PROBES
from tests.fixtures.processes import REPO, free_port

SKYDIVE = [sys.executable, "-m", "skydive_runtime.cli.main"]
MEMORY = {"topology": {"backend": "memory"}, "flow": {"backend": "memory"}}


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _run(*args, timeout=30):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(SKYDIVE + list(args), capture_output=True, text=True, env=env, timeout=timeout)


def _refused(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("skydive: configuration error: "), p.stderr
    for n in needles:
        assert n in line, (n, line)


class _Service:
    """A `skydive ...` process started with the exact arguments given; stopped with SIGTERM."""

    def __init__(self, args, tmp_path):
        self.log = open(str(tmp_path / ("svc-%d.log" % free_port())), "w+")
        self.proc = subprocess.Popen(SKYDIVE + list(args), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONPATH=REPO), start_new_session=True)

    def wait_status(self, address, timeout=20, ok=lambda st: True):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise AssertionError("exited %s: %s" % (self.proc.returncode, self.log.read()[-2000:]))
            try:
                r = requests.get("http://%s/api/status" % address, timeout=1)
                if r.status_code == 200 and ok(r.json()):
                    return r.json()
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("no status on %s" % address)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


def test_unknown_agent_probe_is_refused_naming_it_and_the_available_ones(tmp_path):
    conf = _write(tmp_path, "a.yml", {"agent": {"topology": {"probes": ["ovsdb", "lldpd"]}}})
    _refused(_run("agent", "-c", conf), "agent.topology.probes: unknown topology probe 'lldpd'",
             "(available: %s)" % ", ".join(AGENT_PROBES.names()))


def test_unknown_agent_probe_from_the_environment(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, SKYDIVE_AGENT_TOPOLOGY_PROBES="ovsdb k8s")
    p = subprocess.run(SKYDIVE + ["agent", "-c", _write(tmp_path, "empty.yml", {})], capture_output=True, text=True,
                       env=env, timeout=30)
    _refused(p, "unknown topology probe 'k8s'")


def test_unknown_analyzer_probe_is_refused(tmp_path):
    conf = _write(tmp_path, "an.yml", {"analyzer": dict(MEMORY, topology={"backend": "memory", "probes": ["k8s"]})})
    _refused(_run("-c", conf, "analyzer"), "analyzer.topology.probes: unknown topology probe 'k8s'",
             "(available: %s)" % (", ".join(ANALYZER_PROBES.names()) or "none"))


def test_allinone_checks_both_probe_lists(tmp_path):
    conf = _write(tmp_path, "all.yml", {"analyzer": MEMORY, "agent": {"topology": {"probes": ["opencontrail"]}}})
    _refused(_run("allinone", "-c", conf), "agent.topology.probes: unknown topology probe 'opencontrail'")


@pytest.mark.parametrize("auth", [
    {"analyzer": {"auth": {"api": {"backend": "keystone"}}}},                 # upstream's built-in name
    {"analyzer": {"auth": {"cluster": {"backend": "ks"}}}, "auth": {"ks": {"type": "keystone"}}},
])
def test_keystone_without_auth_url_is_refused_with_a_configuration_error(tmp_path, auth):
    cfg = dict(auth, analyzer=dict(MEMORY, listen="127.0.0.1:%d" % free_port(), **auth["analyzer"]))
    p = _run("analyzer", "-c", _write(tmp_path, "ks.yml", cfg))
    _refused(p, "auth_url: the Keystone URL is required (http(s)://host:5000/v3)")


def test_analyzer_peers_are_refused(tmp_path):
    cfg = {"analyzer": dict(MEMORY, peers={"dc2": {"endpoints": ["10.0.0.2:8082"]}})}
    _refused(_run("analyzer", "-c", _write(tmp_path, "p.yml", cfg)), "analyzer.peers: peering between analyzers is not implemented")


def test_analyzer_bad_fabric_definition_is_refused(tmp_path):
    cfg = {"analyzer": {"topology": {"backend": "memory", "fabric": ["*[Type=host]/eth0 -> TOR1[Name=tor1]"]},
                        "flow": {"backend": "memory"}}}
    _refused(_run("analyzer", "-c", _write(tmp_path, "f.yml", cfg)),
             "analyzer.topology.fabric: a wildcard node cannot be the parent of a link")


def test_probe_registries_import_every_module():
    for registry in (AGENT_PROBES, ANALYZER_PROBES):
        for name in registry.names():
            module = __import__(registry.package + registry._modules[name], fromlist=["create"])
            assert callable(module.create), name
    assert set(AGENT_PROBES.always_on) <= set(AGENT_PROBES.names())


@pytest.mark.parametrize("where", ["after", "before", "both"])
def test_analyzer_conf_before_or_after_the_command(tmp_path, where):
    port = free_port()
    base = _write(tmp_path, "base.yml", {"host_id": "from-base", "analyzer": dict(MEMORY, listen="127.0.0.1:1")})
    top = _write(tmp_path, "top.yml", {"host_id": "cli-conf-%s" % where, "analyzer": {"listen": "127.0.0.1:%d" % port}})
    args = {"after": ["analyzer", "-c", base, "--conf", top],
            "before": ["-c", base, "-c", top, "analyzer"],
            "both": ["-c", base, "analyzer", "-c", top]}[where]      # files before the command are read first
    svc = _Service(args, tmp_path)
    try:
        svc.wait_status("127.0.0.1:%d" % port)
        info = requests.get("http://127.0.0.1:%d/api" % port, timeout=5).json()
        assert info["Host"] == "cli-conf-%s" % where and info["Service"] == "analyzer"
    finally:
        assert svc.stop() == 0


def test_workflow_create_is_refused_clearly(analyzer_process, tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text("Name: Ping\nSource: 'function() { return 1 }'\n")
    base = ["client", "--analyzer", analyzer_process.address, "workflow"]
    p = _run(*(base + ["create", "--path", str(wf)]))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "(400): user workflows are JavaScript, which this analyzer does not run" in p.stderr
    listed = json.loads(_run(*(base + ["list"])).stdout)
    assert sorted(w["Name"] for w in listed.values()) == ["CheckConnectivity", "CheckMTU", "FlowMatrix",
                                                          "FlowValidation"]


def test_client_takes_the_analyzer_from_the_conf_files(analyzer_process, tmp_path):
    conf = _write(tmp_path, "client.yml", {"analyzers": [analyzer_process.address, "127.0.0.1:1"]})
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("SKYDIVE_ANALYZER", None)
    p = subprocess.run(SKYDIVE + ["-c", conf, "client", "status"], capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "Agents" in json.loads(p.stdout)
    unused = "127.0.0.1:%d" % free_port()        # --analyzer wins over the files
    p = subprocess.run(SKYDIVE + ["-c", conf, "client", "--analyzer", unused, "status"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert p.returncode == 1 and "cannot reach the analyzer at %s" % unused in p.stderr
