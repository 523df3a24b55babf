"""The collection as users get it: `ansible-galaxy collection build`, then `ansible-galaxy
collection install` of the tarball into a temporary collections path. The roles build the
runtime wheel on the controller from the collection's own skydive_runtime/ + pyproject.toml
(roles/skydive_common/files/build-artifacts.sh, from `skydive_source_dir`), so an installed
collection must hold them, the role default must point at the installed collection's root, and
the build script must produce a working wheel from there."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
GALAXY = os.path.join(VENV_BIN, "ansible-galaxy")

# How Ansible computes a role default when a task of the role runs: load the role from the
# collections path, take the variables of its first task (role_path is set there) and template.
ROLE_DEFAULT_PROBE = r"""
import json, sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play import Play
from ansible.template import Templar
from ansible.vars.manager import VariableManager

loader = DataLoader()
inventory = InventoryManager(loader=loader, sources="localhost,")
variables = VariableManager(loader=loader, inventory=inventory)
play = Play.load({"hosts": "localhost", "gather_facts": False, "roles": ["skydive.skydive.skydive_common"]},
                 variable_manager=variables, loader=loader)
role = play.get_roles()[0]
task = role.compile(play)[0].block[0]
all_vars = variables.get_vars(play=play, host=inventory.get_host("localhost"), task=task)
print(json.dumps({"role_path": all_vars["role_path"],
                  "skydive_source_dir": Templar(loader=loader, variables=all_vars).template(all_vars["skydive_source_dir"])}))
"""


def _runtime_files(root):
    out = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "skydive_runtime")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in filenames:
            if not f.endswith(".pyc"):
                out.add(os.path.relpath(os.path.join(dirpath, f), root))
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(collections path, installed collection root) of this work tree's artifact."""
    base = tmp_path_factory.mktemp("artifact")
    subprocess.run([GALAXY, "collection", "build", REPO, "--output-path", str(base / "dist")],
                   check=True, capture_output=True, text=True, timeout=120)
    tarball = base / "dist" / "skydive-skydive-1.0.0.tar.gz"
    cpath = base / "collections"
    proc = subprocess.run([GALAXY, "collection", "install", str(tarball), "-p", str(cpath)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(cpath)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return str(cpath), str(cpath / "ansible_collections" / "skydive" / "skydive")


def test_installed_collection_holds_the_runtime_sources(installed):
    root = installed[1]
    assert os.path.isfile(os.path.join(root, "pyproject.toml"))
    with open(os.path.join(root, "pyproject.toml")) as fh, open(os.path.join(REPO, "pyproject.toml")) as ref:
        assert fh.read() == ref.read()
    shipped = _runtime_files(root)
    assert shipped == _runtime_files(REPO)
    for f in ("skydive_runtime/__init__.py", "skydive_runtime/cli/main.py", "skydive_runtime/ui/index.html"):
        assert f in shipped, f
    assert os.path.isfile(os.path.join(root, "roles", "skydive_common", "files", "build-artifacts.sh"))
    assert os.path.isfile(os.path.join(root, "tripleo", "skydive-environment.yaml"))
    for left_out in ("benchmarks", "scripts", ".venv", "skydive_runtime.egg-info", "tests/runtime", "tests/ansible"):
        assert not os.path.exists(os.path.join(root, left_out)), left_out


def test_role_default_source_dir_is_the_installed_collection(installed):
    cpath, root = installed
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=cpath, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_HOME=os.path.join(os.path.dirname(cpath), "ansible-home"))
    proc = subprocess.run([sys.executable, "-c", ROLE_DEFAULT_PROBE], capture_output=True, text=True,
                          timeout=120, env=env, cwd=os.path.dirname(cpath))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert os.path.realpath(got["role_path"]) == os.path.realpath(os.path.join(root, "roles", "skydive_common"))
    assert os.path.realpath(got["skydive_source_dir"]) == os.path.realpath(root)


def test_wheel_builds_from_the_installed_collection(installed, tmp_path):
    """What the role's first task runs (`build-artifacts.sh PYTHON SOURCE_DIR CACHE_DIR 0`,
    i.e. `pip wheel --no-deps` on the installed copy's pyproject.toml + skydive_runtime/)."""
    root = installed[1]
    script = os.path.join(root, "roles", "skydive_common", "files", "build-artifacts.sh")
    source_dir = os.path.realpath(os.path.join(root, "roles", "skydive_common", "..", ".."))
    assert os.access(script, os.X_OK)     # the role runs it as argv[0]: mode and shebang count
    proc = subprocess.run([script, sys.executable, source_dir, str(tmp_path / "cache"), "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["wheel_name"].startswith("skydive_runtime-") and out["wheel_name"].endswith("-py3-none-any.whl")
    with zipfile.ZipFile(out["wheel"]) as whl:
        names = set(whl.namelist())
        entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert entry_points and "skydive = skydive_runtime.cli.main:main" in whl.read(entry_points[0]).decode()
    py_sources = set(f for f in _runtime_files(REPO) if f.endswith(".py"))
    assert py_sources <= names, sorted(py_sources - names)[:10]
    assert "skydive_runtime/ui/index.html" in names
    assert not any(n.startswith(("plugins/", "roles/", "tripleo/", "tests/")) for n in names)
    # the installed copy is left as installed (the build runs in a staging copy)
    assert not os.path.exists(os.path.join(root, "build"))
    assert not any(f.endswith(".egg-info") for f in os.listdir(root))


def test_demo_topology_ships_and_runs_from_the_installed_collection(installed):
    """deploy.yml / uninstall.yml (skydive_demo_topology=true) run playbooks/files/demo-topology:
    it is in the artifact, the playbooks point at it, and it builds and removes the topology."""
    import yaml
    root = installed[1]
    script = os.path.join(root, "playbooks", "files", "demo-topology")
    assert os.access(script, os.X_OK)
    for playbook, action in (("deploy.yml", "up"), ("uninstall.yml", "down")):
        with open(os.path.join(root, "playbooks", playbook)) as fh:
            cmds = [t["ansible.builtin.script"] for play in yaml.safe_load(fh) for t in play.get("tasks", [])
                    if "ansible.builtin.script" in t]
        assert cmds == ["{{ playbook_dir }}/files/demo-topology %s" % action], (playbook, cmds)
    if os.geteuid() != 0:
        pytest.skip("creating the demo topology needs root")
    prefix = "t%s" % os.urandom(2).hex()      # names stay under 15 characters: t1a2b-veth1
    env = dict(os.environ, DEMO_PREFIX=prefix, DEMO_NET="10.213.%d" % (os.getpid() % 250), DEMO_OVS="0")

    def run(action):
        return subprocess.run([script, action], capture_output=True, text=True, timeout=60, env=env)
    try:
        assert run("up").stdout.split() == ["created"]
        assert run("up").stdout.split() == ["unchanged"]
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "%s-ns1" % prefix in netns and "%s-ns2" % prefix in netns
        ping = subprocess.run(["ip", "netns", "exec", "%s-ns1" % prefix, "ping", "-c1", "-W2", env["DEMO_NET"] + ".2"],
                              capture_output=True, text=True, timeout=30)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        down = run("down")
    assert down.stdout.split() == ["deleted"], down.stderr
    assert "%s-ns" % prefix not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
