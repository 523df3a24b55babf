"""`ansible-inventory --list` with the skydive.skydive.skydive inventory plugin: golden tests
against a live analyzer populated over REST, the same on the recorded topology (offline),
caching, and the failures an operator can meet."""

import json
import os

import pytest
import yaml

from tests.ansible import topology_data
from tests.ansible.conftest import plain, run_inventory

FIXTURES = topology_data.FIXTURES
UPDATE = os.environ.get("SKYDIVE_UPDATE_GOLDEN") == "1"

DEFAULT_CONFIG = {"plugin": "skydive.skydive.skydive", "group_by": ["type", "host", "manager", "captures"]}
CONSTRUCTED_CONFIG = {
    "plugin": "skydive.skydive.skydive",
    "query": "G.V().Has('Type', Within('host', 'switch'))",
    "hostname_field": "Hostname",
    "ansible_host_key": "ManagementIP",
    "address_family": "ipv6",
    "group_by": ["type"],
    "group_names_raw": True,
    "strict": True,
    "compose": {"role": "skydive_metadata.Role | default('none')",
                "nics": "skydive_interfaces | map(attribute='name') | list"},
    "groups": {"jumbo": "skydive_interfaces | selectattr('mtu', 'equalto', 9000) | list | length > 0"},
    "keyed_groups": [{"key": "skydive_metadata.Role | default('unmanaged')", "prefix": "role"}],
}


def write_config(tmp_path, name, config):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def inventory(ansible_env, path, **extra_env):
    proc = run_inventory(ansible_env, path, extra_env=dict(ANSIBLE_INVENTORY_UNPARSED_FAILED="true", **extra_env))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def check_golden(data, name):
    path = os.path.join(FIXTURES, name)
    if UPDATE:
        with open(path, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
    with open(path) as fh:
        golden = json.load(fh)
    assert data == golden


@pytest.fixture(scope="module")
def topology_analyzer(analyzer):
    topology_data.populate(analyzer.url)
    if UPDATE:
        topology_data.record(analyzer.url)
    return analyzer


@pytest.mark.ansible
def test_live_default(topology_analyzer, ansible_env, tmp_path):
    path = write_config(tmp_path, "live.skydive.yml", dict(DEFAULT_CONFIG, analyzer=topology_analyzer.address))
    data = inventory(ansible_env, path)
    check_golden(data, "inventory_default.json")
    hostvars = plain(data["_meta"]["hostvars"])
    # spot checks that make the golden file's meaning explicit
    assert sorted(hostvars) == ["compute-0", "compute-1", "controller-0"]
    c0 = hostvars["compute-0"]
    assert c0["ansible_host"] == "192.0.2.10"  # first UP interface with a global IPv4 (lo skipped)
    assert c0["skydive_id"] == "h-compute-0" and c0["skydive_metadata"]["Role"] == "compute"
    assert [i["name"] for i in c0["skydive_interfaces"]] == ["eth0", "eth1", "lo", "tap1"]  # no netns, no bridge
    assert sorted(data["type_host"]["hosts"]) == ["compute-0", "compute-1", "controller-0"]
    assert data["captures_web"]["hosts"] == ["compute-0"]  # only the active capture
    assert "captures_broken" not in data
    assert data["manager_tripleo"]["hosts"] == ["compute-0"]


@pytest.mark.ansible
def test_live_constructed(topology_analyzer, ansible_env, tmp_path):
    path = write_config(tmp_path, "constructed.skydive.yml",
                        dict(CONSTRUCTED_CONFIG, analyzer=topology_analyzer.address))
    data = inventory(ansible_env, path)
    check_golden(data, "inventory_constructed.json")
    hostvars = plain(data["_meta"]["hostvars"])
    assert sorted(hostvars) == ["compute-0.example.com", "compute-1.example.com", "controller-0.example.com", "tor1"]
    assert hostvars["controller-0.example.com"]["ansible_host"] == "203.0.113.5"  # metadata key wins
    assert hostvars["tor1"]["ansible_host"] == "203.0.113.254"  # prefix dropped
    assert hostvars["compute-0.example.com"]["ansible_host"] == "2001:db8::10"  # ipv6, link-local skipped
    assert hostvars["compute-0.example.com"]["role"] == "compute" and hostvars["tor1"]["role"] == "none"
    assert data["jumbo"]["hosts"] == ["compute-0.example.com"]
    assert sorted(data["host"]["hosts"]) == ["compute-0.example.com", "compute-1.example.com",
                                             "controller-0.example.com"]
    assert data["switch"]["hosts"] == ["tor1"]
    assert data["role_controller"]["hosts"] == ["controller-0.example.com"]
    assert data["role_unmanaged"]["hosts"] == ["tor1"]


def test_offline_recorded_topology(ansible_env, tmp_path):
    """The recorded GET /api/topology gives the same inventory as the live analyzer did."""
    path = write_config(tmp_path, "offline.skydive.yml",
                        dict(DEFAULT_CONFIG, topology_file=topology_data.RECORDED, analyzer="127.0.0.1:1"))
    data = inventory(ansible_env, path)
    check_golden(data, "inventory_default.json")


def test_offline_export_format_and_no_interfaces(ansible_env, tmp_path):
    """`skydive client topology export` writes the G result: a one-element list."""
    with open(topology_data.RECORDED) as fh:
        recorded = json.load(fh)
    export = tmp_path / "export.json"
    export.write_text(json.dumps([recorded]))
    path = write_config(tmp_path, "export.skydive.yml", {
        "plugin": "skydive.skydive.skydive", "topology_file": str(export), "interfaces": False,
        "ansible_host_key": "ManagementIP"})
    data = inventory(ansible_env, path)
    hostvars = plain(data["_meta"]["hostvars"])
    assert sorted(hostvars) == ["compute-0", "compute-1", "controller-0"]
    assert all("skydive_interfaces" not in v for v in hostvars.values())
    assert "ansible_host" not in hostvars["compute-0"]  # no interfaces fetched, no metadata key
    assert hostvars["controller-0"]["ansible_host"] == "203.0.113.5"


@pytest.mark.ansible
def test_cache(topology_analyzer, ansible_env, tmp_path, dead_address):
    cache_dir = tmp_path / "cache"
    config = dict(DEFAULT_CONFIG, analyzer=topology_analyzer.address, cache=True,
                  cache_plugin="ansible.builtin.jsonfile", cache_connection=str(cache_dir))
    path = write_config(tmp_path, "cached.skydive.yml", config)
    first = inventory(ansible_env, path)
    assert len(os.listdir(str(cache_dir))) == 1
    # same inventory file, analyzer gone: answered from the cache
    write_config(tmp_path, "cached.skydive.yml", dict(config, analyzer=dead_address))
    assert inventory(ansible_env, path) == first
    # --flush-cache forces a query, which now fails with a clear message
    proc = run_inventory(ansible_env, path, extra_env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
                         extra_args=["--flush-cache"])
    assert proc.returncode != 0
    assert "cannot reach the Skydive analyzer at %s" % dead_address in proc.stderr


def test_failures(ansible_env, tmp_path, dead_address):
    path = write_config(tmp_path, "dead.skydive.yml", dict(DEFAULT_CONFIG, analyzer=dead_address, timeout=3))
    proc = run_inventory(ansible_env, path, extra_env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
    assert proc.returncode != 0
    assert "skydive inventory: cannot reach the Skydive analyzer at %s" % dead_address in proc.stderr

    path = write_config(tmp_path, "query.skydive.yml", dict(DEFAULT_CONFIG, topology_file=topology_data.RECORDED,
                                                           query="G.V().Has('Type', 'switch')"))
    proc = run_inventory(ansible_env, path, extra_env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
    assert proc.returncode != 0 and "query cannot be evaluated on a topology_file" in proc.stderr

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    path = write_config(tmp_path, "badfile.skydive.yml", {"plugin": "skydive.skydive.skydive", "topology_file": str(bad)})
    proc = run_inventory(ansible_env, path, extra_env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
    assert proc.returncode != 0 and "is not JSON" in proc.stderr

    # a file not named *skydive.yml is not taken by the plugin
    path = write_config(tmp_path, "hosts.yml", dict(DEFAULT_CONFIG, topology_file=topology_data.RECORDED))
    proc = run_inventory(ansible_env, path, extra_env={"ANSIBLE_INVENTORY_ENABLED": "skydive.skydive.skydive",
                                                        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
    assert proc.returncode != 0


@pytest.mark.ansible
def test_wrong_password(auth_analyzer, ansible_env, tmp_path):
    path = write_config(tmp_path, "auth.skydive.yml", dict(DEFAULT_CONFIG, analyzer=auth_analyzer.address))
    proc = run_inventory(ansible_env, path, extra_env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
                                                        "SKYDIVE_USERNAME": "admin", "SKYDIVE_PASSWORD": "bad"})
    assert proc.returncode != 0
    assert "refused the login of user 'admin'" in proc.stderr and "HTTP 401" in proc.stderr
    data = inventory(ansible_env, path, SKYDIVE_USERNAME="admin", SKYDIVE_PASSWORD="pass")
    assert data["_meta"]["hostvars"] == {}  # authenticated, empty topology
