"""`etcd.embedded`: the analyzer runs its own etcd member (upstream's embedded etcd) as a child process.

    member = EmbeddedEtcd.from_config(config)    # ConfigError when etcd is not installed or misconfigured
    member.start()          # until it answers on etcd.listen; a supervisor thread restarts it if it dies
    member.client_url       # http://<etcd.listen>, the default of etcd.servers
    member.stop()           # SIGTERM, then SIGKILL after 10 s

The binary is `etcd` (Debian `etcd-server`) from PATH. Configuration as upstream: `etcd.listen`
(client address, default 127.0.0.1:12379; the peer port is the client port + 1), `etcd.data_dir`
(default /var/lib/skydive/etcd), `etcd.name` (default the host ID), `etcd.peers` ({name:
peer URL} of every member of an embedded cluster, this one included; empty: a single member),
`etcd.max_wal_files` / `etcd.max_snap_files` (5).
"""

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse

from ..config import ConfigError
from ..storage.base import StoreError
from ..storage.etcd import EtcdClient, wait_ready

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 20.0
RESTART_DELAY_S = (0.5, 5.0)      # first and longest wait before a restart


def _port(value, key):
    host, _sep, port = str(value).rpartition(":")
    try:
        port = int(port)
    except ValueError:
        raise ConfigError("%s: expected host:port, got %r" % (key, value)) from None
    if not host or not 0 < port < 65535:
        raise ConfigError("%s: expected host:port with a port below 65535, got %r" % (key, value))
    return host.strip("[]"), port


class EmbeddedEtcd:
    def __init__(self, binary, name, data_dir, host, port, peers, max_wal=5, max_snap=5):
        self.binary, self.name, self.data_dir = binary, name, data_dir
        self.host, self.port = host, port
        self.client_url = "http://%s:%d" % (host, port)
        self.peer_url = peers.get(name) or "http://%s:%d" % (host, port + 1)
        self.peers = dict(peers) or {name: self.peer_url}
        self.max_wal, self.max_snap = max_wal, max_snap
        self.proc = None
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._spawned_at = 0.0

    @classmethod
    def from_config(cls, config):
        binary = shutil.which("etcd")
        if binary is None:
            raise ConfigError("etcd.embedded: the etcd binary is not installed (Debian package etcd-server; "
                              "it must be on PATH), or set etcd.embedded: false and list an etcd cluster in etcd.servers")
        host, port = _port(config.get_string("etcd.listen") or "127.0.0.1:12379", "etcd.listen")
        if host in ("0.0.0.0", "::"):
            raise ConfigError("etcd.listen: the embedded member advertises this address to its clients and peers: "
                              "give one address, not %s" % host)
        peers = config.get_map("etcd.peers") or {}
        name = config.get_string("etcd.name") or config.host_id()
        for k, v in peers.items():
            url = urllib.parse.urlsplit(str(v))
            if url.scheme != "http" or not url.hostname or not url.port:
                raise ConfigError("etcd.peers.%s: expected http://host:port, got %r" % (k, v))
        if peers and name not in peers:
            raise ConfigError("etcd.peers: lists the members of the embedded cluster and must hold this one (%s)" % name)
        data_dir = config.get_string("etcd.data_dir") or "/var/lib/skydive/etcd"
        try:
            os.makedirs(data_dir, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigError("etcd.data_dir: cannot create %s: %s" % (data_dir, exc.strerror)) from None
        wal, snap = config.get_int("etcd.max_wal_files", 5), config.get_int("etcd.max_snap_files", 5)
        return cls(binary, name, data_dir, host, port, {str(k): str(v) for k, v in peers.items()}, wal, snap)

    def command(self):
        initial = ",".join("%s=%s" % (n, u) for n, u in sorted(self.peers.items()))
        return [self.binary, "--name", self.name, "--data-dir", os.path.join(self.data_dir, "member-data"),
                "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", "skydive", "--max-wals", str(self.max_wal),
                "--max-snapshots", str(self.max_snap)]

    @property
    def log_path(self):
        return os.path.join(self.data_dir, "etcd.log")

    def _spawn(self):
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self._spawned_at = time.monotonic()
        log.info("embedded etcd %s started (pid %d) on %s", self.name, self.proc.pid, self.client_url)

    def _log_tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return b" | ".join(f.read().splitlines()[-3:]).decode(errors="replace")
        except OSError:
            return ""

    def start(self):
        self._spawn()
        client = EtcdClient([self.client_url], timeout=2.0)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise ConfigError("etcd.embedded: etcd exited with %s: %s" % (self.proc.returncode, self._log_tail()))
            try:
                wait_ready(client, timeout=0.5)
                break
            except StoreError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError("etcd.embedded: etcd did not answer on %s within %ds: %s"
                                      % (self.client_url, READY_TIMEOUT_S, self._log_tail())) from None
        self._thread = threading.Thread(target=self._supervise, name="etcd-embedded", daemon=True)
        self._thread.start()
        return self

    def _supervise(self):
        delay = 0.0
        while not self._stop.is_set():
            rc = self.proc.wait()
            # a member that keeps dying is restarted less and less often
            lived = time.monotonic() - self._spawned_at
            delay = RESTART_DELAY_S[0] if lived > 30 else min(max(delay * 2, RESTART_DELAY_S[0]), RESTART_DELAY_S[1])
            if self._stop.wait(delay):
                return
            with self._lock:
                if self._stop.is_set():
                    return
                log.error("embedded etcd exited with %s: restarting it (%s)", rc, self._log_tail())
                self.restarts += 1
                try:
                    self._spawn()
                except OSError as exc:
                    log.error("embedded etcd cannot be restarted: %s", exc)
                    return

    def stop(self):
        self._stop.set()
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._thread is not None:
            self._thread.join(5)
        log.info("embedded etcd %s stopped", self.name)

    def status(self):
        return {"Embedded": True, "Name": self.name, "ClientURL": self.client_url,
                "Running": self.proc is not None and self.proc.poll() is None, "Restarts": self.restarts}
