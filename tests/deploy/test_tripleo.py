"""TripleO composable services checked by TripleO's own tools: tripleo-heat-templates 18.0.0's
tools/yaml-validate.py and tools/process-templates.py over a THT tree holding our files, a real
Heat (heat-all, noauth, as tripleoclient's ephemeral Heat) validating the rendered overcloud with
our environment, python-tripleoclient rendering config-download (a real stack create), and the
rendered Skydive steps run by ansible-playbook on simulated nodes."""
import copy
import os
import pathlib
import shutil
import sys
import tempfile

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
    # whichever of our two resource types Heat looks up first
    assert "The Resource Type (OS::TripleO::Services::Skydive" in str(err.value) and "could not be found" in str(err.value)


def test_roles_data_is_the_roles_concatenated():
    roles = tr.load_yaml(os.path.join(tr.OUR, "roles_data.yaml"))
    assert roles == [tr.load_yaml(os.path.join(tr.OUR, "roles", r["name"] + ".yaml"))[0] for r in roles]
    assert copy.deepcopy(roles)[1]["tags"] == ["compute"]


# ---- 4. python-tripleoclient renders config-download; its Skydive steps run on simulated nodes -------

CONTROLLERS = ("ctl0", "ctl1", "ctl2")
COMPUTES = ("cmp0", "cmp1")
# what an overcloud's ServiceNetMap would do: the analyzers on internal_api, the agents on ctlplane
TEST_ENV = {"parameter_defaults": {
    "ServiceNetMap": {"SkydiveAnalyzerNetwork": "internal_api", "SkydiveAgentNetwork": "ctlplane"},
    # the simulated nodes share one filesystem: each agent watches its own namespace directory
    "SkydiveVars": {"globals": {"skydive_topology_probes": [],
                                "skydive_extra_config": {"agent.topology.netns.run_path": "{{ skydive_systemd_root }}/netns"}},
                    "analyzers": {}, "agents": {}}}}


# an overcloud running Neutron with ML2/OVN (THT's default NeutronMechanismDrivers, set as its
# neutron-ovn environments do): the OVN DBs on the VIP of their network (ctlplane, the only network
# of tripleoclient's render), the neutron service user with TripleO's generated NeutronPassword.
# Their own steps are not run here (no containers).
OVERCLOUD_SERVICES = ["OS::TripleO::Services::NeutronApi", "OS::TripleO::Services::OVNDBs"]
# container images as `openstack tripleo container image prepare` would set them
OVERCLOUD_ENV = {"parameter_defaults": dict({"NeutronMechanismDrivers": "ovn"}, **{
    "Container%sImage" % name: "quay.io/tripleowallaby/openstack-%s:current-tripleo" % image for name, image in (
        ("NeutronApi", "neutron-server"), ("NeutronConfig", "neutron-server"), ("OvnNbDb", "ovn-nb-db-server"),
        ("OvnSbDb", "ovn-sb-db-server"), ("OvnNorthd", "ovn-northd"))})}


@pytest.fixture(scope="module")
def config_download(tht):
    """`openstack tripleo deploy --output-only`: Heat creates the stack of our Controller and
    Compute roles, config-download is written (real role_data outputs resolved)."""
    reason = tr.tripleoclient_missing()
    if reason:
        pytest.skip(reason)
    # heat-all runs as the heat user: its directory must be reachable (pytest's tmp is 0700)
    base = pathlib.Path(tempfile.mkdtemp(prefix="skd-tripleo-", dir="/tmp"))
    os.chmod(str(base), 0o755)
    try:
        yield _render(tht, base)
    finally:
        shutil.rmtree(str(base), ignore_errors=True)


def _render(tht, base):
    roles = [r for r in tr.load_yaml(os.path.join(tr.OUR, "roles_data.yaml")) if r["name"] in ("Controller", "Compute")]
    # the Neutron API and the OVN DBs on the controllers, from THT's own registry (ML2/OVN)
    roles[0]["ServicesDefault"] += OVERCLOUD_SERVICES
    (base / "roles.yaml").write_text(yaml.safe_dump(roles))
    (base / "servers.yaml").write_text(yaml.safe_dump(tr.deployed_servers_env()))
    (base / "test.yaml").write_text(yaml.safe_dump(TEST_ENV))
    (base / "neutron-ovn.yaml").write_text(yaml.safe_dump(OVERCLOUD_ENV))
    envs = [os.path.join(tht, "environments", "standalone", "standalone-tripleo.yaml"), os.path.join(tht, tr.ENV_NAME),
            str(base / "servers.yaml"), str(base / "neutron-ovn.yaml"), str(base / "test.yaml")]
    out = base / "out"
    res = tr.tripleo_deploy_output_only(tht, str(base / "roles.yaml"), envs, str(out), str(base / "home"))
    assert res.returncode == 0, res.stdout[-6000:]
    (cd,) = [p for p in out.iterdir() if p.name.startswith("overcloud-ansible-")]
    passwords = tr.load_yaml(str(out / "tripleo-overcloud-passwords.yaml"))["parameter_defaults"]
    _keep_skydive_steps(str(cd))
    return {"dir": str(cd), "out": str(out), "log": res.stdout, "passwords": passwords}


def _keep_skydive_steps(cd):
    """<role>/skydive_steps_step<N>.yaml: the Skydive tasks of `<role>/deploy_steps_tasks_step<N>.yaml`
    (Neutron's and OVN's own tasks need their containers and TripleO's roles: not run here)."""
    for role in ("Controller", "Compute"):
        for step in range(1, 6):
            tasks = tr.load_yaml(os.path.join(cd, role, "deploy_steps_tasks_step%d.yaml" % step)) or []
            with open(os.path.join(cd, role, "skydive_steps_step%d.yaml" % step), "w") as fh:
                yaml.safe_dump([t for t in tasks if "Skydive" in t.get("name", "")], fh, sort_keys=False)


def test_tripleoclient_renders_our_steps(config_download):
    cd = config_download["dir"]
    ctl = tr.load_yaml(os.path.join(cd, "Controller", "deploy_steps_tasks.yaml"))
    cmp = tr.load_yaml(os.path.join(cd, "Compute", "deploy_steps_tasks.yaml"))
    names = [t["name"] for t in ctl]
    # the shared step-1 task appears once (THT's distinct()), then each service's listen address
    assert names.count("Record the Skydive settings of this overcloud node") == 1, names
    facts = {k for t in ctl for k in t.get("ansible.builtin.set_fact", {})}
    assert {"skydive_analyzer_listen_ip", "skydive_agent_listen_ip"} <= facts
    listen = {k: v for t in ctl for k, v in t.get("ansible.builtin.set_fact", {}).items() if k.endswith("_listen_ip")}
    assert listen == {"skydive_analyzer_listen_ip": "{{ internal_api_ip | default(ansible_host) }}",
                      "skydive_agent_listen_ip": "{{ ctlplane_ip | default(ansible_host) }}"}
    assert any(n.startswith("Deploy the Skydive analyzer on Controller") for n in names)
    assert [t["name"] for t in cmp if t["name"].startswith("Deploy")][0].startswith("Deploy the Skydive agent on Compute")
    assert not any("analyzer" in t["name"] for t in cmp)
    # TripleO's generated AdminPassword reached the tasks; TLS everywhere is off here
    shared = next(t for t in ctl if t["name"] == "Record the Skydive settings of this overcloud node")
    assert shared["vars"]["_skydive_secret"] == config_download["passwords"]["AdminPassword"]
    assert not any("certificate" in t["name"] for t in ctl if "Skydive" in t["name"])
    fw = tr.load_yaml(os.path.join(cd, "Controller", "firewall_rules.yaml"))
    assert fw["150 skydive_analyzer"] == {"dport": [8082]} and fw["151 skydive_agent"] == {"dport": [8081]}
    assert fw["152 skydive_etcd"] == {"dport": [12379, 12380]}       # SkydiveEtcdEmbedded (default true)
    haproxy = tr.load_yaml(os.path.join(cd, "Controller", "service_config_settings.yaml"))["haproxy"]
    endpoint = haproxy["tripleo::skydive_analyzer::haproxy_endpoints"]["skydive_analyzer"]
    assert endpoint["service_port"] == 8082 and endpoint["internal_ip"] == "%{hiera('skydive_analyzer_vip')}"
    assert endpoint["service_network"] == "internal_api"


@pytest.fixture(scope="module")
def overcloud():
    """Five simulated nodes (three controllers, two computes), each with a ctlplane address and
    an internal_api address on its own subnet, as an overcloud's nodes have."""
    from tests.deploy.simnodes import SimCluster, requirements_missing, runtime_missing, sh
    reason = requirements_missing() or runtime_missing()
    if reason:
        pytest.skip(reason)
    cluster = SimCluster(names=CONTROLLERS + COMPUTES, analyzers=CONTROLLERS)
    try:
        cluster.start()
        used = sh("ip", "-4", "-o", "addr", "show").stdout
        prefix = next(p for p in ("10.214.%d." % k for k in range(1, 255)) if p not in used)
        sh("ip", "addr", "add", prefix + "254/24", "dev", cluster.bridge)
        for i, name in enumerate(cluster.names, start=1):
            node = cluster.nodes[name]
            node["internal_api_ip"] = prefix + str(i)
            sh("ip", "-n", node["ns"], "addr", "add", node["internal_api_ip"] + "/24", "dev", "eth0")
            os.makedirs(os.path.join(node["root"], "netns"), exist_ok=True)
        yield cluster
    finally:
        cluster.stop()


def _inventory(cluster, cd):
    """The inventory tripleo-ansible-inventory writes (role groups, overcloud, one group per
    service, <network>_ip host variables), for the simulated nodes."""
    common = tr.load_yaml(cluster.write_inventory())["all"]["vars"]
    hosts = {}
    for name in cluster.names:
        hv = cluster.node_vars(name)
        for key in ("skydive_listen_ip", "skydive_extra_config"):
            hv.pop(key)
        hv.update(ctlplane_ip=cluster.nodes[name]["ip"], internal_api_ip=cluster.nodes[name]["internal_api_ip"])
        hosts[name] = hv
    inv = {"all": {"vars": common, "children": {
        "Controller": {"hosts": {h: hosts[h] for h in CONTROLLERS}, "vars": {"tripleo_role_name": "Controller"}},
        "Compute": {"hosts": {h: hosts[h] for h in COMPUTES}, "vars": {"tripleo_role_name": "Compute"}},
        "overcloud": {"children": {"Controller": {}, "Compute": {}}},
        "skydive_analyzer": {"children": {"Controller": {}}},
        "skydive_agent": {"children": {"Controller": {}, "Compute": {}}}}}}
    path = os.path.join(cd, "sim-inventory.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(inv, fh)
    return path


def _steps_playbook(cd):
    """The deploy steps of config-download's deploy_steps_playbook.yaml that concern these
    services: global_vars and service VIPs first, then steps 1-5 on the overcloud, each running
    the Skydive tasks of `<role>/deploy_steps_tasks_step<N>.yaml` (TripleO's strategy
    tripleo_free is free's)."""
    plays = [{"hosts": "all", "name": "Include the deployment's global variables", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_vars": "global_vars.yaml", "no_log": True},
        {"ansible.builtin.include_vars": {"file": "{{ playbook_dir }}/service_vip_vars.yaml", "name": "service_vip_vars"},
         "ignore_errors": True}]}]
    for step in range(1, 6):
        plays.append({"hosts": "overcloud", "name": "Deploy step tasks for %d" % step, "strategy": "free",
                      "gather_facts": False, "any_errors_fatal": True, "vars": {"step": str(step)}, "tasks": [
                          {"ansible.builtin.include_tasks": "{{ tripleo_role_name }}/skydive_steps_step{{ step }}.yaml"}]})
    path = os.path.join(cd, "sim-deploy-steps.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(plays, fh, sort_keys=False)
    return path


def _run(cluster, playbook, inventory, *args):
    import subprocess
    from tests.deploy.simnodes import ANSIBLE_PLAYBOOK, REPO, PlaybookResult
    env = dict(cluster.env(), ANSIBLE_ROLES_PATH=os.path.join(REPO, "roles"), ANSIBLE_INJECT_FACT_VARS="False",
               ANSIBLE_GATHER_SUBSET="!all,min")
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, playbook] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, cwd=os.path.dirname(playbook), timeout=900)
    log = os.path.join(cluster.base, "tripleo-run-%s.log" % os.path.basename(playbook))
    with open(log, "a") as fh:
        fh.write(proc.stdout)
    return PlaybookResult(proc, log)


def _config(cluster, name):
    return tr.load_yaml(os.path.join(cluster.nodes[name]["root"], "etc", "skydive", "skydive.yml"))


def test_rendered_steps_deploy_three_controllers_and_two_computes(config_download, overcloud):
    """config-download's Skydive steps, run by ansible-playbook the way TripleO runs them, on
    3 controllers + 2 computes: one analyzer cluster with auth on, every agent on every analyzer,
    each service on its own network (idempotence of the same roles: test_multinode.py)."""
    import hashlib
    from tests.deploy.simnodes import http_json
    cd = config_download["dir"]
    inventory, playbook = _inventory(overcloud, cd), _steps_playbook(cd)
    run = _run(overcloud, playbook, inventory)
    assert run.rc == 0, run.tail(80)
    secret = config_download["passwords"]["AdminPassword"]
    auth = ("skydive", hashlib.sha256(("skydive-api:" + secret).encode()).hexdigest())
    agents = sorted(CONTROLLERS + COMPUTES)
    analyzer_ips = [overcloud.nodes[c]["internal_api_ip"] for c in CONTROLLERS]
    seen = set()
    for ctl in CONTROLLERS:
        node = overcloud.nodes[ctl]
        cfg = _config(overcloud, ctl)
        # the analyzer on internal_api, the controller's agent on ctlplane
        assert cfg["analyzer"]["listen"] == node["internal_api_ip"] + ":8082"
        assert cfg["agent"]["listen"] == node["ip"] + ":8081"
        assert cfg["analyzers"] == [ip + ":8082" for ip in analyzer_ips]
        # one cluster: every analyzer replicates the others (all listed); no etcd service in this
        # overcloud: the analyzers' embedded etcd members form one etcd cluster on internal_api
        etcd = cfg["etcd"]
        assert etcd["embedded"] is True and etcd["listen"] == node["internal_api_ip"] + ":12379", etcd
        assert etcd["servers"] == ["http://%s:12379" % ip for ip in analyzer_ips]
        assert etcd["peers"] == {c: "http://%s:12380" % overcloud.nodes[c]["internal_api_ip"] for c in CONTROLLERS}
        assert cfg["auth"]["api"]["type"] == "basic" and cfg["analyzer"]["auth"]["api"]["backend"] == "api"
        url = "http://%s:8082/api/status" % node["internal_api_ip"]
        with pytest.raises(Exception, match="401"):
            http_json(url)
        status = http_json(url, auth=auth)
        # in the cluster each agent links to one analyzer; every analyzer's graph has every host
        hosts = http_json("http://%s:8082/api/topology" % node["internal_api_ip"], {"GremlinQuery": "G.V().Has('Type', 'host')"},
                          auth=auth)
        assert sorted(h["Host"] for h in hosts) == agents, hosts
        seen.update(status["Agents"])
    assert sorted(seen) == agents     # each agent linked to one of the analyzers
    _check_shared_resources(overcloud, auth)
    for cmp in COMPUTES:
        cfg = _config(overcloud, cmp)
        assert "analyzer" not in cfg and "etcd" not in cfg
        assert cfg["agent"]["listen"] == overcloud.nodes[cmp]["ip"] + ":8081"
        assert cfg["analyzers"] == [ip + ":8082" for ip in analyzer_ips]
    _check_neutron_and_ovn(config_download, overcloud, auth)


def _check_shared_resources(overcloud, auth):
    """One etcd cluster of the analyzers' embedded members: an alert created through one
    controller's analyzer is served by the two others, its deletion through another reaches the
    first; every analyzer names the same master for each duty, one of the three."""
    from tests.deploy.simnodes import http_json
    from tests.fixtures.processes import wait_until
    api = {c: "http://%s:8082/api" % overcloud.nodes[c]["internal_api_ip"] for c in CONTROLLERS}

    def agreed():
        st = {c: http_json(api[c] + "/status", auth=auth) for c in CONTROLLERS}
        duties = st[first].get("Masters") or {}
        ok = (all((s.get("Etcd") or {}).get("Running") and s.get("Masters") == duties for s in st.values())
              and {"alerts", "rules", "captures", "injections"} <= set(duties) and set(duties.values()) <= set(CONTROLLERS)
              # exactly one analyzer runs each of the alert and capture managers
              and [c for c in CONTROLLERS if st[c]["Alerts"]["IsMaster"]] == [duties["alerts"]]
              and [c for c in CONTROLLERS if st[c]["Captures"]["IsMaster"]] == [duties["captures"]])
        return st if ok else None
    first, *others = CONTROLLERS
    wait_until(agreed, timeout=30, interval=0.5, message="one master per duty, the same on every analyzer")
    alert = http_json(api[first] + "/alert", {"Name": "tripleo-shared", "Expression": "G.V().Has('Name', 'nothing-here')"},
                      auth=auth)
    try:
        for c in others:
            got = wait_until(lambda c=c: http_json(api[c] + "/alert", auth=auth).get(alert["UUID"]), timeout=10, interval=0.2,
                             message="the alert created on %s served by %s" % (first, c))
            assert got["Name"] == "tripleo-shared", got
    finally:
        _http_delete(api[others[-1]] + "/alert/" + alert["UUID"], auth)
    wait_until(lambda: alert["UUID"] not in http_json(api[first] + "/alert", auth=auth), timeout=10, interval=0.2,
               message="the alert deleted on %s gone from %s" % (others[-1], first))


def _http_delete(url, auth):
    import base64
    import urllib.request
    req = urllib.request.Request(url, method="DELETE", headers={
        "Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode()})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5) as resp:
        assert resp.status == 200


def _check_neutron_and_ovn(config_download, overcloud, auth):
    """The overcloud runs Neutron (ML2/OVN) and the OVN DBs: every agent has the neutron probe
    as the neutron service user against the overcloud's internal Keystone, every analyzer the
    OVN probe on the OVN DB VIP. Neither service runs here: the agents log them unreachable
    once and keep running, the analyzers' status shows the OVN probe's state."""
    import time
    from tests.deploy.simnodes import http_json
    g = tr.load_yaml(os.path.join(config_download["dir"], "global_vars.yaml"))
    assert {"neutron_api", "ovn_dbs"} <= set(g["enabled_services"])
    vip = g["net_vip_map"][g["service_net_map"]["ovn_dbs_network"]]
    step1 = tr.load_yaml(os.path.join(config_download["dir"], "Controller", "skydive_steps_step1.yaml"))
    keystone = step1[0]["vars"]["_skydive_keystone_url"] + "/v3"      # EndpointMap KeystoneInternal
    assert keystone.startswith("http://" + vip + ":"), keystone
    for name in CONTROLLERS + COMPUTES:
        cfg = _config(overcloud, name)
        assert "neutron" in cfg["agent"]["topology"]["probes"], cfg["agent"]["topology"]
        neutron = cfg["agent"]["topology"]["neutron"]
        assert neutron == dict(neutron, auth_url=keystone, username="neutron", password=config_download["passwords"]["NeutronPassword"],
                               tenant_name="service", region_name="regionOne", endpoint_type="internal")
        if name in CONTROLLERS:
            ovn = cfg["analyzer"]["topology"]
            assert ovn["probes"] == ["ovn"], ovn
            assert (ovn["ovn"]["address"], ovn["ovn"]["sb_address"]) == ("tcp:%s:6641" % vip, "tcp:%s:6642" % vip)
    deadline = time.time() + 20
    while True:
        logs = {n: _journal(overcloud, n, "agent") for n in CONTROLLERS + COMPUTES}
        missing = [n for n, text in logs.items() if "neutron: Keystone %s unreachable" % keystone not in text]
        if not missing or time.time() > deadline:
            break
        time.sleep(1)
    assert not missing, {n: logs[n][-2000:] for n in missing}
    time.sleep(2)      # a retry in between would log again if the probe did not remember it
    for name in CONTROLLERS + COMPUTES:
        text = _journal(overcloud, name, "agent")
        assert text.count("neutron: Keystone %s unreachable" % keystone) == 1, text[-2000:]
        assert "agent" in overcloud.service_pids(name), name
    for ctl in CONTROLLERS:
        status = http_json("http://%s:8082/api/status" % overcloud.nodes[ctl]["internal_api_ip"], auth=auth)
        probe = status["Probes"]["ovn"]
        assert probe["Address"] == "tcp:%s:6641" % vip and probe["State"] != "connected", probe
        assert probe["Southbound"]["Address"] == "tcp:%s:6642" % vip, probe
        assert "analyzer" in overcloud.service_pids(ctl), ctl


def _journal(cluster, name, service):
    path = os.path.join(cluster.nodes[name]["root"], "var", "log", "journal", "skydive-%s.service.log" % service)
    with open(path, errors="replace") as fh:
        return fh.read()


def test_uninstall_removes_the_rendered_deployment(config_download, overcloud):
    """docs/tripleo.md's removal: the collection's uninstall playbook on the same inventory."""
    from tests.deploy.test_multinode import UNINSTALL
    # one fork: the simulated nodes share /etc/passwd (three analyzers would remove one user at once)
    gone = _run(overcloud, UNINSTALL, os.path.join(config_download["dir"], "sim-inventory.yaml"), "-f", "1",
                "-e", "skydive_analyzers_group=skydive_analyzer", "-e", "skydive_agents_group=skydive_agent")
    assert gone.rc == 0, gone.tail(80)
    assert all(overcloud.service_pids(n) == {} for n in overcloud.names)
    assert not any(os.path.exists(os.path.join(overcloud.nodes[n]["root"], "etc", "skydive", "skydive.yml"))
                   for n in overcloud.names)


def _step1_facts(cd, tmp_path, extra):
    """The rendered step 1 of both roles evaluated by ansible-playbook for an overcloud given by
    `extra` (config-download data as extra vars): the Skydive facts of each host. Nothing is
    deployed: set_fact runs on the controller side."""
    import json
    import subprocess
    from tests.deploy.simnodes import ANSIBLE_PLAYBOOK
    hosts = {"c%d" % i: {"internal_api_ip": "172.17.1.%d" % (10 + i), "ctlplane_ip": "192.168.24.%d" % (10 + i)}
             for i in range(3)}
    computes = {"k0": {"internal_api_ip": "172.17.1.20", "ctlplane_ip": "192.168.24.20"}}
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}, "children": {
        "Controller": {"hosts": hosts, "vars": {"tripleo_role_name": "Controller"}},
        "Compute": {"hosts": computes, "vars": {"tripleo_role_name": "Compute"}},
        "overcloud": {"children": {"Controller": {}, "Compute": {}}},
        "etcd": {"children": {"Controller": {}}},
        "skydive_analyzer": {"children": {"Controller": {}}},
        "skydive_agent": {"children": {"Controller": {}, "Compute": {}}}}}}
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(inv))
    out = tmp_path / "facts"
    out.mkdir()
    keep = ["skydive_username", "skydive_password", "skydive_os_auth_url", "skydive_os_service_password",
            "skydive_os_service_username", "_skydive_tripleo_probes", "skydive_etcd_servers", "skydive_etcd_embedded",
            "skydive_tls_ca_cert", "skydive_tls_server_cert", "_skydive_tripleo_config",
            "skydive_analyzer_listen_ip", "skydive_agent_listen_ip"]
    plays = [{"hosts": "overcloud", "gather_facts": False, "vars": {"step": "1"}, "tasks": [
        {"ansible.builtin.include_tasks": os.path.join(cd, "{{ tripleo_role_name }}", "skydive_steps_step1.yaml")},
        {"ansible.builtin.copy": {"dest": str(out) + "/{{ inventory_hostname }}.json",
                                  "content": "{{ dict(%s) | to_json }}" % ", ".join(
                                      "%s=hostvars[inventory_hostname]['%s'] | default(None)" % (k.lstrip("_"), k) for k in keep)}}]}]
    (tmp_path / "play.yaml").write_text(yaml.safe_dump(plays, sort_keys=False))
    res = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "inv.yaml"), str(tmp_path / "play.yaml"),
                          "-e", json.dumps(extra)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, ANSIBLE_INJECT_FACT_VARS="False", ANSIBLE_NOCOLOR="1"), timeout=300)
    assert res.returncode == 0, res.stdout[-4000:]
    return {p.stem: json.loads(p.read_text()) for p in out.iterdir()}


def test_rendered_settings_follow_the_overcloud(config_download, tmp_path):
    """TLS everywhere, the overcloud's etcd, Neutron and OVN: what step 1 derives for each node
    (the values config-download would carry for such an overcloud are given as extra vars)."""
    facts = _step1_facts(config_download["dir"], tmp_path, {
        "_skydive_tls": True, "enabled_services": ["skydive_agent", "skydive_analyzer", "etcd", "neutron_api", "ovn_dbs"],
        "service_net_map": {"etcd_network": "internal_api", "ovn_dbs_network": "internal_api"},
        "service_vip_vars": {"ovn_dbs": "172.17.1.250"}})
    ctl, cmp = facts["c1"], facts["k0"]
    assert ctl["skydive_analyzer_listen_ip"] == "172.17.1.11" and ctl["skydive_agent_listen_ip"] == "192.168.24.11"
    assert ctl["skydive_password"] == cmp["skydive_password"] != ""
    assert ctl["skydive_tls_ca_cert"] == cmp["skydive_tls_ca_cert"] == "/etc/ipa/ca.crt"
    assert ctl["skydive_tls_server_cert"] == "/etc/pki/tls/certs/skydive-analyzer.crt" and cmp["skydive_tls_server_cert"] == ""
    cfg = ctl["skydive_tripleo_config"]
    assert ctl["skydive_etcd_servers"] == ["https://172.17.1.%d:2379" % (10 + i) for i in range(3)]
    assert cmp["skydive_etcd_servers"] == []
    # the overcloud's etcd: no embedded members
    assert ctl["skydive_etcd_embedded"] is False and cmp["skydive_etcd_embedded"] is False
    assert cfg["analyzer.topology.probes"] == ["ovn"]
    assert cfg["analyzer.topology.ovn.address"] == "ssl:172.17.1.250:6641"
    assert cfg["analyzer.topology.ovn.sb_address"] == "ssl:172.17.1.250:6642"
    assert cfg["analyzer.topology.ovn.cacert"] == "/etc/ipa/ca.crt"
    # the overcloud's etcd under TLS everywhere: the analyzer's certificate as etcd client
    assert (cfg["etcd.tls.ca_file"], cfg["etcd.tls.cert_file"], cfg["etcd.tls.key_file"]) == \
        ("/etc/ipa/ca.crt", "/etc/pki/tls/certs/skydive-analyzer.crt", "/etc/pki/tls/private/skydive-analyzer.key")
    assert not any(k.startswith(("analyzer.", "etcd.")) for k in cmp["skydive_tripleo_config"])
    # Neutron deployed: every agent's neutron probe, as the neutron user, Keystone's internal endpoint
    assert cmp["skydive_tripleo_probes"] == ctl["skydive_tripleo_probes"] == ["neutron"]
    assert cmp["skydive_os_service_username"] == "neutron"
    assert cmp["skydive_os_service_password"] == config_download["passwords"]["NeutronPassword"]
    assert cmp["skydive_os_auth_url"].startswith("http") and cmp["skydive_os_auth_url"].endswith("/v3")
    # without those services and TLS: no etcd, no Neutron/OVN settings
    (tmp_path / "plain").mkdir()
    plain = _step1_facts(config_download["dir"], tmp_path / "plain", {})
    assert plain["c0"]["skydive_etcd_servers"] == [] and plain["c0"]["skydive_tripleo_config"] == {}
    # no etcd service: the analyzers run embedded etcd members (SkydiveEtcdEmbedded, default true)
    assert plain["c0"]["skydive_etcd_embedded"] is True and plain["k0"]["skydive_etcd_embedded"] is False
    assert plain["c0"]["skydive_tripleo_probes"] == []
    assert plain["c0"]["skydive_tls_ca_cert"] == ""
    assert plain["c0"]["skydive_username"] == "skydive"
    # keystone: the overcloud's admin for the post-deploy check, Keystone's internal endpoint
    (tmp_path / "keystone").mkdir()
    # (and SkydiveEtcdEmbedded false: no embedded members)
    ks = _step1_facts(config_download["dir"], tmp_path / "keystone", {"_skydive_auth": "keystone", "_skydive_etcd_embedded": False})["c0"]
    assert ks["skydive_etcd_embedded"] is False
    assert ks["skydive_username"] == "admin" and ks["skydive_password"] == config_download["passwords"]["AdminPassword"]
    # TLS everywhere without an etcd service: the embedded members speak plain HTTP, so none run
    (tmp_path / "tls").mkdir()
    tls = _step1_facts(config_download["dir"], tmp_path / "tls", {"_skydive_tls": True})["c0"]
    assert tls["skydive_etcd_embedded"] is False and tls["skydive_etcd_servers"] == []
