"""The agent's docker probe against a real Docker-compatible API (`podman system service`,
tests/fixtures/podman.py) and a container started from a local image (the host's busybox, no
registry): the container node appears inside its network namespace's node with its interfaces and
upstream's Container metadata; stopping it removes it."""

import pytest
import requests

from tests.agent.conftest import agent_config
from tests.fixtures.podman import IMAGE, Podman
from tests.fixtures.processes import analyzer_config
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def engine():
    if not Podman.available():
        pytest.skip("podman, runc and busybox are needed")
    podman = Podman().start()
    try:
        yield podman
    finally:
        podman.cleanup()


@pytest.fixture(scope="module")
def docker_stack(tmp_path_factory, engine):
    workdir = tmp_path_factory.mktemp("docker-stack")
    cfg = agent_config(None)
    cfg["agent"]["topology"]["probes"] = ["docker"]
    cfg["agent"]["topology"]["docker"] = {"url": engine.url}
    s = Stack(workdir, cfg, analyzer_config(str(workdir)))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_container_in_its_namespace_then_gone(docker_stack, engine, names):
    stack = docker_stack
    name = names("ct")
    cid = engine.run(name, labels={"skydive.test.tier": "web", "plain": "yes"})
    try:
        q = "G.V().Has('Type','netns','Manager','docker','Name','%s').Out('Type','container','Name','%s')" % (name, name)
        node = stack.wait_q(q, lambda v: len(v) == 1, timeout=20, message="the container node in its netns")[0]
        md = node["Metadata"]
        pid = engine.inspect(name)["State"]["Pid"]
        assert md["Manager"] == "docker"
        c = md["Container"]
        assert c["ID"] == cid and c["Image"] == IMAGE and c["ImageID"].endswith(engine.inspect(name)["Image"].split(":")[-1])
        assert c["Status"] == "running" and c["InitProcessPID"] == pid and c["Runtime"] == "docker"
        assert c["Labels"] == {"skydive": {"test": {"tier": "web"}}, "plain": "yes"}
        assert stack.count("G.V().Has('Container.Labels.skydive.test.tier','web')") == 1
        # the namespace's interfaces: the CNI veth (eth0) with its address, and lo
        ns = "G.V().Has('Type','netns','Name','%s')" % name
        stack.wait_count(ns + ".Out('Name','eth0','Type','veth')", 1)
        ip = engine.inspect(name)["NetworkSettings"]["Networks"][engine.network]["IPAddress"]
        stack.wait_q(ns + ".Out('Name','eth0').Values('IPV4')", [[ip + "/24"]])
        assert stack.count("G.V().Has('Name','%s').Out('Type','container')" % stack.agent_host_id) == 0
        engine.stop(name)
        stack.wait_count("G.V().Has('Type','container','Name','%s')" % name, 0, timeout=20)
        stack.wait_count(ns, 0, timeout=20)
    finally:
        engine.podman("rm", "-f", "-t", "0", name, check=False)


def test_host_network_container_owned_by_host(docker_stack, engine, names):
    stack = docker_stack
    name = names("ch")
    engine.run(name, network="host")
    try:
        q = "G.V().Has('Type','host','Name','%s').Out('Type','container','Name','%s')" % (stack.agent_host_id, name)
        stack.wait_count(q, 1, timeout=20, message="the --net=host container under the host node")
        assert stack.count("G.V().Has('Type','netns','Name','%s')" % name) == 0
        status = requests.get(stack.agent.url + "/api/status", timeout=10).json()
        assert status["TopologyProbes"]["docker"]["State"] == "connected"
        assert status["TopologyProbes"]["docker"]["Containers"] == 1
        engine.stop(name)
        stack.wait_count(q, 0, timeout=20)
    finally:
        engine.podman("rm", "-f", "-t", "0", name, check=False)
