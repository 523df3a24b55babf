"""Agent test harness: the stack of tests/fixtures/stack.py (a real `skydive analyzer` and a real
`skydive agent`) on the host (`stack`) or beside the private Open vSwitch in its namespace
(`ovs_stack`), and a NetEnv per test (tests/conftest.py) that removes every namespace/link the
test made."""

import os
import shutil

import pytest

from tests.fixtures.processes import analyzer_config
from tests.fixtures.stack import Stack
from tests.fixtures.topology import Names

pytestmark = pytest.mark.needs_root

HAVE_IP = shutil.which("ip") is not None
NO_OVSDB = "unix:///nonexistent/db.sock"


def agent_config(analyzer, ovsdb=NO_OVSDB, host_id=None, **extra):
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


def agent_stack(workdir, ovsdb=NO_OVSDB, backend="memory", ovs=None):
    """A Stack whose agent runs agent_config(); the analyzer keeps topology and flows in `backend`.
    With `ovs`, the agent runs beside that switch, in its namespace (Stack)."""
    cfg = analyzer_config(str(workdir))
    cfg["analyzer"]["topology"]["backend"] = backend
    cfg["analyzer"]["flow"]["backend"] = backend
    return Stack(workdir, agent_config(None, ovsdb), cfg, ovs=ovs)


@pytest.fixture(scope="session")
def stack(tmp_path_factory, ovs):
    if os.geteuid() != 0 or not HAVE_IP:
        pytest.skip("needs root and iproute2")
    s = agent_stack(tmp_path_factory.mktemp("stack"), ovs.remote)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def ovs_stack(tmp_path_factory, ovs):
    """An agent in the private switch's namespace: its bridges, ports and internal interfaces are
    the agent's host's, as on a host running Open vSwitch (create the test's host-side links in
    `ovs.netns`)."""
    if os.geteuid() != 0 or not HAVE_IP:
        pytest.skip("needs root and iproute2")
    s = agent_stack(tmp_path_factory.mktemp("ovs-stack"), ovs=ovs)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def names():
    return Names("ag")
