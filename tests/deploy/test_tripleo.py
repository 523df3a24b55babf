"""TripleO composable services: the offline checker (spec §3.4 rules), the environment
processing (`openstack overcloud deploy -e` resolution) and the resulting role_data tasks
run with ansible-playbook against the simulated nodes."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.deploy.simnodes import REPO

THT = os.path.join(REPO, "tripleo")
TOOLS = os.path.join(THT, "tools")
ENV = os.path.join(THT, "skydive-environment.yaml")
ROLES_DATA = os.path.join(THT, "roles_data.yaml")
AGENT_TPL = os.path.join(THT, "deployment", "skydive", "skydive-agent-baremetal-ansible.yaml")
ANALYZER_TPL = os.path.join(THT, "deployment", "skydive", "skydive-analyzer-baremetal-ansible.yaml")


def _module(name, filename):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, filename))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


validator = _module("tht_validate", "validate-templates.py")
processor = _module("tht_process", "process-environment.py")


# ---- checker -------------------------------------------------------------------------------

def test_checker_passes_on_the_shipped_tree():
    res = subprocess.run([sys.executable, os.path.join(TOOLS, "validate-templates.py"), THT],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert res.returncode == 0, res.stdout
    assert "0 errors, 0 warnings" in res.stdout


def _tree(tmp_path):
    dst = tmp_path / "tht"
    shutil.copytree(THT, dst, ignore=shutil.ignore_patterns("tools", "__pycache__"))
    return dst


def _edit(path, fn):
    with open(path) as fh:
        data = yaml.safe_load(fh)
    fn(data)
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)


def _errors(tree):
    rep = validator.validate([str(tree)], quiet=True)
    return [m for _p, m in rep.errors], [m for _p, m in rep.warnings]


def _rel(tree, path):
    return os.path.join(str(tree), os.path.relpath(path, THT))


@pytest.mark.parametrize("mutation,expected", [
    (lambda d: d.update(heat_template_version="pike"), "heat_template_version pike"),
    (lambda d: d["parameters"].pop("RoleParameters"), "missing required parameter RoleParameters"),
    (lambda d: d["outputs"]["role_data"]["value"].update(service_name="skydive"), "must start with skydive_analyzer"),
    (lambda d: d["outputs"]["role_data"]["value"].pop("service_name"), "no service_name"),
    (lambda d: d["outputs"]["role_data"]["value"].update(deploy_steps_tasks={}), "deploy_steps_tasks must not be {}"),
    (lambda d: d["outputs"]["role_data"]["value"].update(docker_config={"step_1": {}}), "misses puppet_config"),
    (lambda d: d["outputs"]["role_data"]["value"].update(bogus_section=[]), "extra in role_data: bogus_section"),
    (lambda d: d["outputs"]["role_data"]["value"].update(
        upgrade_tasks=[{"name": "x", "when": ["foo", "step|int == 1"], "debug": {}}]), "must come first"),
    (lambda d: d["parameters"]["SkydiveAnalyzerPort"].update(default=9999), "defined differently"),
    (lambda d: d["outputs"]["role_data"]["value"]["firewall_rules"].update({"skydive": {"dport": [1]}}),
     "must be 'NNN name'"),
    (lambda d: d.update(resources={"cfg": {"type": "OS::Heat::SoftwareDeployment", "properties": {}}}),
     "needs properties.name"),
    (lambda d: d.update(resources={"cfg": {"type": "OS::Heat::SoftwareConfig", "properties": {"outputs": []}}}),
     "must not use outputs"),
])
def test_checker_rejects_each_rule_violation(tmp_path, mutation, expected):
    tree = _tree(tmp_path)
    _edit(_rel(tree, ANALYZER_TPL), mutation)
    errors, _warnings = _errors(tree)
    assert any(expected in e for e in errors), errors
    res = subprocess.run([sys.executable, os.path.join(TOOLS, "validate-templates.py"), "-q", str(tree)],
                         stdout=subprocess.PIPE, text=True)
    assert res.returncode == 1


def test_checker_warnings_and_other_files(tmp_path):
    tree = _tree(tmp_path)
    _edit(_rel(tree, AGENT_TPL), lambda d: d["parameters"].update(Unused={"type": "string", "default": ""}))
    _edit(_rel(tree, AGENT_TPL), lambda d: d.update(heat_template_version="rocky"))
    errors, warnings = _errors(tree)
    assert errors == []
    assert any("Unused is defined but never used" in w for w in warnings)
    assert any("not the current" in w for w in warnings)
    # hiera rule: ServiceNetMap in role_data outside the exempt sections of a non-ansible file
    puppet = os.path.join(str(tree), "deployment", "skydive", "skydive-foo-baremetal-puppet.yaml")
    with open(_rel(tree, AGENT_TPL)) as fh:
        data = yaml.safe_load(fh)
    data["outputs"]["role_data"]["value"]["service_name"] = "skydive_foo"
    data["outputs"]["role_data"]["value"]["config_settings"] = {
        "skydive::bind": {"get_param": ["ServiceNetMap", "SkydiveAgentNetwork", "x"]}}
    with open(puppet, "w") as fh:
        yaml.safe_dump(data, fh)
    errors, _ = _errors(tree)
    assert any("hiera" in e for e in errors), errors
    os.unlink(puppet)
    # roles: name must match the file name; services must be registered
    _edit(os.path.join(str(tree), "roles", "Compute.yaml"), lambda d: d[0].update(name="Computer"))
    errors, _ = _errors(tree)
    assert any("must define exactly the role Compute" in e for e in errors), errors
    _edit(os.path.join(str(tree), "skydive-environment.yaml"),
          lambda d: d["resource_registry"].pop("OS::TripleO::Services::SkydiveAgent"))
    errors, _ = _errors(tree)
    assert any("SkydiveAgent is not registered" in e for e in errors), errors
    _edit(os.path.join(str(tree), "skydive-environment.yaml"),
          lambda d: d["resource_registry"].update({"OS::TripleO::Services::SkydiveAgent": "./nowhere.yaml"}))
    errors, _ = _errors(tree)
    assert any("points to missing ./nowhere.yaml" in e for e in errors), errors
    with open(os.path.join(str(tree), "broken.yaml"), "w") as fh:
        fh.write("a: [1, 2\n")
    errors, _ = _errors(tree)
    assert any("YAML parse error" in e for e in errors)


# ---- environment processing ---------------------------------------------------------------

def _resolvers():
    out = ["builtin"]
    if processor.heatclient_available():
        out.append("heatclient")
    return out


@pytest.mark.parametrize("resolver", _resolvers())
def test_environment_resolution(resolver):
    result = processor.process([ENV], ROLES_DATA, resolver=resolver, deploy_identifier="42")
    assert result["resolver"] == resolver
    roles = result["roles"]
    assert roles["Controller"]["service_names"] == ["skydive_agent", "skydive_analyzer"]
    assert roles["Compute"]["service_names"] == ["skydive_agent"]
    assert roles["Networker"]["service_names"] == ["skydive_agent"]
    assert roles["Controller"]["firewall_rules"] == {"150 skydive_analyzer": {"dport": [8082]},
                                                     "151 skydive_agent": {"dport": [8081]}}
    tasks = roles["Controller"]["deploy_steps_tasks"]
    names = [t["name"] for t in tasks]
    assert "Deploy the Skydive analyzer on Controller (deploy 42)" in names
    analyzer = next(t for t in tasks if t["name"].startswith("Deploy the Skydive analyzer"))
    assert analyzer["vars"]["skydive_topology_probes"] == ["ovsdb"]
    assert "skydive_os_auth_url" not in analyzer["vars"]      # keystone is not implemented yet
    facts = tasks[0]["ansible.builtin.set_fact"]
    assert facts["skydive_listen_ip"] == "{{ ctlplane_ip | default(ansible_host) }}"


def test_environment_resolution_without_the_env_disables_the_services(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("resource_registry: {}\n")
    result = processor.process([str(empty)], ROLES_DATA, resolver="builtin")
    assert all(r["service_names"] == [] for r in result["roles"].values())


def test_later_environments_override_and_constraints_apply(tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"parameter_defaults": {
        "SkydiveAnalyzerPort": 9082, "ServiceNetMap": {"SkydiveAnalyzerNetwork": "internal_api"},
        "ComputeParameters": {"SkydiveAgentPort": 9081}}}))
    result = processor.process([ENV, str(override)], ROLES_DATA, resolver="builtin")
    ctl = result["roles"]["Controller"]
    assert ctl["firewall_rules"]["150 skydive_analyzer"] == {"dport": [9082]}
    assert result["roles"]["Compute"]["firewall_rules"]["151 skydive_agent"] == {"dport": [9081]}
    listen = [t for t in ctl["deploy_steps_tasks"] if "ansible.builtin.set_fact" in t][-1]
    assert "internal_api_ip" in json.dumps([t for t in ctl["deploy_steps_tasks"] if "set_fact" in json.dumps(t)])
    assert listen
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"parameter_defaults": {"SkydiveAuthType": "ldap"}}))
    with pytest.raises(processor.HeatError, match="SkydiveAuthType"):
        processor.process([ENV, str(bad)], ROLES_DATA, resolver="builtin")


# ---- role_data tasks against the simulated nodes --------------------------------------------

def test_role_data_tasks_deploy_the_simulated_nodes(sim_cluster, tmp_path):
    """Controller and Compute role_data, run by ansible-playbook the config-download way,
    deploys the same as deploy.yml: three agents connected, each node's interfaces in the graph."""
    from tests.deploy.test_multinode import UNINSTALL, assert_deployed
    test_env = tmp_path / "test-env.yaml"
    test_env.write_text(yaml.safe_dump({"parameter_defaults": {
        "SkydiveVars": {"globals": {"skydive_topology_probes": []}, "analyzers": {}, "agents": {}}}}))
    common = {k: v for k, v in yaml.safe_load(open(sim_cluster.write_inventory()))["all"]["vars"].items()}
    hosts = {"Controller": {"controller": dict(sim_cluster.node_vars("controller"), **common)},
             "Compute": {n: dict(sim_cluster.node_vars(n), **common) for n in sim_cluster.names[1:]}}
    for role in hosts.values():
        for hv in role.values():
            hv.pop("skydive_listen_ip")  # comes from ServiceNetMap (ctlplane_ip) like on a real overcloud
    hosts_file = tmp_path / "hosts.yaml"
    hosts_file.write_text(yaml.safe_dump(hosts))
    out = tmp_path / "config-download"
    res = subprocess.run([sys.executable, os.path.join(TOOLS, "process-environment.py"), "-e", ENV, "-e", str(test_env),
                          "-r", ROLES_DATA, "--hosts", str(hosts_file), "-o", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert res.returncode == 0, res.stdout
    inv = str(out / "inventory.yaml")
    run = sim_cluster.playbook(str(out / "deploy_steps_playbook.yaml"), inventory=inv)
    assert run.rc == 0, run.tail()
    assert_deployed(sim_cluster)
    again = sim_cluster.playbook(str(out / "deploy_steps_playbook.yaml"), inventory=inv)
    assert again.rc == 0, again.tail()
    assert again.changed() == {n: 0 for n in sim_cluster.names + ["localhost"]}, again.changed_tasks()
    gone = sim_cluster.playbook(UNINSTALL, "-e", "skydive_analyzers_group=skydive_analyzer",
                                "-e", "skydive_agents_group=skydive_agent", inventory=inv)
    assert gone.rc == 0, gone.tail()
    assert all(sim_cluster.service_pids(n) == {} for n in sim_cluster.names)
