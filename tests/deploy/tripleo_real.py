"""TripleO's own tooling around our composable services (docs/tripleo.md, "How it is verified"):
a tripleo-heat-templates 18.0.0 tree holding our files, THT's tools/yaml-validate.py and
tools/process-templates.py, a real Heat (heat-all without Keystone, configured as
python-tripleoclient's ephemeral Heat) and tripleoclient's output-only config-download render.

The packages come from scripts/bootstrap.d/tripleo.sh (sdist and venv under SKYDIVE_TRIPLEO_CACHE).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

import yaml

from tests.deploy.simnodes import REPO

OUR = os.path.join(REPO, "tripleo")
CACHE = os.environ.get("SKYDIVE_TRIPLEO_CACHE", os.path.expanduser("~/.cache/skydive-tripleo"))
THT_SDIST = os.path.join(CACHE, "tripleo-heat-templates-18.0.0.tar.gz")
TRIPLEO_PYTHON = os.path.join(CACHE, "venv", "bin", "python")
RENDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tripleo_render.py")
OUR_TEMPLATES = ("skydive-agent-baremetal-ansible.yaml", "skydive-analyzer-baremetal-ansible.yaml")
ENV_NAME = "skydive-environment.yaml"


def tht_missing():
    """A reason string when THT's tree is not available (bootstrap not run), else None."""
    if not os.path.exists(THT_SDIST):
        return "no %s (scripts/bootstrap.d/tripleo.sh)" % THT_SDIST
    return None


def heat_missing():
    for tool in ("heat-all", "heat-manage"):
        if not shutil.which(tool):
            return "needs %s (Debian heat-common, scripts/bootstrap.d/tripleo.sh)" % tool
    return None


def tripleoclient_missing():
    if os.geteuid() != 0:
        return "needs root (tripleoclient mounts a tmpfs for its ephemeral Heat)"
    if not os.path.exists(TRIPLEO_PYTHON):
        return "no python-tripleoclient venv in %s (scripts/bootstrap.d/tripleo.sh)" % CACHE
    return heat_missing()


def make_tree(dst, our=OUR):
    """THT 18.0.0's tree in dst with our templates at deployment/skydive/, our environment at the
    root (its ./deployment/... paths resolve there, as from a templates directory) and a copy
    in environments/ (../deployment/...). Returns dst."""
    with tarfile.open(THT_SDIST) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(os.path.dirname(dst), filter="data")
    os.rename(os.path.join(os.path.dirname(dst), top), dst)
    place(dst, our)
    return dst


def place(tree, our=OUR):
    """Copy our templates and environment (again) into a THT tree."""
    os.makedirs(os.path.join(tree, "deployment", "skydive"), exist_ok=True)
    for name in OUR_TEMPLATES:
        shutil.copy(os.path.join(our, "deployment", "skydive", name), os.path.join(tree, "deployment", "skydive", name))
    with open(os.path.join(our, ENV_NAME)) as fh:
        env = fh.read()
    with open(os.path.join(tree, ENV_NAME), "w") as fh:
        fh.write(env)
    with open(os.path.join(tree, "environments", ENV_NAME), "w") as fh:
        fh.write(env.replace("./deployment/", "../deployment/"))


def run(cmd, cwd, timeout=300, env=None):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, env=env)


def yaml_validate(tree, *paths):
    """THT's tools/yaml-validate.py, run from the tree's root (its rules key on ./ paths):
    the whole tree when no path is given."""
    args = list(paths) or [".", "--skip-dir", ".tox", "--skip-dir", "releasenotes", "--skip-dir", "zuul.d"]
    return run([sys.executable, "tools/yaml-validate.py", "-q"] + args, tree)


def process_templates(tree, roles_data, out):
    """THT's tools/process-templates.py: renders overcloud.yaml and the registry for these roles."""
    return run([sys.executable, "tools/process-templates.py", "-p", ".", "-r", roles_data,
                "-n", "network_data_default.yaml", "-o", out], tree)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TOKEN = {"token": {
    "methods": ["password"], "roles": [{"id": "admin", "name": "admin"}], "expires_at": "2099-01-01T00:00:00Z",
    "project": {"domain": {"id": "default", "name": "Default"}, "id": "admin", "name": "admin"},
    "user": {"domain": {"id": "default", "name": "Default"}, "id": "admin", "name": "admin"},
    "catalog": [{"type": "orchestration", "name": "heat", "id": "heat", "endpoints": [
        {"url": "http://127.0.0.1:%(port)d/v1/admin", "interface": i, "region": "regionOne", "region_id": "regionOne",
         "id": i} for i in ("public", "internal", "admin")]}]}}

HEAT_CONF = """[DEFAULT]
log_file = %(dir)s/heat.log
transport_url = fake://
num_engine_workers = 1
convergence_engine = true
max_json_body_size = 8388608
max_nested_stack_depth = 10
keystone_backend = heat.engine.clients.os.keystone.fake_keystoneclient.FakeKeystoneClient
[noauth]
token_response = %(dir)s/token.json
[heat_all]
enabled_services = api,engine
[heat_api]
workers = 1
bind_host = 127.0.0.1
bind_port = %(port)d
[database]
connection = sqlite:///%(dir)s/heat.sqlite
[paste_deploy]
flavor = noauth
api_paste_config = %(dir)s/api-paste.ini
"""

API_PASTE = """[pipeline:heat-api-noauth]
pipeline = faultwrap noauth context versionnegotiation apiv1app
[app:apiv1app]
paste.app_factory = heat.common.wsgi:app_factory
heat.app_factory = heat.api.openstack.v1:API
[filter:noauth]
paste.filter_factory = heat.common.noauth:filter_factory
[filter:context]
paste.filter_factory = heat.common.context:ContextMiddleware_filter_factory
[filter:versionnegotiation]
paste.filter_factory = heat.common.wsgi:filter_factory
heat.filter_factory = heat.api.openstack:version_negotiation_filter
[filter:faultwrap]
paste.filter_factory = heat.common.wsgi:filter_factory
heat.filter_factory = heat.api.openstack:faultwrap_filter
"""


class Heat:
    """heat-all (API + engine in one process), noauth, sqlite, on a free loopback port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="skd-heat-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/v1/admin" % self.port
        self.proc = None

    def start(self, timeout=60):
        conf = os.path.join(self.dir, "heat.conf")
        with open(conf, "w") as fh:
            fh.write(HEAT_CONF % {"dir": self.dir, "port": self.port})
        with open(os.path.join(self.dir, "api-paste.ini"), "w") as fh:
            fh.write(API_PASTE)
        with open(os.path.join(self.dir, "token.json"), "w") as fh:
            fh.write(json.dumps(TOKEN) % {"port": self.port})
        subprocess.run(["heat-manage", "--config-file", conf, "db_sync"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc = subprocess.Popen(["heat-all", "--config-file", conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr.log"), "w"))
        deadline = time.time() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            try:
                opener.open("http://127.0.0.1:%d/" % self.port, timeout=2).read()
                return self
            except urllib.error.HTTPError:
                return self        # the version document answers 300 Multiple Choices
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("heat-all did not start: %s" % self.log_tail())
                time.sleep(0.2)

    def log_tail(self, n=40):
        out = []
        for name in ("stderr.log", "heat.log"):
            try:
                with open(os.path.join(self.dir, name)) as fh:
                    out.extend(fh.read().splitlines()[-n:])
            except OSError:
                pass
        return "\n".join(out)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def validate(self, template, environments=(), show_nested=True):
        """What `openstack orchestration template validate --show-nested -t T -e E...` does
        (python-heatclient resolves the files and environments, Heat validates)."""
        from heatclient import client as heat_client
        from heatclient.common import template_utils
        files, tpl = template_utils.get_template_contents(template)
        env_files, env = template_utils.process_multiple_environments_and_files(env_paths=list(environments))
        hc = heat_client.Client("1", endpoint=self.url, token="noauth")
        return hc.stacks.validate(template=tpl, files=dict(files, **env_files), environment=env,
                                  show_nested=show_nested)


def tripleo_deploy_output_only(tree, roles_file, environments, out_dir, home, stack="overcloud"):
    """python-tripleoclient's `openstack tripleo deploy --output-only --heat-native` (a real
    ephemeral Heat creates the stack, config-download is written under out_dir)."""
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(home, exist_ok=True)
    open(os.path.join(out_dir, "ansible.cfg"), "a").close()   # else /etc/ansible/ansible.cfg is copied
    cmd = [TRIPLEO_PYTHON, RENDER, "--templates", tree, "--roles-file", roles_file, "--standalone-role", "Controller",
           "--output-dir", out_dir, "--output-only", "--heat-native", "--heat-api-port", str(free_port()),
           "--local-ip", "127.0.0.1/8", "--deployment-user", "root", "--disable-container-prepare", "--heat-user", "heat", "--stack", stack]
    for env in environments:
        cmd += ["-e", env]
    env = dict(os.environ, HOME=home)
    env.pop("PYTHONPATH", None)
    return run(cmd, out_dir, timeout=600, env=env)


def load_yaml(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


def short_hostname():
    """What tripleoclient maps the standalone role's node to (`hostname -s`, lower case)."""
    return subprocess.run(["hostname", "-s"], stdout=subprocess.PIPE, text=True, check=True).stdout.strip().lower()


def _port(ip):
    return {"fixed_ips": [{"ip_address": ip}], "subnets": [{"cidr": "127.0.0.0/8", "ip_version": 4}],
            "network": {"tags": ["127.0.0.0/8"]}}


def deployed_servers_env(stack="overcloud"):
    """parameter_defaults giving a deployed server to the Compute role as well (tripleoclient
    only maps its standalone role's node): tripleoclient's own entries for the Controller
    (this host on 127.0.0.1, the VIPs) plus a compute node on 127.0.0.2."""
    host = short_hostname()
    compute = host + "-compute"
    node = {h: {"ctlplane": {"ip_address": ip, "ip_address_uri": ip, "ip_subnet": ip + "/8"}}
            for h, ip in ((host, "127.0.0.1"), (compute, "127.0.0.2"))}
    return {"parameter_defaults": {
        "HostnameMap": {"%s-controller-0" % stack: host, "%s-novacompute-0" % stack: compute},
        "DeployedServerPortMap": {host + "-ctlplane": _port("127.0.0.1"), compute + "-ctlplane": _port("127.0.0.2"),
                                  "control_virtual_ip": _port("127.0.0.1"), "public_virtual_ip": _port("127.0.0.1")},
        "NodePortMap": node,
    }}
