"""Fixtures for the collection tests: a collections path holding this work tree, real analyzers
started as subprocesses, and a runner for real `ansible-playbook` / `ansible-inventory` runs."""

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from tests.fixtures.processes import REPO, SkydiveProcess, analyzer_config, free_port

VENV_BIN = os.path.dirname(sys.executable)
ANSIBLE_PLAYBOOK = os.path.join(VENV_BIN, "ansible-playbook")
ANSIBLE_INVENTORY = os.path.join(VENV_BIN, "ansible-inventory")



@pytest.fixture(scope="session")
def collections_path(tmp_path_factory):
    """A directory with ansible_collections/skydive/skydive -> this work tree (a symlink: the
    ansible runtime follows it; only ansible-test needs a physical copy)."""
    base = tmp_path_factory.mktemp("collections")
    ns = base / "ansible_collections" / "skydive"
    ns.mkdir(parents=True)
    os.symlink(REPO, str(ns / "skydive"))
    return str(base)


@pytest.fixture(scope="session")
def ansible_env(collections_path, tmp_path_factory):
    home = tmp_path_factory.mktemp("ansible-home")
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("SKYDIVE_") or key.startswith("ANSIBLE_"):
            del env[key]
    env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_HOME=str(home),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_INVENTORY_ENABLED="skydive.skydive.skydive,ansible.builtin.host_list,ansible.builtin.yaml",
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
    )
    return env


def run_command(cmd, timeout, **kwargs):
    """subprocess.run in its own process group; on timeout the whole group (ansible's workers,
    ansible-test's children) is killed before the error propagates."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


class PlaybookRun:
    def __init__(self, proc, results):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.results = results

    def __getitem__(self, name):
        return self.results[name]

    def __repr__(self):
        return "PlaybookRun(rc=%s)\n%s\n%s" % (self.rc, self.stdout[-4000:], self.stderr[-2000:])


class Runner:
    """Run a list of tasks against localhost in one `ansible-playbook` process.

    Every task gets `register: <its name>` (the key `name` of the task dict is the register
    name) and `ignore_errors: true`; a last task dumps all registered results to JSON, which is
    how the test reads changed/diff/failed/msg of each task.
    """

    def __init__(self, env, workdir):
        self.env = env
        self.workdir = str(workdir)
        self.count = 0

    def play(self, tasks, module_defaults=None, vars=None, extra_args=(), timeout=300, env=None):
        self.count += 1
        names = []
        play_tasks = []
        for task in tasks:
            task = dict(task)
            name = task["name"]
            if name in names:
                raise ValueError("duplicate task name %s" % name)
            names.append(name)
            task["register"] = name
            task.setdefault("ignore_errors", True)
            play_tasks.append(task)
        out = os.path.join(self.workdir, "results-%d.json" % self.count)
        dump = "{{ {%s} | to_json }}" % ", ".join("'%s': %s | default(None)" % (n, n) for n in names)
        play_tasks.append({"name": "dump results", "ansible.builtin.copy": {"content": dump, "dest": out},
                           "check_mode": False, "diff": False})
        play = {"hosts": "localhost", "gather_facts": False, "connection": "local",
                "tasks": play_tasks}
        if module_defaults:
            play["module_defaults"] = module_defaults
        if vars:
            play["vars"] = vars
        path = os.path.join(self.workdir, "playbook-%d.yml" % self.count)
        with open(path, "w") as fh:
            yaml.safe_dump([play], fh, sort_keys=False)
        cmd = [ANSIBLE_PLAYBOOK, "-i", "localhost,", path] + list(extra_args)
        proc = run_command(cmd, timeout, env=dict(self.env, **(env or {})), cwd=self.workdir)
        results = {}
        if os.path.exists(out):
            with open(out) as fh:
                results = json.load(fh)
        run = PlaybookRun(proc, results)
        assert proc.returncode == 0 and results, "ansible-playbook failed: %r" % run
        return run


@pytest.fixture
def runner(ansible_env, tmp_path):
    return Runner(ansible_env, tmp_path)


def _start(workdir, config):
    proc = SkydiveProcess("analyzer", workdir, config)
    proc.start()
    return proc


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    """A live analyzer without authentication, shared by the tests of one file."""
    workdir = tmp_path_factory.mktemp("analyzer")
    proc = _start(workdir, analyzer_config(workdir))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def auth_analyzer(tmp_path_factory):
    """A live analyzer with basic authentication (user admin, password pass)."""
    workdir = tmp_path_factory.mktemp("auth-analyzer")
    config = analyzer_config(workdir)
    config["auth"] = {"basic": {"type": "basic", "users": {"admin": "pass"}}}
    config["analyzer"]["auth"] = {"api": {"backend": "basic"}}
    proc = SkydiveProcess("analyzer", workdir, config, auth=("admin", "pass"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def dead_address():
    """host:port where nothing listens."""
    return "127.0.0.1:%d" % free_port()


def run_inventory(env, inventory_path, timeout=120, extra_env=None, extra_args=()):
    return run_command([ANSIBLE_INVENTORY, "-i", str(inventory_path), "--list"] + list(extra_args),
                       timeout, env=dict(env, **(extra_env or {})))


def plain(value):
    """ansible-inventory (2.19+) writes strings that are not trusted templates -- everything
    read from the analyzer -- as {"__ansible_unsafe": "..."}; unwrap them for assertions."""
    if isinstance(value, dict):
        if list(value) == ["__ansible_unsafe"]:
            return value["__ansible_unsafe"]
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def pytest_configure(config):
    config.addinivalue_line("markers", "ansible: real ansible-playbook/ansible-inventory runs against a live analyzer")
    config.addinivalue_line("markers", "ansible_test: runs ansible-test sanity and units (slow, first run needs PyPI)")
