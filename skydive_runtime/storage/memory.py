"""The `memory` backend: upstream's default, without history and without flow storage.

API resources are kept in memory (they do not survive a restart). `G.At(...)` fails with
upstream's `Backend does not support history`; flow queries with `No storage backend has
been configured`.
"""

import copy
import threading

from ..common.timeutil import now_ms as _now
from .base import FlowStorageNotConfigured, HistoryNotSupported, Store, StoreError, validate_resource


class MemoryStore(Store):
    name = "memory"
    supports_history = False
    supports_flows = False

    def __init__(self):
        self._resources = {}   # (kind, id) -> (obj, expires_at|None)
        self._lock = threading.Lock()
        self._closed = False

    def _check(self):
        if self._closed:
            raise StoreError("store is closed")

    # history: refused like upstream's memory backend
    def attach(self, graph, restore=None):
        self._check()

    def detach(self):
        pass

    def graph_at(self, t_ms):
        raise HistoryNotSupported()

    def revisions_between(self, start_ms, end_ms):
        raise HistoryNotSupported()

    # resources
    def put_resource(self, kind, id, obj, ttl_ms=None):
        self._check()
        _text, ttl_ms = validate_resource(kind, id, obj, ttl_ms)
        expires = None if ttl_ms is None else _now() + ttl_ms
        with self._lock:
            self._resources[(kind, id)] = (copy.deepcopy(obj), expires)

    def _alive(self, entry, t):
        return entry is not None and (entry[1] is None or entry[1] > t)

    def get_resource(self, kind, id):
        self._check()
        with self._lock:
            entry = self._resources.get((kind, id))
            return copy.deepcopy(entry[0]) if self._alive(entry, _now()) else None

    def list_resources(self, kind):
        self._check()
        t = _now()
        with self._lock:
            return {i: copy.deepcopy(e[0]) for (k, i), e in sorted(self._resources.items())
                    if k == kind and self._alive(e, t)}

    def delete_resource(self, kind, id):
        self._check()
        with self._lock:
            entry = self._resources.pop((kind, id), None)
            return self._alive(entry, _now())

    def expire_resources(self, now_ms=None):
        self._check()
        t = _now() if now_ms is None else now_ms
        out = []
        with self._lock:
            for key, (obj, expires) in sorted(self._resources.items(), key=lambda kv: kv[1][1] or 0):
                if expires is not None and expires <= t:
                    out.append((key[0], key[1], obj))
                    del self._resources[key]
        return out

    # flows: no flow storage
    def store_flows(self, flows):
        """Without a flow backend flows are not kept (upstream behaviour)."""
        self._check()

    def query_flows(self, filter=None, start_ms=None, end_ms=None, limit=None):
        raise FlowStorageNotConfigured()

    def flow_metrics(self, uuids, start_ms=None, end_ms=None):
        raise FlowStorageNotConfigured()

    def prune(self, now_ms=None):
        self._check()
        self.expire_resources(now_ms)
        return {"revisions": 0, "flows": 0, "metrics": 0}

    def flush(self):
        self._check()

    def close(self):
        self._closed = True
