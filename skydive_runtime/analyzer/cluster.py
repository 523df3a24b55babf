"""Several analyzers as one (docs/scale-out.md): what the cluster keys of the configuration turn on.

- `etcd.servers` (an existing etcd cluster) or `etcd.embedded` (a member run by the analyzer,
  analyzer/etcd_member.py): the API resources (captures, alerts, injections,
  node/edge rules, workflows) live in etcd, every analyzer watches them (`ResourceStore.follow`),
  TTLs are etcd leases; one master per duty by election (analyzer/election.py).
- `analyzers` (on an analyzer: the addresses of the cluster's analyzers, its own included):
  full-mesh replication of the graph and the live flows (analyzer/replication.py).

Without either, the analyzer is the standalone one it always was (its store keeps its resources).
"""

import asyncio
import logging

from ..config import ConfigError
from ..storage.etcd import EtcdClient, EtcdResources, tls_context, wait_ready
from ..storage.base import StoreError
from .election import DUTIES, Elections
from .etcd_member import EmbeddedEtcd
from .replication import Replication

log = logging.getLogger(__name__)


def etcd_resources(config):
    """EtcdResources when `etcd.servers` is set or `etcd.embedded` (then `.member` is the
    EmbeddedEtcd this analyzer runs, analyzer/etcd_member.py), else None (resources stay in the store)."""
    member = None
    if config.get_bool("etcd.embedded", False):
        member = EmbeddedEtcd.from_config(config).start()
    try:
        servers = config.get_list("etcd.servers") or ([member.client_url] if member is not None else [])
        if not servers:
            return None
        timeout = config.get_float("etcd.client_timeout", 5.0)
        if timeout <= 0:
            raise ConfigError("etcd.client_timeout: must be > 0")
        tls = None
        tls_keys = {k: config.get_string("etcd.tls." + k) or None for k in ("ca_file", "cert_file", "key_file")}
        if any(tls_keys.values()):
            if not all(str(s).startswith("https://") for s in servers):
                raise ConfigError("etcd.tls: set, but etcd.servers are not https:// URLs (%s)" % ", ".join(map(str, servers)))
            try:
                tls = tls_context(**tls_keys)
            except StoreError as exc:
                raise ConfigError(str(exc)) from None
        try:
            client = EtcdClient([str(s) for s in servers], timeout=timeout, tls=tls)
            wait_ready(client, timeout=max(timeout * 3, 15.0))
        except StoreError as exc:
            raise ConfigError("etcd.servers: %s" % exc) from None
    except BaseException:
        if member is not None:
            member.stop()
        raise
    shared = EtcdResources(client)
    shared.member = member
    return shared


class Cluster:
    """The cluster part of an analyzer: elections, replication, the resource watch."""

    def __init__(self, analyzer, shared):
        self.analyzer = analyzer
        self.shared = shared                  # EtcdResources or None
        cfg = analyzer.config
        self.elections = Elections(shared.client, analyzer.host_id) if shared is not None else None
        peers = [str(a) for a in cfg.get_list("analyzers")]
        self.replication = None
        if peers:
            self.replication = Replication(analyzer, peers, username=cfg.get_string("analyzer.auth.cluster.username"),
                                           password=cfg.get_string("analyzer.auth.cluster.password"),
                                           scheme="https" if analyzer._ssl else "http")

    @property
    def enabled(self):
        return self.shared is not None or self.replication is not None

    def mount(self, app):
        if self.replication is not None:
            self.replication.mount(app)

    def is_master(self, duty):
        return self.elections is None or self.elections.is_master(duty)

    async def start(self):
        if self.shared is not None:
            self.analyzer.resources.follow(asyncio.get_running_loop())
            self.elections.start()
        if self.replication is not None:
            await self.replication.start()

    async def stop(self):
        if self.replication is not None:
            await self.replication.stop()
        if self.elections is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.elections.stop)
        if self.shared is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.shared.close)

    def masters(self):
        """{duty: host}; without etcd this analyzer does every duty."""
        return self.elections.masters() if self.elections is not None else {d: self.analyzer.host_id for d in DUTIES}

    def status(self):
        """Masters: {duty: host} with etcd (a standalone analyzer keeps upstream's status keys)."""
        if self.elections is None:
            return {}
        st = {"Masters": self.masters()}
        if self.shared.member is not None:
            st["Etcd"] = self.shared.member.status()
        return st


class MasterOnly:
    """A part (start/stop) that runs only while this analyzer is the master of `duty`."""

    def __init__(self, part, duty, cluster):
        self.part, self.duty, self.cluster = part, duty, cluster
        self.running = False
        self.started = False

    def start(self):
        self.started = True
        self.cluster.elections.listeners.append(self._changed)
        self._changed(self.duty, self.cluster.is_master(self.duty))

    def _changed(self, duty, is_master):
        if duty != self.duty or not self.started:
            return
        if is_master and not self.running:
            log.info("master of %s: starting it", duty)
            self.running = True
            self.part.start()
        elif not is_master and self.running:
            log.info("no longer master of %s: stopping it", duty)
            self.running = False
            self.part.stop()

    def status(self):
        return self.part.status()

    def stop(self):
        self.started = False
        if self._changed in self.cluster.elections.listeners:
            self.cluster.elections.listeners.remove(self._changed)
        if self.running:
            self.running = False
            self.part.stop()
