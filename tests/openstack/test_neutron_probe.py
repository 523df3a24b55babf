"""The agent's neutron probe (issue 11, scope 2) against a real Neutron (ML2/OVN) and Keystone: a
network and two ports created with the Neutron API, two namespaces plugged into `br-int` (a private
Open vSwitch) with those port IDs as iface-id; the interfaces carry the ports' `Neutron.*`, Gremlin
finds them by IP, a port change shows, a deleted port's metadata goes; one batched port list per
poll; an unreachable Keystone/Neutron is logged once and never stops the agent."""

import os
import time
import uuid

import pytest
import requests

from tests.agent.conftest import agent_config
from tests.fixtures.processes import analyzer_config, free_port, wait_until
from tests.fixtures.stack import Stack
from tests.fixtures.topology import PrivateOVS, run

pytestmark = pytest.mark.needs_root

SVC_USER, SVC_PW = "skydive-neutron-probe", "probe-pw"


def neutron_agent(analyzer_dir, ovsdb, auth_url, interval=1, **extra):
    cfg = agent_config(None, ovsdb=ovsdb)
    cfg["agent"]["topology"]["probes"] = ["ovsdb", "neutron"]
    cfg["agent"]["topology"]["neutron"] = dict({"auth_url": auth_url, "username": SVC_USER, "password": SVC_PW,
                                                "tenant_name": "service", "domain_name": "Default",
                                                "region_name": "RegionOne", "endpoint_type": "internal",
                                                "interval": interval}, **extra)
    return Stack(analyzer_dir, cfg, analyzer_config(analyzer_dir, analyzer={"topology": {"backend": "memory"},
                                                                             "flow": {"backend": "memory"}}))


@pytest.fixture(scope="module")
def switch(tmp_path_factory):
    """A private Open vSwitch of this module with its integration bridge br-int."""
    if not PrivateOVS.available():
        pytest.skip("Open vSwitch is not installed")
    ovs = PrivateOVS(str(tmp_path_factory.mktemp("nt-ovs"))).start()
    try:
        ovs.add_bridge("br-int")
        yield ovs
    finally:
        ovs.stop()


@pytest.fixture(scope="module")
def cloud(neutron, keystone):
    """A network with a subnet (Neutron API), deleted at the end."""
    keystone.create_user(SVC_USER, SVC_PW, "service", "admin")
    tag = uuid.uuid4().hex[:6]
    net = neutron.api("POST", "/v2.0/networks", {"network": {"name": "sky-net-" + tag}})["network"]
    sub = neutron.api("POST", "/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.77.0.0/24",
                                                           "ip_version": 4, "name": "sky-sub-" + tag}})["subnet"]
    try:
        yield {"net": net, "subnet": sub, "tag": tag}
    finally:
        for p in neutron.api("GET", "/v2.0/ports?network_id=%s" % net["id"])["ports"]:
            neutron.api("DELETE", "/v2.0/ports/%s" % p["id"], expect=(204, 404))
        neutron.api("DELETE", "/v2.0/networks/%s" % net["id"], expect=(204, 404))


@pytest.fixture
def plugged(switch, neutron, cloud):
    """Two ports and two namespaces plugged into br-int with the ports' IDs and MACs (tap<id[:11]>)."""
    made = []

    def plug(i):
        port = neutron.api("POST", "/v2.0/ports", {"port": {
            "network_id": cloud["net"]["id"], "name": "sky-port%d-%s" % (i, cloud["tag"]),
            "device_id": "sky-vm%d-%s" % (i, cloud["tag"]), "device_owner": "compute:sky",
            "fixed_ips": [{"subnet_id": cloud["subnet"]["id"], "ip_address": "10.77.0.1%d" % i}]}})["port"]
        ns, tap, inner = "skynt%s%d" % (cloud["tag"], i), "tap" + port["id"][:11], "skyv%s%d" % (cloud["tag"], i)
        made.append((ns, tap, port["id"]))
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", inner, "type", "veth", "peer", "name", tap])
        run(["ip", "link", "set", inner, "netns", ns])
        run(["ip", "link", "set", tap, "netns", switch.netns])
        run(["ip", "-n", ns, "link", "set", inner, "address", port["mac_address"], "up"])
        run(["ip", "-n", ns, "addr", "add", "10.77.0.1%d/24" % i, "dev", inner])
        switch.ip("link", "set", tap, "up")
        switch.vsctl("add-port", "br-int", tap, "--", "set", "interface", tap,
                     "external_ids:iface-id=" + port["id"], "external_ids:attached-mac=" + port["mac_address"],
                     "external_ids:iface-status=active", "external_ids:vm-uuid=sky-vm%d" % i)
        return port, tap

    try:
        yield [plug(1), plug(2)]
    finally:
        for ns, tap, port_id in made:
            switch.vsctl("--if-exists", "del-port", "br-int", tap, check=False)
            switch.ip("link", "del", tap, check=False)
            run(["ip", "netns", "del", ns], check=False)
            neutron.api("DELETE", "/v2.0/ports/%s" % port_id, expect=(204, 404))


def neutron_md(stack, tap):
    nodes = stack.q("G.V().Has('Name', '%s').Has('ExtID.iface-id')" % tap)     # the OVS interface
    return nodes[0]["Metadata"] if nodes else None


def test_ports_get_their_neutron_metadata(tmp_path, switch, keystone, neutron, cloud, plugged):
    stack = neutron_agent(str(tmp_path), switch.remote, keystone.url)
    stack.start()
    try:
        (p1, tap1), (p2, tap2) = plugged
        net = cloud["net"]
        sg = p1["security_groups"]
        for port, tap, ip in ((p1, tap1, "10.77.0.11/24"), (p2, tap2, "10.77.0.12/24")):
            md = wait_until(lambda t=tap: (neutron_md(stack, t) or {}).get("Neutron", {}).get("PortID") and
                            neutron_md(stack, t), timeout=90, message="Neutron metadata on " + tap)
            assert md["Manager"] == "neutron"
            assert md["PeerIntfMAC"] == port["mac_address"]
            assert md["Neutron"] == {
                "PortID": port["id"], "TenantID": net["tenant_id"], "ProjectID": net["project_id"],
                "NetworkID": net["id"], "NetworkName": net["name"], "IPV4": [ip],
                "VNI": net["provider:segmentation_id"], "SegmentationID": net["provider:segmentation_id"],
                "NetworkType": "geneve", "DeviceID": port["device_id"], "DeviceOwner": "compute:sky",
                "SecurityGroups": sg}
        found = stack.q("G.V().Has('Neutron.IPV4', IPV4RANGE('10.77.0.11/32'))")
        assert [n["Metadata"]["Name"] for n in found] == [tap1]
        assert stack.count("G.V().Has('Neutron.NetworkName', '%s')" % net["name"]) == 2

        # batched: per poll one port list by iface-id (both OVS interfaces), one by MAC (the tap* veths
        # netlink sees in the switch's namespace: the Linux bridge rule), one network and one subnet list
        status = requests.get(stack.agent.url + "/api/status", timeout=10).json()["TopologyProbes"]["neutron"]
        assert status["State"] == "connected" and status["Ports"] == 2, status
        assert status["LastPoll"]["Calls"] == {"ports": 2, "networks": 1, "subnets": 1}, status

        # a port change shows; a deleted port loses its metadata (its interface stays)
        neutron.api("PUT", "/v2.0/ports/%s" % p1["id"], {"port": {"fixed_ips": [
            {"subnet_id": cloud["subnet"]["id"], "ip_address": "10.77.0.21"}]}})
        stack.wait_count("G.V().Has('Neutron.IPV4', IPV4RANGE('10.77.0.21/32'), 'Name', '%s')" % tap1, 1, timeout=60)
        assert stack.count("G.V().Has('Neutron.IPV4', IPV4RANGE('10.77.0.11/32'))") == 0
        neutron.api("DELETE", "/v2.0/ports/%s" % p2["id"])
        wait_until(lambda: "Neutron" not in (neutron_md(stack, tap2) or {"Neutron": 1}), timeout=60,
                   message="Neutron metadata removed from " + tap2)
        md2 = neutron_md(stack, tap2)
        assert "Manager" not in md2 and "PeerIntfMAC" not in md2 and md2["ExtID"]["iface-id"] == p2["id"]
        assert stack.count("G.V().Has('Neutron.IPV4', IPV4RANGE('10.77.0.12/32'))") == 0
    finally:
        stack.stop()


def test_unreachable_keystone_is_logged_once_and_retried(tmp_path):
    dead = "http://127.0.0.1:%d/v3" % free_port()
    stack = neutron_agent(str(tmp_path), "unix:///nonexistent/db.sock", dead)
    stack.start()
    try:
        url = stack.agent.url + "/api/status"
        st = wait_until(lambda: requests.get(url, timeout=5).json()["TopologyProbes"]["neutron"]["State"] == "unreachable"
                        and requests.get(url, timeout=5).json()["TopologyProbes"]["neutron"], timeout=30, message="unreachable")
        assert st["Error"].startswith("Keystone %s unreachable" % dead), st
        attempts = st["Attempts"]
        time.sleep(3.5)          # interval 1 s: several more attempts
        st = requests.get(url, timeout=5).json()["TopologyProbes"]["neutron"]
        assert st["State"] == "unreachable" and st["Attempts"] >= attempts + 2 and stack.agent.proc.poll() is None
        assert requests.get(stack.agent.url + "/api", timeout=5).status_code == 200
        with open(stack.agent.log_path) as fh:
            warnings = [line for line in fh if "neutron: Keystone" in line]
        assert len(warnings) == 1, warnings
    finally:
        stack.stop()


def test_missing_auth_url_stops_the_agent_with_a_message(tmp_path):
    from tests.runtime.test_service_cli import _refused, _run, _write
    cfg = {"agent": {"listen": "127.0.0.1:%d" % free_port(), "topology": {"probes": ["neutron"]}}}
    _refused(_run("agent", "-c", _write(tmp_path, "a.yml", cfg)),
             "agent.topology.neutron.auth_url: the Keystone URL is required by the neutron probe")
    assert os.path.exists(str(tmp_path / "a.yml"))
