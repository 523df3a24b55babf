"""The inventory plugin on the recorded topology (fixtures/topology.json: GET /api/topology of
an analyzer populated by tests/ansible/topology_data.py), with ansible's own inventory data
structures, no network."""

import json
import os

import pytest

from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

from ansible_collections.skydive.skydive.plugins.inventory.skydive import (
    build_hosts,
    load_topology_file,
    records_from_topology,
)

RECORDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "topology.json")


@pytest.fixture
def records():
    return records_from_topology(*load_topology_file(RECORDED))


def by_name(hosts):
    return dict((name, (hostvars, groups)) for name, hostvars, groups in hosts)


def test_records_are_what_the_queries_return(records):
    assert sorted(n["ID"] for n in records["hosts"]) == ["h-compute-0", "h-compute-1", "h-controller-0"]
    graph = records["owned"][0]
    assert all(e["Metadata"]["RelationType"] == "ownership" for e in graph["Edges"])
    assert len(graph["Edges"]) == 8 and "l2-tor1-c0-eth1" not in [e["ID"] for e in graph["Edges"]]


def test_default_options(records):
    hosts = by_name(build_hosts(records, group_by=["type", "captures"]))
    assert sorted(hosts) == ["compute-0", "compute-1", "controller-0"]
    hv, groups = hosts["compute-0"]
    assert hv["ansible_host"] == "192.0.2.10"
    assert hv["skydive_id"] == "h-compute-0" and hv["skydive_host"] == "compute-0"
    assert hv["skydive_metadata"]["Hostname"] == "compute-0.example.com"
    assert [i["name"] for i in hv["skydive_interfaces"]] == ["eth0", "eth1", "lo", "tap1"]
    eth0 = hv["skydive_interfaces"][0]
    assert (eth0["mac"], eth0["mtu"], eth0["ipv4"], eth0["state"]) == ("52:54:00:00:00:01", 1500, ["192.0.2.10/24"], "UP")
    assert groups == ["type_host", "captures_web"]
    assert hosts["compute-1"][1] == ["type_host"]


@pytest.mark.parametrize("options, host, expected", [
    ({"ansible_host_interface": "eth1"}, "compute-0", "198.51.100.10"),  # named interface, even if DOWN
    ({"ansible_host_interface": "lo"}, "compute-0", "127.0.0.1"),
    ({"ansible_host_interface": "nope"}, "compute-0", None),
    ({"address_family": "ipv6"}, "compute-0", "2001:db8::10"),
    ({"ansible_host_key": "ManagementIP"}, "controller-0", "203.0.113.5"),
    ({"ansible_host_key": "ManagementIP"}, "compute-1", "192.0.2.11"),  # key missing: interface
])
def test_ansible_host(records, options, host, expected):
    hostvars = by_name(build_hosts(records, **options))[host][0]
    assert hostvars.get("ansible_host") == expected


def test_hostname_field_and_duplicates(records):
    warnings = []
    hosts = by_name(build_hosts(records, hostname_field="OS", warn=warnings.append))
    # all three share OS=linux: the first (by ID) keeps it, the others fall back to their ID
    assert sorted(hosts) == ["h-compute-1", "h-controller-0", "linux"]
    assert len(warnings) == 2 and "OS 'linux' is shared by several nodes" in warnings[0]
    assert sorted(by_name(build_hosts(records, hostname_field="@ID"))) == ["h-compute-0", "h-compute-1", "h-controller-0"]
    assert sorted(by_name(build_hosts(records, hostname_field="Missing"))) == ["h-compute-0", "h-compute-1", "h-controller-0"]


def test_group_names(records):
    hosts = by_name(build_hosts(records, group_by=["host", "manager", "probe"], group_names_raw=True))
    assert hosts["compute-0"][1] == ["compute_0", "tripleo"]  # sanitised, no prefix
    hosts = by_name(build_hosts(records, group_by=["host"]))
    assert hosts["controller-0"][1] == ["host_controller_0"]


def test_without_interfaces(records):
    records["owned"] = None
    hosts = by_name(build_hosts(records))
    assert all("skydive_interfaces" not in hv and "ansible_host" not in hv for hv, _g in hosts.values())


def test_plugin_parse_with_constructed_options(tmp_path):
    config = tmp_path / "test.skydive.yml"
    config.write_text(json.dumps({
        "plugin": "skydive.skydive.skydive", "topology_file": RECORDED, "group_by": ["type"],
        "compose": {"role": "skydive_metadata.Role"},
        "groups": {"jumbo": "skydive_interfaces | selectattr('mtu', 'equalto', 9000) | list | length > 0"},
        "keyed_groups": [{"key": "skydive_metadata.Role", "prefix": "role"}],
    }))
    # through the plugin loader, which also loads the option definitions from DOCUMENTATION
    plugin = inventory_loader.get("skydive.skydive.skydive")
    assert plugin.verify_file(str(config))
    assert not plugin.verify_file(str(tmp_path / "hosts.yml"))
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(config), cache=False)
    assert sorted(inventory.hosts) == ["compute-0", "compute-1", "controller-0"]
    assert inventory.get_host("controller-0").vars["role"] == "controller"
    assert [h.name for h in inventory.groups["jumbo"].get_hosts()] == ["compute-0"]
    assert sorted(h.name for h in inventory.groups["role_compute"].get_hosts()) == ["compute-0", "compute-1"]
    assert len(inventory.groups["type_host"].get_hosts()) == 3
