"""fabric probe (analyzer.topology.fabric) with two real agents: upstream's node and edge IDs, the
wildcard link to each host's own interface, and the static nodes across analyzer restarts (a
definition dropped from the configuration takes its node away)."""

import os
import uuid

import pytest

from tests.agent.conftest import agent_config
from tests.fixtures.processes import SkydiveProcess, analyzer_config
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.needs_root

FABRIC = ["TOR1[Name=tor1] -> [color=red] PORT1[Name=p1, MTU=1500]",
          "TOR1 -> PORT2[Name=p2]",
          "PORT2 --> PORT3[Name=p3, Type=port]",
          "PORT1 --> *[Type=host]/lo"]


def fid(defname):
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "fabric" + defname))


def link_id(parent, child, relation):
    return str(uuid.uuid5(uuid.NAMESPACE_OID, parent + child + relation))


@pytest.fixture(scope="module")
def fabric_stack(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    workdir = tmp_path_factory.mktemp("fabric")
    cfg = analyzer_config(str(workdir))
    cfg["analyzer"]["topology"]["fabric"] = list(FABRIC)
    stack = Stack(workdir, agent_config(None, host_id="fab-a-%s" % os.urandom(2).hex()), cfg)
    second = None
    try:
        stack.start()
        second = SkydiveProcess("agent", os.path.join(str(workdir), "agent2"),
                                dict(agent_config(None, host_id="fab-b-%s" % os.urandom(2).hex()),
                                     analyzers=[stack.analyzer.address]))
        second.start()
        yield stack, [stack.agent_host_id, second.config["host_id"]]
    finally:
        if second is not None:
            second.stop()
        stack.stop()


def _edges(stack, node_id):
    return {e["ID"]: e for e in stack.q("G.V('%s').BothE()" % node_id)}


def _check(stack, hosts):
    tor = stack.q("G.V('%s')" % fid("TOR1"))[0]
    assert tor["Metadata"] == {"Name": "tor1", "Type": "device", "Probe": "fabric", "TID": fid("TOR1")}
    assert tor["Host"] == "test-analyzer"          # upstream: the analyzer graph's host
    p1 = stack.q("G.V('%s')" % fid("PORT1"))[0]["Metadata"]
    assert p1 == {"Name": "p1", "MTU": "1500", "Type": "device", "Probe": "fabric", "TID": fid("PORT1")}
    assert stack.q("G.V('%s')" % fid("PORT3"))[0]["Metadata"]["Type"] == "port"
    edges = _edges(stack, fid("TOR1"))
    own = link_id(fid("TOR1"), fid("PORT1"), "ownership")
    l2 = link_id(fid("TOR1"), fid("PORT1"), "layer2")
    assert edges[own]["Metadata"] == {"RelationType": "ownership"}
    assert edges[l2]["Metadata"] == {"RelationType": "layer2", "Type": "fabric", "color": "red"}
    assert edges[l2]["Parent"] == fid("TOR1") and edges[l2]["Child"] == fid("PORT1")
    assert link_id(fid("TOR1"), fid("PORT2"), "ownership") in edges
    # --> is layer2 only
    p3 = _edges(stack, fid("PORT3"))
    assert list(p3) == [link_id(fid("PORT2"), fid("PORT3"), "layer2")]
    # the wildcard: PORT1 -layer2-> each host's lo
    for host in hosts:
        lo = stack.q("G.V().Has('Type','host','Name','%s').Out('Name','lo')" % host)[0]
        eid = link_id(fid("PORT1"), lo["ID"], "layer2")
        stack.wait_count("G.E('%s')" % eid, 1, message="PORT1 -> lo of %s" % host)
        assert stack.q("G.E('%s')" % eid)[0]["Metadata"] == {"RelationType": "layer2", "Type": "fabric"}
    assert stack.count("G.V('%s').Out('Name','lo')" % fid("PORT1")) == len(hosts)


def test_fabric_ids_and_links(fabric_stack):
    stack, hosts = fabric_stack
    _check(stack, hosts)
    assert stack.analyzer.query("G.V().Has('Probe','fabric').Count()") == 4


def test_fabric_across_restarts(fabric_stack):
    stack, hosts = fabric_stack
    before = stack.q("G.V('%s')" % fid("TOR1"))[0]
    stack.analyzer.stop()
    stack.analyzer.start()
    after = stack.q("G.V('%s')" % fid("TOR1"))[0]
    assert after["CreatedAt"] == before["CreatedAt"]          # the stored node, not a new one
    for host in hosts:                                        # the agents come back, so do the links
        stack.wait_count("G.V().Has('Type','host','Name','%s')" % host, 1, timeout=20)
    _check(stack, hosts)
    # a definition dropped from the configuration: its node goes at the next start
    stack.analyzer.stop()
    stack.analyzer.config["analyzer"]["topology"]["fabric"] = [d for d in FABRIC if "PORT3" not in d]
    stack.analyzer.start()
    assert stack.count("G.V().Has('Probe','fabric','Name','p3')") == 0       # G.V(missing id) is a 400
    assert stack.count("G.V('%s')" % fid("PORT2")) == 1
