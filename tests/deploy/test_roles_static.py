"""Static and controller-only checks of the deployment roles and playbooks (no nodes)."""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.deploy import gen_role_specs
from tests.deploy.simnodes import ANSIBLE_PLAYBOOK, REPO

ROLES = os.path.join(REPO, "roles")
PLAYBOOKS = os.path.join(REPO, "playbooks")


def _load(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


def test_service_role_specs_are_copies_of_the_common_spec():
    common = gen_role_specs.common_options()
    for service in gen_role_specs.SUBSETS:
        path = os.path.join(ROLES, "skydive_" + service, "meta", "argument_specs.yml")
        with open(path) as fh:
            assert fh.read() == gen_role_specs.render(service, common), \
                "%s drifted: run tests/deploy/gen_role_specs.py" % path


def test_every_default_is_documented_and_every_documented_variable_has_a_default_or_none():
    defaults = _load(os.path.join(ROLES, "skydive_common", "defaults", "main.yml"))
    spec = gen_role_specs.common_options()
    assert set(defaults) - set(spec) == set(), "undocumented defaults"
    # documented without a default: the upstream "used but not defaulted" ones and the
    # per-service listen addresses (unset: skydive_listen_ip's)
    assert set(spec) - set(defaults) == {"skydive_listen_ip", "skydive_nic", "skydive_analyzer_listen_ip",
                                         "skydive_agent_listen_ip"}
    for name, opt in spec.items():
        if name in defaults and "default" in opt and "{{" not in str(defaults[name]):
            assert opt["default"] == defaults[name], name


def test_every_skydive_variable_used_by_the_roles_is_documented():
    spec = set(gen_role_specs.common_options())
    used = set()
    for dirpath, _dirs, files in os.walk(ROLES):
        for f in files:
            if f.endswith((".yml", ".j2")) and "meta" not in dirpath:
                with open(os.path.join(dirpath, f)) as fh:
                    used |= set(re.findall(r"\b(skydive_[a-z0-9_]+)\b", fh.read()))
    internal = {"skydive_analyzer", "skydive_agent", "skydive_common", "skydive_runtime"}  # role and package names
    assert used - spec - internal == set()


def _validate(tmp_path, *extra):
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {
        "analyzers": {"hosts": {"n1": None}}, "agents": {"hosts": {"n1": None, "n2": None}}},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    return subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv), os.path.join(PLAYBOOKS, "validate.yml")] + list(extra),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))


@pytest.mark.parametrize("var,value", [
    ("skydive_analyzer_port", "eighty"),
    ("skydive_auth_type", "ldap"),
    ("skydive_service_manager", "upstart"),
    ("skydive_deployment_test", "maybe"),
    ("skydive_topology_probes", {"ovsdb": True}),
    ("skydive_topology_probes", ["ovsdb", "lldpd"]),
    ("skydive_extra_config", ["analyzer.listen"]),
    ("skydive_install_source", "ftp"),
])
def test_bad_value_fails_validation_naming_the_variable(tmp_path, var, value):
    res = _validate(tmp_path, "-e", json.dumps({var: value}))
    assert res.returncode != 0
    assert "Validation of arguments failed" in res.stdout
    assert var in res.stdout.split("Validation of arguments failed", 1)[1][:600]


def render_config(tmp_path, **variables):
    """The configuration skydive_common writes for an analyzer + agent node with `variables`."""
    extra = dict({"_skydive_is_analyzer": True, "_skydive_is_agent": True, "_skydive_analyzer_bind_ip": "192.0.2.1",
                  "_skydive_agent_bind_ip": "192.0.2.1",
                  "_skydive_analyzer_addresses": ["192.0.2.1:8082"], "skydive_credentials_dir": str(tmp_path),
                  "ansible_python_interpreter": sys.executable}, **variables)
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [os.path.join(ROLES, "skydive_common", "defaults", "main.yml")],
             "tasks": [{"ansible.builtin.copy": {"dest": str(tmp_path / "out.json"), "content":
                        "{{ lookup('ansible.builtin.template', '%s') | from_yaml | to_json }}"
                        % os.path.join(ROLES, "skydive_common", "templates", "config.yml.j2")}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    res = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", json.dumps(extra),
                          str(tmp_path / "play.yml")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                         env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert res.returncode == 0, res.stdout[-2000:]
    return json.loads((tmp_path / "out.json").read_text())


def test_keystone_auth_type_writes_the_keystone_backend(tmp_path):
    cfg = render_config(tmp_path, skydive_auth_type="keystone", skydive_os_auth_url="http://192.0.2.5:5000/v3",
                        skydive_auth_os_tenant_name="skydive")
    assert cfg["auth"]["api"] == {"type": "keystone", "auth_url": "http://192.0.2.5:5000/v3", "tenant_name": "skydive",
                                  "domain_name": "Default"}
    assert cfg["auth"]["cluster"]["type"] == "basic"          # agents <-> analyzers: cluster credentials
    assert cfg["analyzer"]["auth"]["api"]["backend"] == "api" and cfg["agent"]["auth"]["api"]["backend"] == "api"
    from skydive_runtime.api.auth import make_backend
    from skydive_runtime.config import Config
    assert make_backend(Config({"auth": cfg["auth"], "x": "api"}), "x").type == "keystone"


def test_neutron_probe_gets_its_keystone_settings(tmp_path):
    cfg = render_config(tmp_path, skydive_topology_probes=["ovsdb", "neutron"], skydive_os_auth_url="http://192.0.2.5:5000",
                        skydive_os_service_password="s3cret")
    assert cfg["agent"]["topology"] == {"probes": ["ovsdb", "neutron"], "neutron": {
        "auth_url": "http://192.0.2.5:5000", "username": "neutron", "password": "s3cret", "tenant_name": "service",
        "domain_name": "Default", "region_name": "RegionOne", "endpoint_type": "internal", "ssl_insecure": False}}
    assert "neutron" not in render_config(tmp_path, skydive_topology_probes=["ovsdb"])["agent"]["topology"]


def test_probe_choices_are_the_runtime_registry():
    from skydive_runtime.agent.probes import PROBES
    spec = gen_role_specs.common_options()["skydive_topology_probes"]
    assert spec["choices"] == PROBES.names()
    agent_spec = _load(os.path.join(ROLES, "skydive_agent", "meta", "argument_specs.yml"))
    assert agent_spec["argument_specs"]["main"]["options"]["skydive_topology_probes"]["choices"] == PROBES.names()


def test_auth_choices_are_the_runtime_backends():
    """What the role may write under auth.api.type is what the runtime accepts."""
    from skydive_runtime.api.auth import make_backend
    from skydive_runtime.config import Config, ConfigError
    for choice in gen_role_specs.common_options()["skydive_auth_type"]["choices"]:
        make_backend(Config({"auth": {"api": {"type": choice, "users": {"u": "p"}, "auth_url": "http://k:5000"}},
                             "x": "api"}), "x")
    with pytest.raises(ConfigError, match="auth_url: the Keystone URL is required"):
        make_backend(Config({"auth": {"api": {"type": "keystone"}}, "x": "api"}), "x")


def test_good_values_pass_validation(tmp_path):
    res = _validate(tmp_path, "-e", json.dumps({
        "skydive_analyzer_port": "9082", "skydive_auth_type": "basic", "skydive_topology_probes": ["ovsdb", "netns"],
        "skydive_extra_config": {"analyzer.flow.backend": "memory"}, "skydive_listen_ip": "0.0.0.0"}))
    assert res.returncode == 0, res.stdout[-2000:]


@pytest.mark.parametrize("playbook", ["deploy.yml", "uninstall.yml", "validate.yml"])
def test_playbooks_pass_syntax_check(playbook):
    for inv in ("allinone.yml", "multinode.yml"):
        res = subprocess.run([ANSIBLE_PLAYBOOK, "--syntax-check", "-i", os.path.join(REPO, "inventories", inv),
                              os.path.join(PLAYBOOKS, playbook)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        assert res.returncode == 0, res.stdout


def test_inventories_define_the_upstream_groups():
    for inv in ("allinone.yml", "multinode.yml"):
        out = subprocess.run([os.path.join(os.path.dirname(ANSIBLE_PLAYBOOK), "ansible-inventory"),
                              "-i", os.path.join(REPO, "inventories", inv), "--list"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True).stdout
        data = json.loads(out)
        assert data["analyzers"]["hosts"] and data["agents"]["hosts"]


def test_cluster_variables_reach_the_analyzer_configuration(tmp_path):
    """skydive_etcd_servers and skydive_clickhouse render the keys the runtime reads (docs/scale-out.md)."""
    from skydive_runtime.config import Config
    out = tmp_path / "skydive.yml"
    play = tmp_path / "render.yml"
    template = os.path.join(ROLES, "skydive_common", "templates", "config.yml.j2")
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
        {"ansible.builtin.copy": {"dest": str(out), "content": "{{ lookup('ansible.builtin.template', '%s') }}" % template}}]}]))
    variables = {"ansible_python_interpreter": sys.executable, "skydive_auth_type": "noauth", "skydive_host_id": "c1", "skydive_flow_protocol": "websocket",
                 "skydive_log_level": "INFO", "skydive_tls_server_cert": "", "skydive_tls_ca_cert": "",
                 "_skydive_analyzer_addresses": ["10.0.0.1:8082", "10.0.0.2:8082"], "_skydive_is_analyzer": True,
                 "_skydive_is_agent": False, "_skydive_analyzer_bind_ip": "10.0.0.1", "skydive_analyzer_port": 8082, "skydive_fabric": [],
                 "skydive_data_dir": "/var/lib/skydive", "skydive_etcd_servers": ["http://10.0.0.1:2379"],
                 "skydive_clickhouse": {"host": "10.0.0.5:8123", "database": "skydive", "password": "pw"}}
    res = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(play), "-e", json.dumps(variables)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                         env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert res.returncode == 0, res.stdout[-2000:]
    cfg = Config(yaml.safe_load(out.read_text()))
    assert cfg.get_list("etcd.servers") == ["http://10.0.0.1:2379"]
    assert cfg.get_list("analyzers") == ["10.0.0.1:8082", "10.0.0.2:8082"]
    assert cfg.storage_section("analyzer.flow.backend") == cfg.storage_section("analyzer.topology.backend") == (
        "shared", {"driver": "clickhouse", "host": "10.0.0.5:8123", "database": "skydive", "password": "pw"})


def _render(tmp_path, templates, variables):
    """{name: rendered text} of role templates, rendered by ansible-playbook with `variables`."""
    play = tmp_path / "render.yml"
    tasks = []
    for name in templates:
        path = os.path.join(ROLES, "skydive_common", "templates", name)
        tasks.append({"ansible.builtin.copy": {"dest": str(tmp_path / name),
                                               "content": "{{ lookup('ansible.builtin.template', '%s') }}" % path}})
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}]))
    res = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(play), "-e", json.dumps(variables)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                         env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert res.returncode == 0, res.stdout[-2000:]
    return {name: (tmp_path / name).read_text() for name in templates}


def test_lab_services_configuration(tmp_path):
    """skydive_etcd_embedded: every analyzer an embedded member of one etcd cluster;
    skydive_clickhouse_deploy: the analyzers' storage on the first analyzer's ClickHouse, whose
    rendered configuration a real clickhouse-server runs and the store logs in to."""
    import shutil
    from skydive_runtime.analyzer.etcd_member import EmbeddedEtcd
    from skydive_runtime.config import Config
    from skydive_runtime.storage import open_store
    from tests.fixtures.servers import free_ports
    port = free_ports(1)[0]
    variables = {"ansible_python_interpreter": sys.executable, "skydive_auth_type": "noauth", "skydive_host_id": "c2",
                 "skydive_flow_protocol": "websocket", "skydive_log_level": "INFO", "skydive_tls_server_cert": "",
                 "skydive_tls_ca_cert": "", "_skydive_is_analyzer": True, "_skydive_is_agent": False,
                 "_skydive_analyzer_addresses": ["127.0.0.1:8082", "10.0.0.2:8082", "10.0.0.3:8082"],
                 "_skydive_analyzer_bind_ip": "10.0.0.2", "skydive_analyzer_port": 8082, "skydive_fabric": [],
                 "skydive_data_dir": str(tmp_path), "skydive_etcd_servers": [], "skydive_clickhouse": {},
                 "skydive_etcd_embedded": True, "skydive_etcd_port": 12379, "skydive_clickhouse_deploy": True,
                 "skydive_clickhouse_port": port, "skydive_clickhouse_password": "lab-pw",
                 "_skydive_etcd_members": {"c1": "127.0.0.1", "c2": "10.0.0.2", "c3": "10.0.0.3"},
                 "_ch_dir": str(tmp_path / "clickhouse"), "_ch_ip": "127.0.0.1"}
    out = _render(tmp_path, ["config.yml.j2", "clickhouse-config.xml.j2", "clickhouse-users.xml.j2"], variables)
    cfg = Config(yaml.safe_load(out["config.yml.j2"]))
    assert cfg.get_bool("etcd.embedded") and cfg.get_string("etcd.listen") == "10.0.0.2:12379"
    assert cfg.get_list("etcd.servers") == ["http://127.0.0.1:12379", "http://10.0.0.2:12379", "http://10.0.0.3:12379"]
    assert cfg.get_map("etcd.peers") == {"c1": "http://127.0.0.1:12380", "c2": "http://10.0.0.2:12380",
                                         "c3": "http://10.0.0.3:12380"}
    if shutil.which("etcd"):     # what the analyzer makes of it: the member's command line
        cmd = EmbeddedEtcd.from_config(cfg).command()
        assert cmd[cmd.index("--initial-cluster") + 1] == \
            "c1=http://127.0.0.1:12380,c2=http://10.0.0.2:12380,c3=http://10.0.0.3:12380"
        assert cmd[cmd.index("--data-dir") + 1] == str(tmp_path / "etcd" / "member-data")
    name, section = cfg.storage_section("analyzer.flow.backend")
    assert cfg.storage_section("analyzer.topology.backend") == (name, section)
    assert section == {"driver": "clickhouse", "host": "127.0.0.1:%d" % port, "database": "skydive",
                       "username": "skydive", "password": "lab-pw"}
    binary = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
    if not os.path.exists(binary):
        pytest.skip("clickhouse-server is not installed")
    ch_dir = tmp_path / "clickhouse"
    ch_dir.mkdir()
    for n in ("config", "users"):
        (ch_dir / (n + ".xml")).write_text(out["clickhouse-%s.xml.j2" % n])
    with open(ch_dir / "stdout.log", "w") as log:
        proc = subprocess.Popen([binary, "--config-file=%s/config.xml" % ch_dir], stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(ch_dir))
    try:
        from tests.fixtures.processes import wait_until
        store = wait_until(lambda: _try_open(open_store, section), timeout=30, message="the lab ClickHouse")
        store.put_resource("capture", "c1", {"UUID": "c1"})
        assert store.get_resource("capture", "c1") == {"UUID": "c1"}
        store.close()
        with pytest.raises(Exception, match="password|Authentication|Wrong"):
            open_store(dict(section, password="wrong"), name="shared")
    finally:
        proc.terminate()
        proc.wait(30)


def _try_open(open_store, section):
    from skydive_runtime.storage import StoreError
    try:
        return open_store(section, name="shared")
    except StoreError:
        return None
