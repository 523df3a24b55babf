"""Storage: the Store interface, the embedded SQLite backend (default), `memory` and `clickhouse`.

    from skydive_runtime.storage import open_store
    store = open_store({"driver": "sqlite", "path": "/var/lib/skydive/skydive.db", "retention": "7d"})
    store.attach(graph)             # archive every revision of the live graph
    store.graph_at(t_ms)            # HistoryProvider for G.At / G.Context
"""

from .base import (MAX_TTL_MS, FlowStorageNotConfigured, HistoryNotSupported, InvalidWrite, Store, StoreCorrupt, StoreError,
                   FlowView, normalize_flow_filter, parse_retention, wait_committed)
from .clickhouse import ClickHouseStore
from .clickhouse import SETTINGS as _CLICKHOUSE_SETTINGS
from .memory import MemoryStore
from .sqlite import DEFAULT_PATH, SQLiteStore

DRIVERS = ("sqlite", "memory", "clickhouse")
_SQLITE_SETTINGS = ("path", "retention", "prune_interval", "flush_interval", "batch_size", "synchronous",
                    "heartbeat_interval", "max_size_mb", "check_on_start")


def open_store(settings=None, name=None):
    """Open the backend described by a `storage.<name>` section.

    `settings` is the section dict (`driver` defaults to sqlite; sqlite keys: path, retention,
    prune_interval, flush_interval, batch_size, synchronous, max_size_mb, check_on_start;
    clickhouse keys: clickhouse.SETTINGS), a plain path string (an SQLite file), or None (SQLite at
    the default path). `name` only improves error messages.
    Raises StoreError with a message naming the setting on bad input.
    """
    where = "storage.%s" % name if name else "storage"
    if settings is None:
        settings = {}
    if isinstance(settings, str):
        settings = {"driver": "sqlite", "path": settings}
    if not isinstance(settings, dict):
        raise StoreError("%s: expected a map of settings or a path, got %r" % (where, settings))
    driver = settings.get("driver") or (name if name in DRIVERS else "sqlite")
    if driver == "memory":
        return MemoryStore()
    if driver == "clickhouse":
        return _open(ClickHouseStore, _CLICKHOUSE_SETTINGS, settings, driver, where)
    if driver != "sqlite":
        raise StoreError("%s.driver: unsupported storage driver %r (supported: %s)"
                         % (where, driver, ", ".join(DRIVERS)))
    return _open(SQLiteStore, _SQLITE_SETTINGS, settings, driver, where)


def _open(cls, known, settings, driver, where):
    unknown = sorted(set(settings) - set(known) - {"driver"})
    if unknown:
        raise StoreError("%s: unknown setting(s) %s for driver %s (known: %s)"
                         % (where, ", ".join(unknown), driver, ", ".join(known)))
    kw = {k: settings[k] for k in known if settings.get(k) is not None}
    if cls is SQLiteStore:
        kw.setdefault("path", DEFAULT_PATH)
    try:
        return cls(**kw)
    except StoreError as exc:
        raise type(exc)("%s: %s" % (where, exc)) from None


__all__ = ["MAX_TTL_MS", "Store", "StoreError", "StoreCorrupt", "InvalidWrite", "wait_committed", "HistoryNotSupported", "FlowStorageNotConfigured", "FlowView",
           "MemoryStore", "SQLiteStore", "ClickHouseStore", "open_store", "normalize_flow_filter", "parse_retention",
           "DEFAULT_PATH"]
