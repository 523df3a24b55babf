"""The collection against a real analyzer *and* a real agent watching real namespaces: a capture
that waits until the agent reports it active, and the inventory of the agent's host node."""

import json
import os
import shutil
import uuid

import pytest
import yaml

from tests.ansible.conftest import plain, run_inventory
from tests.fixtures.processes import analyzer_config, wait_until
from tests.fixtures.stack import Stack
from tests.fixtures.topology import Names, NetEnv

pytestmark = [pytest.mark.ansible, pytest.mark.needs_root,
              pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")]


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    workdir = tmp_path_factory.mktemp("live-stack")
    cfg = analyzer_config(str(workdir))
    cfg["analyzer"]["topology"]["backend"] = "memory"
    cfg["analyzer"]["flow"]["backend"] = "memory"
    stack = Stack(workdir, {"host_id": "ans-%s" % uuid.uuid4().hex[:6], "agent": {"topology": {"probes": []}},
                            "ovs": {"ovsdb": "unix:///nonexistent/db.sock"}, "logging": {"level": "INFO"}}, cfg)
    net = NetEnv()
    try:
        stack.start()
        yield stack.analyzer, stack.agent_host_id, net
    finally:
        net.cleanup()
        stack.stop()


def test_capture_waits_until_active_on_agent(live_stack, runner):
    analyzer, host_id, net = live_stack
    names = Names("an")
    ns = net.add_netns(names("ns"))
    dev_a, dev_b = names("a"), names("b")
    net.add_veth(dev_a, dev_b, netns_b=ns)
    net.ip("addr", "add", "10.251.7.1/24", "dev", dev_a)
    net.ip("link", "set", dev_a, "up")
    net.ip("addr", "add", "10.251.7.2/24", "dev", dev_b, netns=ns)
    net.ip("link", "set", dev_b, "up", netns=ns)
    query = "G.V().Has('Name', '%s', 'Type', 'veth')" % dev_a
    wait_until(lambda: analyzer.query(query + ".Count()") == 1, timeout=20, message="veth on the analyzer")

    capture = {"query": query, "capture_name": "live", "bpf_filter": "icmp", "wait": True, "wait_timeout": 30}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_capture": capture},
        {"name": "again", "skydive.skydive.skydive_capture": capture},
        {"name": "delete", "skydive.skydive.skydive_capture": dict(capture, state="absent")},
    ], module_defaults={"group/skydive.skydive.skydive": {"analyzer": analyzer.address}})
    create = run["create"]
    assert not create.get("failed"), create.get("msg")
    assert create["changed"] is True
    assert [(n["name"], n["host"], n["state"]) for n in create["nodes"]] == [(dev_a, host_id, "active")]
    assert create["capture"]["Count"] == 1
    assert run["again"]["changed"] is False and run["again"]["nodes"][0]["state"] == "active"
    assert run["delete"]["changed"] is True
    wait_until(lambda: analyzer.query("G.V().Has('Captures.ID', '%s').Count()" % create["id"]) == 0,
               timeout=20, message="capture removed from the node")


def test_capture_waits_for_vm_taps(live_stack, runner):
    """A tap (`tuntap` node, as a VM's) is capturable: wait=true waits for it and sees it active."""
    analyzer, host_id, net = live_stack
    names = Names("at")
    ns = net.add_netns(names("ns"))
    tap = names("tap")
    net.ip("tuntap", "add", "dev", tap, "mode", "tap", netns=ns)
    net.ip("link", "set", tap, "up", netns=ns)
    query = "G.V().Has('Name', '%s')" % tap
    wait_until(lambda: analyzer.query(query + ".Values('Type')") == ["tuntap"], timeout=20, message="tap on the analyzer")
    capture = {"query": query, "capture_name": "vm-tap", "wait": True, "wait_timeout": 30}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_capture": capture},
        {"name": "delete", "skydive.skydive.skydive_capture": dict(capture, state="absent")},
    ], module_defaults={"group/skydive.skydive.skydive": {"analyzer": analyzer.address}})
    create = run["create"]
    assert not create.get("failed"), create.get("msg")
    assert [(n["name"], n["host"], n["state"]) for n in create["nodes"]] == [(tap, host_id, "active")]
    assert run["delete"]["changed"] is True


def test_inventory_of_the_agent_host(live_stack, ansible_env, tmp_path):
    analyzer, host_id, _net = live_stack
    path = tmp_path / "live.skydive.yml"
    path.write_text(yaml.safe_dump({"plugin": "skydive.skydive.skydive", "analyzer": analyzer.address,
                                    "query": "G.V().Has('Type', 'host', 'Name', '%s')" % host_id,
                                    "ansible_host_interface": "lo", "group_by": ["type"]}))
    proc = run_inventory(ansible_env, path, extra_env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    hostvars = plain(data["_meta"]["hostvars"])
    assert list(hostvars) == [host_id]
    host = hostvars[host_id]
    names = [i["name"] for i in host["skydive_interfaces"]]
    assert "lo" in names  # the agent's root-namespace interfaces, owned by its host node
    assert host["ansible_host"] == "127.0.0.1"
    assert host["skydive_metadata"]["Type"] == "host" and host["skydive_host"] == host_id
    assert plain(data["type_host"])["hosts"] == [host_id]
