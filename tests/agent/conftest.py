"""Agent test harness: a real `skydive analyzer` and a real `skydive agent` (subprocesses), a private
Open vSwitch, and a NetEnv per test that removes every namespace/link the test made."""

import os
import shutil

import pytest

from tests.fixtures.processes import SkydiveProcess, analyzer_config
from tests.fixtures.topology import Names, PrivateOVS, wait_until

pytestmark = pytest.mark.needs_root

HAVE_IP = shutil.which("ip") is not None


def agent_config(analyzer, ovsdb="unix:///nonexistent/db.sock", host_id=None, **extra):
    cfg = {
        "host_id": host_id or "agent-%s" % os.urandom(3).hex(),
        "analyzers": [analyzer.address] if analyzer is not None else [],
        "agent": {
            "topology": {"probes": ["ovsdb"], "netlink": {"metrics_update": 1}},
            "metadata": {"mydict": {"value": 123},
                         "myarrays": {"integers": [1, 2, 3], "bools": [True, True], "strings": ["dog", "cat", "frog"]}},
        },
        "ovs": {"ovsdb": ovsdb},
        "logging": {"level": "INFO"},
    }
    for k, v in extra.items():
        cfg[k] = v
    return cfg


class Stack:
    """analyzer + agent subprocesses; `q(query)` runs Gremlin on the analyzer."""

    def __init__(self, workdir, ovsdb, start_agent=True, agent_host_id=None, backend="memory"):
        self.workdir = workdir
        cfg = analyzer_config(workdir)
        cfg["analyzer"]["topology"]["backend"] = backend
        cfg["analyzer"]["flow"]["backend"] = backend
        self.analyzer = SkydiveProcess("analyzer", os.path.join(str(workdir), "analyzer"), cfg)
        self.ovsdb = ovsdb
        self.agent = None
        self.agent_host_id = agent_host_id
        self.start_agent = start_agent

    def start(self):
        self.analyzer.start()
        if self.start_agent:
            self.launch_agent()
        return self

    def launch_agent(self):
        cfg = agent_config(self.analyzer, self.ovsdb, host_id=self.agent_host_id)
        self.agent_host_id = cfg["host_id"]
        self.agent = SkydiveProcess("agent", os.path.join(str(self.workdir), "agent"), cfg)
        self.agent.start()
        wait_until(lambda: self.q("G.V().Has('Type','host','Name','%s').Count()" % self.agent_host_id) == 1,
                   timeout=15, message="agent host node on the analyzer")
        return self.agent

    def stop(self):
        for p in (self.agent, self.analyzer):
            if p is not None:
                p.stop()

    def q(self, query):
        return self.analyzer.query(query)

    def count(self, query):
        return self.q(query + ".Count()")

    def wait_count(self, query, expected, timeout=10, message=None):
        return wait_until(lambda: self.count(query) == expected or None, timeout=timeout,
                          message=message or "%s.Count() == %d (now %r)" % (query, expected, self.count(query)))

    def node(self, name, extra=""):
        found = self.q("G.V().Has('Name','%s'%s)" % (name, extra))
        return found[0] if len(found) == 1 else None


@pytest.fixture(scope="session")
def ovs(tmp_path_factory):
    if not PrivateOVS.available():
        pytest.skip("Open vSwitch is not installed")
    o = PrivateOVS(str(tmp_path_factory.mktemp("ovs"))).start()
    try:
        yield o
    finally:
        o.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, ovs):
    if os.geteuid() != 0 or not HAVE_IP:
        pytest.skip("needs root and iproute2")
    s = Stack(tmp_path_factory.mktemp("stack"), ovs.remote)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def names():
    return Names("ag")


@pytest.fixture
def ovs_bridges(ovs):
    """Bridges added through this fixture are deleted (with their ports) after the test."""
    made = []

    class _B:
        def add(self, name):
            made.append(name)
            return ovs.add_bridge(name)

        def vsctl(self, *args):
            return ovs.vsctl(*args)

    try:
        yield _B()
    finally:
        for name in reversed(made):
            ovs.del_bridge(name)
