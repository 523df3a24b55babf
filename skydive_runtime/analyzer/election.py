"""One master per duty among the analyzers of a cluster, elected in etcd.

Each analyzer holds one etcd lease (TTL `LEASE_TTL_S`, kept alive every `KEEPALIVE_S`) and
tries to create `/skydive/masters/<duty>` = its host ID with that lease; the analyzer that
created it is the master of the duty until its lease ends (it stops, or dies and stops keeping
the lease alive: etcd then deletes the key, and the next campaign of another analyzer wins,
within LEASE_TTL_S + CAMPAIGN_S). Duties: `alerts` (only the master fires alert actions),
`rules` (only the master applies node/edge rules; the others get their result by replication),
`captures` and `injections` (only the master matches them against the graph and starts them,
on every agent of the cluster through the analyzer it is linked to: analyzer/relay.py),
`history` (only the master applies the retention of a store the analyzers share: ClickHouse).
"""

import asyncio
import logging
import threading
import time

from ..storage.etcd import EtcdError

log = logging.getLogger(__name__)

DUTIES = ("alerts", "rules", "captures", "injections", "history")
PREFIX = "/skydive/masters/"
LEASE_TTL_S = 3
KEEPALIVE_S = 0.8
CAMPAIGN_S = 0.3


class Elections:
    """is_master(duty), masters() -> {duty: host}; on_change(duty, is_master) is called in the
    event loop when this analyzer wins or loses a duty."""

    def __init__(self, client, host_id, duties=DUTIES):
        self.client = client
        self.host_id = host_id
        self.duties = tuple(duties)
        self._masters = {d: "" for d in self.duties}
        self._lease = None
        self._stop = threading.Event()
        self._thread = None
        self._loop = None
        self.listeners = []
        self.changes = 0

    def is_master(self, duty):
        return self._masters.get(duty) == self.host_id

    def masters(self):
        return dict(self._masters)

    def status(self, duty):
        return {"IsMaster": self.is_master(duty), "Master": self._masters.get(duty, "")}

    def start(self):
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="etcd-elections", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._lease:
            try:   # resign at once: another analyzer takes over without waiting for the TTL
                self.client.revoke(self._lease)
            except EtcdError:
                pass
            self._lease = None

    def _set(self, duty, host):
        was = self.is_master(duty)
        self._masters[duty] = host or ""
        now = self.is_master(duty)
        if was != now:
            self.changes += 1
            log.info("%s master of %s: %s", "now" if now else "no longer", duty, self.host_id)
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._notify, duty, now)

    def _notify(self, duty, is_master):
        for fn in list(self.listeners):
            try:
                fn(duty, is_master)
            except Exception:
                log.exception("master change listener failed")

    def _run(self):
        last_keepalive = 0.0
        clock = threading.Event()
        while not self._stop.is_set():
            try:
                if self._lease is None:
                    self._lease = self.client.grant(LEASE_TTL_S)
                    last_keepalive = time.monotonic()
                elif time.monotonic() - last_keepalive >= KEEPALIVE_S:
                    if not self.client.keepalive(self._lease):
                        log.warning("etcd lease of %s expired: campaigning again", self.host_id)
                        self._lease = None
                        for duty in self.duties:
                            self._set(duty, "")
                        continue
                    last_keepalive = time.monotonic()
                for duty in self.duties:
                    created, holder = self.client.create(PREFIX + duty, self.host_id, self._lease)
                    self._set(duty, self.host_id if created else holder)
            except EtcdError as exc:
                log.warning("election: %s", exc)
                for duty in self.duties:   # cannot prove we still hold it: let the others take over
                    self._set(duty, "")
                self._lease = None
            clock.wait(CAMPAIGN_S)
