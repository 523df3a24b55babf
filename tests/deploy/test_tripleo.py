"""TripleO composable services checked by TripleO's own tools: tripleo-heat-templates 18.0.0's
tools/yaml-validate.py and tools/process-templates.py over a THT tree holding our files, a real
Heat (heat-all, noauth, as tripleoclient's ephemeral Heat) validating the rendered overcloud with
our environment, python-tripleoclient rendering config-download (a real stack create), and the
rendered Skydive steps run by ansible-playbook on simulated nodes."""
import copy
import os
import shutil

import pytest
import yaml

from tests.deploy import tripleo_real as tr


@pytest.fixture(scope="module")
def tht(tmp_path_factory):
    reason = tr.tht_missing()
    if reason:
        pytest.skip(reason)
    return tr.make_tree(str(tmp_path_factory.mktemp("tht") / "tht"))


@pytest.fixture(scope="module")
def rendered(tht, tmp_path_factory):
    """process-templates output for our roles_data (the overcloud Heat sees)."""
    out = str(tmp_path_factory.mktemp("rendered") / "out")
    res = tr.process_templates(tht, os.path.join(tr.OUR, "roles_data.yaml"), out)
    assert res.returncode == 0, res.stdout
    shutil.copy(os.path.join(tht, tr.ENV_NAME), out)
    return {"dir": out, "log": res.stdout}


@pytest.fixture(scope="module")
def heat():
    reason = tr.heat_missing()
    if reason:
        pytest.skip(reason)
    h = tr.Heat()
    try:
        yield h.start()
    finally:
        h.stop()


def _mutated(tht, name, fn, suffix="-baremetal-ansible.yaml"):
    """A mutated copy of one of our templates in the tree, named with `suffix`; returns its ./ path."""
    data = tr.load_yaml(os.path.join(tr.OUR, "deployment", "skydive", name))
    fn(data)
    rel = "./deployment/skydive/" + name.replace("-baremetal-ansible.yaml", suffix)
    with open(os.path.join(tht, rel), "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    return rel


# ---- 1. THT's yaml-validate --------------------------------------------------------------------

def test_yaml_validate_passes_the_tree_with_our_files(tht):
    res = tr.yaml_validate(tht)
    assert res.returncode == 0, res.stdout
    assert "Validation successful!" in res.stdout
    assert "Mismatched parameter definitions: 0" in res.stdout
    assert not [line for line in res.stdout.splitlines() if "skydive" in line.lower()], res.stdout


def test_yaml_validate_service_rules_pass_our_templates(tht):
    """THT applies its service rules (role_data, service_name prefix, required parameters,
    upgrade_tasks) to files named *-baremetal-puppet.yaml: run them on copies of ours so named."""
    copies = [_mutated(tht, name, lambda d: None, "-baremetal-puppet.yaml") for name in tr.OUR_TEMPLATES]
    try:
        res = tr.yaml_validate(tht, *copies)
        assert res.returncode == 0, res.stdout
    finally:
        for rel in copies:
            os.unlink(os.path.join(tht, rel))


def _bad_upgrade(d):
    d["outputs"]["role_data"]["value"]["upgrade_tasks"] = [{"name": "x", "when": ["foo", "step|int == 1"], "debug": {}}]


@pytest.mark.parametrize("mutation,expected", [
    (lambda d: d.update(heat_template_version="rocky"), "is not valid: rocky (allowed values wallaby)"),
    (lambda d: d["parameters"].pop("RoleParameters"), "parameter RoleParameters is required"),
    (lambda d: d["outputs"]["role_data"]["value"].update(service_name="skydive"), 'service_name "skydive" should match'),
    (lambda d: d["outputs"]["role_data"]["value"].pop("service_name"), "service_name is required"),
    (_bad_upgrade, "upgrade_tasks validation failed"),
    (lambda d: d["parameters"]["DeployIdentifier"].update(description="changed"),
     'Mismatched parameter definitions found for "DeployIdentifier"'),
    (lambda d: d["parameters"].update(Unused={"type": "string", "default": ""}), "parameter Unused in template"),
])
def test_yaml_validate_catches_each_mistake(tht, mutation, expected):
    rel = _mutated(tht, "skydive-analyzer-baremetal-ansible.yaml", mutation, "-baremetal-puppet.yaml")
    try:
        # DeployIdentifier is compared with another definition of it (THT's own)
        res = tr.yaml_validate(tht, rel, "./deployment/skydive/skydive-agent-baremetal-ansible.yaml")
        assert expected in res.stdout, res.stdout
        if "Unused" not in expected:
            assert res.returncode == 1, res.stdout
    finally:
        os.unlink(os.path.join(tht, rel))


# ---- 2. THT's process-templates ------------------------------------------------------------------

def test_process_templates_renders_our_roles_without_notice(rendered):
    assert "DEPRECATED" not in rendered["log"], rendered["log"]
    registry = tr.load_yaml(os.path.join(rendered["dir"], "overcloud-resource-registry-puppet.yaml"))
    pd = registry["parameter_defaults"]
    assert pd["ControllerServices"] == ["OS::TripleO::Services::SkydiveAgent", "OS::TripleO::Services::SkydiveAnalyzer"]
    assert pd["ComputeServices"] == ["OS::TripleO::Services::SkydiveAgent"]
    assert pd["NetworkerServices"] == ["OS::TripleO::Services::SkydiveAgent"]
    overcloud = tr.load_yaml(os.path.join(rendered["dir"], "overcloud.yaml"))
    for role in ("Controller", "Compute", "Networker"):
        assert overcloud["resources"]["%sServiceChain" % role]["properties"]["Services"] == {"get_param": "%sServices" % role}


def test_process_templates_notices_a_compute_role_without_its_tag(tht, tmp_path):
    roles = tr.load_yaml(os.path.join(tr.OUR, "roles_data.yaml"))
    for role in roles:
        if role["name"] == "Compute":
            role.pop("tags")
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump(roles))
    res = tr.process_templates(tht, str(path), str(tmp_path / "out"))
    assert "DEPRECATED: Role 'Compute' without the 'compute' tag" in res.stdout


def _merged_tht_roles(tht, tmp_path):
    """THT's own Controller, Compute and Networker roles with our services merged in."""
    ours = {r["name"]: r for r in tr.load_yaml(os.path.join(tr.OUR, "roles_data.yaml"))}
    roles = []
    for name in ("Controller", "Compute", "Networker"):
        role = tr.load_yaml(os.path.join(tht, "roles", name + ".yaml"))[0]
        role["ServicesDefault"] = role["ServicesDefault"] + ours[name]["ServicesDefault"]
        roles.append(role)
    path = tmp_path / "roles_data.yaml"
    path.write_text(yaml.safe_dump(roles))
    return str(path)


# ---- 3. a real Heat ---------------------------------------------------------------------------------

def _nested_services(result, role):
    chain = result["NestedParameters"]["%sServiceChain" % role]["NestedParameters"]["ServiceChain"]
    return {v["Description"].split(",")[0].strip(): v for v in chain["NestedParameters"].values()}


def test_heat_validates_the_overcloud_with_our_environment(heat, rendered):
    d = rendered["dir"]
    result = heat.validate(os.path.join(d, "overcloud.yaml"),
                           [os.path.join(d, "overcloud-resource-registry-puppet.yaml"), os.path.join(d, tr.ENV_NAME)])
    controller = _nested_services(result, "Controller")
    assert any(k.startswith("Skydive analyzer") for k in controller), list(controller)
    assert any(k.startswith("Skydive agent") for k in controller), list(controller)
    compute = _nested_services(result, "Compute")
    assert [k for k in compute if k.startswith("Skydive")] == [k for k in compute if k.startswith("Skydive agent")] != []
    netmap = result["Environment"]["parameter_defaults"]["ServiceNetMap"]
    # ours merged into THT's (the registry declares the merge strategy)
    assert netmap["SkydiveAnalyzerNetwork"] == "ctlplane" and "KeystoneAdminApiNetwork" in netmap


def test_heat_validates_tht_roles_with_our_services(heat, tht, tmp_path):
    out = str(tmp_path / "out")
    res = tr.process_templates(tht, _merged_tht_roles(tht, tmp_path), out)
    assert res.returncode == 0 and "DEPRECATED" not in res.stdout, res.stdout
    result = heat.validate(os.path.join(out, "overcloud.yaml"),
                           [os.path.join(out, "overcloud-resource-registry-puppet.yaml"), os.path.join(tht, tr.ENV_NAME)])
    assert any(k.startswith("Skydive analyzer") for k in _nested_services(result, "Controller"))
    assert any(k.startswith("Skydive agent") for k in _nested_services(result, "Compute"))


@pytest.mark.parametrize("name", tr.OUR_TEMPLATES)
def test_heat_validates_each_service_template(heat, tht, name):
    result = heat.validate(os.path.join(tht, "deployment", "skydive", name), show_nested=False)
    assert "SkydiveAnalyzerPort" in result["Parameters"]


@pytest.mark.parametrize("mutation,expected", [
    (lambda d: d["parameters"]["SkydiveAgentPort"].update(type="port"), "Invalid type (port)"),
    (lambda d: d.update(heat_template_version="2099-01-01"), "The template version is invalid"),
    (lambda d: d["outputs"]["role_data"]["value"].update(
        service_name={"str_replace": {"template": "skydive_NAME"}}), '"str_replace" syntax should be'),
])
def test_heat_refuses_a_broken_template(heat, tht, mutation, expected):
    from heatclient import exc
    rel = _mutated(tht, "skydive-agent-baremetal-ansible.yaml", mutation, "-broken.yaml")
    try:
        with pytest.raises(exc.HTTPException) as err:
            heat.validate(os.path.join(tht, rel), show_nested=False)
        assert expected in str(err.value)
    finally:
        os.unlink(os.path.join(tht, rel))


def test_heat_refuses_the_overcloud_without_our_environment(heat, rendered):
    from heatclient import exc
    d = rendered["dir"]
    with pytest.raises(exc.HTTPException) as err:
        heat.validate(os.path.join(d, "overcloud.yaml"), [os.path.join(d, "overcloud-resource-registry-puppet.yaml")])
    assert "OS::TripleO::Services::SkydiveAgent" in str(err.value)


def test_roles_data_is_the_roles_concatenated():
    roles = tr.load_yaml(os.path.join(tr.OUR, "roles_data.yaml"))
    assert roles == [tr.load_yaml(os.path.join(tr.OUR, "roles", r["name"] + ".yaml"))[0] for r in roles]
    assert copy.deepcopy(roles)[1]["tags"] == ["compute"]
