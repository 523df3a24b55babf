"""Simulated nodes for deployment tests: one network namespace per node on a Linux bridge,
each running its own sshd, each with private /etc/skydive, /opt/skydive, /var/lib/skydive
and systemd root directories (role variables point into a per-node directory, since the
filesystem is shared). ansible-playbook reaches them over real SSH.

Teardown kills every process inside each namespace (services, sshd, leftover ssh session
children) before deleting it, then deletes the bridge: the namespaces and veths really go.
"""
import base64
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(os.path.realpath(__import__("sys").executable))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(__import__("sys").executable), "ansible-playbook")

RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                      r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)", re.M)


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def requirements_missing():
    """A reason string when this machine cannot host simulated nodes, else None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, sshd)"
    for tool in ("ip", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            return "needs %s" % tool
    if not os.path.exists("/usr/sbin/sshd"):
        return "needs openssh-server (/usr/sbin/sshd)"
    if not os.path.exists(ANSIBLE_PLAYBOOK):
        return "needs ansible-core in the test virtualenv"
    return None


def runtime_missing():
    """The deployment runs `skydive analyzer` / `skydive agent`: skip while they don't exist."""
    import importlib.util
    for mod in ("skydive_runtime.analyzer.service", "skydive_runtime.agent.service"):
        try:
            if importlib.util.find_spec(mod) is None:
                return "runtime module %s does not exist yet" % mod
        except ImportError as exc:
            return "runtime module %s cannot be imported: %s" % (mod, exc)
    return None


def _free_subnet():
    used = sh("ip", "-4", "-o", "addr", "show").stdout + sh("ip", "-4", "route", "show").stdout
    for _ in range(200):
        k = random.randint(1, 254)
        prefix = "10.213.%d." % k
        if prefix not in used:
            return prefix
    raise RuntimeError("no free 10.213.x.0/24 subnet")


def http_json(url, body=None, timeout=5, auth=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET", headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode() or "null")


class PlaybookResult:
    def __init__(self, proc, log_path):
        self.rc = proc.returncode
        self.output = proc.stdout
        self.log_path = log_path
        self.recap = {}
        for m in RECAP_RE.finditer(self.output):
            self.recap[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)),
                                      "unreachable": int(m.group(4)), "failed": int(m.group(5))}

    def changed(self):
        return {h: r["changed"] for h, r in self.recap.items()}

    def tail(self, n=60):
        return "\n".join(self.output.splitlines()[-n:])

    def changed_tasks(self):
        """Names of the tasks that reported changed (from the default callback output)."""
        out, task = [], None
        for line in self.output.splitlines():
            if line.startswith("TASK [") or line.startswith("RUNNING HANDLER ["):
                task = line.split("[", 1)[1].rsplit("]", 1)[0]
            elif line.startswith("changed:") and task:
                out.append((task, line.split("[", 1)[1].split("]", 1)[0]))
        return out


class SimCluster:
    """Nodes `names` (the first is the analyzer; all are agents)."""

    def __init__(self, names=("controller", "compute1", "compute2"), analyzers=("controller",)):
        self.names = list(names)
        self.analyzers = list(analyzers)
        self.tag = "%04x" % random.randint(0, 0xFFFF)
        self.base = tempfile.mkdtemp(prefix="skd-%s-" % self.tag, dir="/tmp")
        os.chmod(self.base, 0o755)  # the analyzer's system user must traverse it
        self.bridge = "skdbr%s" % self.tag
        self.prefix = None
        self.nodes = {}
        # a system user of its own: concurrent clusters on one machine share /etc/passwd
        self.sys_user = "skd%s" % self.tag
        self.user_existed = _user_exists(self.sys_user)
        self.cache_dir = os.environ.get("SKYDIVE_DEPLOY_CACHE", os.path.expanduser("~/.cache/skydive-ansible"))
        self.runs = 0

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        self.prefix = _free_subnet()
        # a frozen copy of the runtime sources: the wheel stays the same for the whole
        # session even while the working tree is being edited
        self.source_dir = os.path.join(self.base, "src")
        os.makedirs(self.source_dir)
        shutil.copy(os.path.join(REPO, "pyproject.toml"), self.source_dir)
        shutil.copytree(os.path.join(REPO, "skydive_runtime"), os.path.join(self.source_dir, "skydive_runtime"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        keydir = os.path.join(self.base, "keys")
        os.makedirs(keydir)
        self.client_key = os.path.join(keydir, "id_ed25519")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.client_key)
        self.host_key = os.path.join(keydir, "ssh_host_ed25519_key")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key)
        self.authorized_keys = os.path.join(keydir, "authorized_keys")
        shutil.copy(self.client_key + ".pub", self.authorized_keys)
        os.makedirs("/run/sshd", exist_ok=True)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", self.prefix + "254/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i, name in enumerate(self.names, start=1):
            ns = "skd%s-%s" % (self.tag, name)
            ip = self.prefix + str(i)
            root = os.path.join(self.base, name)
            node = {"name": name, "ns": ns, "ip": ip, "root": root,
                    "veth": "skd%s%d" % (self.tag, i)}
            self.nodes[name] = node
            os.makedirs(os.path.join(root, "netns"))
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", node["veth"], "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", node["veth"], "master", self.bridge)
            sh("ip", "link", "set", node["veth"], "up")
            sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            conf = os.path.join(root, "sshd_config")
            with open(conf, "w") as fh:
                fh.write("\n".join([
                    "ListenAddress %s" % ip, "Port 22", "HostKey %s" % self.host_key,
                    "PidFile %s" % os.path.join(root, "sshd.pid"),
                    "AuthorizedKeysFile %s" % self.authorized_keys, "StrictModes no", "UsePAM no",
                    "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password", "MaxStartups 50", "MaxSessions 50",
                    "Subsystem sftp internal-sftp", ""]))
            sh("ip", "netns", "exec", ns, "/usr/sbin/sshd", "-f", conf, "-E", os.path.join(root, "sshd.log"))
        for node in self.nodes.values():
            _wait_port(node["ip"], 22, 15)

    def stop(self):
        for node in self.nodes.values():
            _kill_netns(node["ns"])
            sh("ip", "netns", "del", node["ns"], check=False)
            sh("ip", "link", "del", node["veth"], check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        if not self.user_existed and _user_exists(self.sys_user):
            sh("userdel", self.sys_user, check=False)
        if not self.user_existed:
            sh("groupdel", self.sys_user, check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    # ---- inventory and playbooks -----------------------------------------------------------
    def node_vars(self, name):
        n = self.nodes[name]
        r = n["root"]
        return {
            "ansible_host": n["ip"],
            "skydive_listen_ip": n["ip"],
            "skydive_config_dir": r + "/etc/skydive",
            "skydive_install_dir": r + "/opt/skydive",
            "skydive_data_dir": r + "/var/lib/skydive",
            "skydive_systemd_root": r,
            # each simulated node sees only its own (empty) namespace directory
            "skydive_extra_config": {"agent.topology.netns.run_path": r + "/netns"},
        }

    def write_inventory(self, groups=None, common=None, path=None):
        groups = groups or {"analyzers": self.analyzers, "agents": self.names}
        hosts = {name: self.node_vars(name) for name in self.names}
        inv = {"all": {
            "hosts": hosts,
            "children": {g: {"hosts": {h: None for h in members}} for g, members in groups.items()},
            "vars": dict({
                "ansible_user": "root",
                "ansible_ssh_private_key_file": self.client_key,
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                "ansible_python_interpreter": "/usr/bin/python3",
                "skydive_cli_link": "",
                "skydive_install_source": "wheelhouse",
                "skydive_service_manager": "systemctl-replacement",
                "skydive_controller_cache_dir": self.cache_dir,
                "skydive_source_dir": self.source_dir,
                "skydive_sys_username": self.sys_user,
                "skydive_sys_groupname": self.sys_user,
                "skydive_check_retries": 40,
                "skydive_check_delay": 1,
                "skydive_credentials_dir": self.credentials_dir,
            }, **(common or {})),
        }}
        path = path or os.path.join(self.base, "inventory.yml")
        with open(path, "w") as fh:
            yaml.safe_dump(inv, fh)
        return path

    def env(self):
        env = dict(os.environ)
        env.update({
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            # no ControlPersist: no ssh master left inside a namespace
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPersist=no",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_FORKS": "10",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.base, "ansible-local"),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
        })
        return env

    def playbook(self, playbook, *args, inventory=None, timeout=900):
        inventory = inventory or self.write_inventory()
        self.runs += 1
        cmd = [ANSIBLE_PLAYBOOK, "-i", inventory, playbook] + list(args)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=self.env(), cwd=REPO, timeout=timeout)
        log = os.path.join(self.base, "run%02d-%s.log" % (self.runs, os.path.basename(playbook)))
        with open(log, "w") as fh:
            fh.write(" ".join(cmd) + "\n" + proc.stdout)
        return PlaybookResult(proc, log)

    # ---- observation -------------------------------------------------------------------------
    def analyzer_url(self, name=None):
        return "http://%s:8082" % self.nodes[name or self.analyzers[0]]["ip"]

    @property
    def credentials_dir(self):
        """Where the roles generate the passwords (skydive_credentials_dir) on this controller."""
        return os.path.join(self.base, "credentials")

    def api_auth(self):
        """(user, generated password) once a deployment created it, else None (noauth)."""
        path = os.path.join(self.credentials_dir, "api-password")
        if not os.path.exists(path):
            return None
        with open(path) as fh:     # the password lookup may append " salt=..." for encrypted forms
            return ("skydive", fh.read().split()[0])

    def status(self, name=None):
        return http_json(self.analyzer_url(name) + "/api/status", auth=self.api_auth())

    def gremlin(self, query, name=None):
        return http_json(self.analyzer_url(name) + "/api/topology", {"GremlinQuery": query}, auth=self.api_auth())

    def service_pids(self, name):
        """{'analyzer': pid, 'agent': pid} of the skydive services running inside node `name`."""
        out = {}
        for pid in _netns_pids(self.nodes[name]["ns"]):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            args = [a.decode(errors="replace") for a in argv if a]
            if any(a.endswith("/bin/skydive") for a in args[:2]):
                for svc in ("analyzer", "agent", "allinone"):
                    if svc in args:
                        out[svc] = pid
        return out

    def processes(self, name):
        """Command lines of every process inside node `name`."""
        out = []
        for pid in _netns_pids(self.nodes[name]["ns"]):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as fh:
                    out.append(fh.read().replace(b"\0", b" ").decode(errors="replace").strip())
            except OSError:
                pass
        return out

    def snapshot(self):
        """Every file under the nodes' managed directories with its mtime and size."""
        snap = {}
        for node in self.nodes.values():
            for sub in ("etc", "opt/skydive/dist", "opt/skydive/sbin", "opt/skydive/.installed", "var/lib"):
                top = os.path.join(node["root"], sub)
                if os.path.isfile(top):
                    st = os.stat(top)
                    snap[top] = (st.st_mtime_ns, st.st_size)
                for dirpath, dirs, files in os.walk(top):
                    if dirpath.endswith("/lib/skydive"):
                        # the lab services' live data (embedded etcd, ClickHouse) change while they run
                        dirs[:] = [d for d in dirs if d not in ("etcd", "clickhouse")]
                    for f in files:
                        p = os.path.join(dirpath, f)
                        if p.endswith((".db", ".db-wal", ".db-shm", ".db-journal")):
                            continue  # the analyzer's store changes while it runs
                        try:
                            st = os.stat(p)
                        except OSError:
                            continue
                        snap[p] = (st.st_mtime_ns, st.st_size)
        return snap


def _user_exists(name):
    return sh("getent", "passwd", name, check=False).returncode == 0


def _netns_pids(ns):
    res = sh("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in res.stdout.split() if p.strip().isdigit()]


def _kill_netns(ns):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _netns_pids(ns)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 3
        while time.time() < deadline and _netns_pids(ns):
            time.sleep(0.1)


def _wait_port(host, port, timeout):
    import socket
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
