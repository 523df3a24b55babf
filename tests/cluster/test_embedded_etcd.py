"""`etcd.embedded`: the analyzer runs and supervises its own etcd member (the real etcd binary),
shares its resources there, restarts the member when it dies, stops it on exit; without the
binary it refuses to start, saying why."""

import os
import shutil
import signal
import socket
import subprocess

import pytest
import requests

from skydive_runtime.storage.etcd import EtcdClient
from tests.fixtures.processes import REPO, SKYDIVE, SkydiveProcess, free_port, wait_until

pytestmark = pytest.mark.skipif(not shutil.which("etcd"), reason="needs etcd (Debian etcd-server)")


def _member_pid(data_dir):
    """The etcd process whose --data-dir is under data_dir (from /proc)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"etcd" and (data_dir + "/member-data").encode() in argv:
            return int(pid)
    return None


def _port_pair():
    """A free port whose next one is free too (the member's peer port is client port + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports")


def test_embedded_member(tmp_path):
    client_port = _port_pair()
    data_dir = str(tmp_path / "etcd")
    cfg = {"host_id": "emb1", "etcd": {"embedded": True, "listen": "127.0.0.1:%d" % client_port, "data_dir": data_dir},
           "storage": {"sqlite": {"path": str(tmp_path / "db.sqlite")}}, "logging": {"level": "INFO"}}
    an = SkydiveProcess("analyzer", tmp_path / "an", cfg)
    pid = None
    try:
        an.start(timeout=40)
        pid = _member_pid(data_dir)
        assert pid is not None, an.log_tail()
        st = requests.get(an.url + "/api/status", timeout=10).json()
        assert st["Etcd"]["ClientURL"] == "http://127.0.0.1:%d" % client_port and st["Etcd"]["Running"]
        wait_until(lambda: requests.get(an.url + "/api/status", timeout=10).json()["Masters"]
                   == dict.fromkeys(("alerts", "rules", "captures", "injections", "history"), "emb1"), timeout=10,
                   message="master of every duty")
        r = requests.post(an.url + "/api/alert", json={"Expression": "G.V().Has('Name', 'nothing-here')"}, timeout=10)
        assert r.status_code == 201, r.text
        etcd = EtcdClient(["http://127.0.0.1:%d" % client_port])
        assert etcd.get("/skydive/resources/alert/" + r.json()["UUID"])       # the resource lives in etcd
        # the member dies: the analyzer restarts it, the data is still there
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _member_pid(data_dir) not in (None, pid), timeout=15, message="member restarted")
        wait_until(lambda: requests.get(an.url + "/api/status", timeout=10).json()["Etcd"]["Restarts"] == 1, timeout=5,
                   message="restart counted")
        wait_until(lambda: _ok(lambda: etcd.get("/skydive/resources/alert/" + r.json()["UUID"])), timeout=15,
                   message="resource readable after the restart")
        pid = _member_pid(data_dir)
    finally:
        an.stop()
    # stopped with the analyzer
    wait_until(lambda: _member_pid(data_dir) is None, timeout=15, message="member stopped with the analyzer")
    if pid is not None:
        assert _gone(pid)


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as f:
            return f.read().split()[2] == "Z"
    except OSError:
        return True


def _ok(fn):
    try:
        return fn()
    except Exception:
        return False


def test_embedded_without_binary(tmp_path):
    cfg_path = tmp_path / "a.yml"
    cfg_path.write_text("host_id: emb2\netcd: {embedded: true, data_dir: %s}\n"
                        "storage: {sqlite: {path: %s}}\n" % (tmp_path / "etcd", tmp_path / "db.sqlite"))
    env = dict(os.environ, PATH="/nonexistent", PYTHONPATH=REPO)
    p = subprocess.run(SKYDIVE + ["-c", str(cfg_path), "analyzer", "--listen", "127.0.0.1:0"], env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode != 0
    assert "etcd.embedded: the etcd binary is not installed" in p.stderr + p.stdout
    assert "Traceback" not in p.stderr + p.stdout
