"""Store maintenance: check, back up and restore an SQLite store file (`skydive store ...`).

`check` and `backup` work while an analyzer has the store open (they read a consistent
snapshot through SQLite, WAL readers never block the writer); `restore` needs the store closed
(it takes the store's lock) and verifies the backup before it replaces anything.
"""

import fcntl
import os
import sqlite3
import time
import urllib.parse

from .base import NEVER, StoreCorrupt, StoreError
from .sqlite import APPLICATION_ID, SCHEMA_VERSION, fsync_path, check_file, integrity_problems


def _open_ro(path):
    uri = "file:%s?mode=ro" % urllib.parse.quote(os.path.abspath(path))
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.Error as exc:
        raise StoreError("cannot open store %s: %s" % (path, exc)) from None
    return conn


def check(path, full=True):
    """Verify a store file; returns a summary dict, raises StoreCorrupt (or StoreError)."""
    path = os.path.abspath(path)
    if not check_file(path):
        raise StoreError("store %s does not exist" % path)
    conn = _open_ro(path)
    try:
        problems = integrity_problems(conn, "integrity_check" if full else "quick_check")
        if problems:
            raise StoreCorrupt("store %s fails its integrity check (%s)" % (path, problems))
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id != APPLICATION_ID or "meta" not in tables:
            raise StoreError("%s is an SQLite database but not a skydive store" % path)
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version != SCHEMA_VERSION:
            raise StoreError("store %s has schema version %d, this version uses %d" % (path, version, SCHEMA_VERSION))

        def count(sql, *args):
            return conn.execute("SELECT COUNT(*) FROM " + sql, args).fetchone()[0]
        return {"path": path, "schema_version": version, "revisions": count("history"),
                "live_revisions": count("history WHERE archived_at=?", NEVER), "resources": count("resources"),
                "flows": count("flows"), "bytes": os.path.getsize(path)}
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupt("store %s cannot be read (%s)" % (path, exc)) from None
    finally:
        conn.close()


def _copy(src_path, dest_path):
    """SQLite online backup of src into a new self-contained file dest (rollback journal)."""
    src = _open_ro(src_path)
    try:
        dst = sqlite3.connect(dest_path)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise StoreError("copying store %s to %s failed: %s" % (src_path, dest_path, exc)) from None
    finally:
        src.close()
    fsync_path(dest_path)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def backup(path, dest):
    """Copy the store at path to dest (a new file, replaced atomically), verified; returns check(dest)."""
    path, dest = os.path.abspath(path), os.path.abspath(dest)
    if path == dest:
        raise StoreError("the backup file must not be the store itself (%s)" % path)
    if os.path.isdir(dest):
        dest = os.path.join(dest, "%s.%s.backup" % (os.path.basename(path), time.strftime("%Y%m%dT%H%M%S")))
    check(path, full=False)
    tmp = dest + ".partial"
    _unlink_quietly(tmp)
    try:
        _copy(path, tmp)
        summary = check(tmp)
        os.replace(tmp, dest)
    finally:
        _unlink_quietly(tmp)
    fsync_path(os.path.dirname(dest))
    summary["path"] = dest
    return summary


def restore(backup_path, path):
    """Replace the store at path by a verified copy of backup_path. Refused while the store is
    open (an analyzer runs on it). The replaced file is kept beside it; returns (summary, kept path or None)."""
    backup_path, path = os.path.abspath(backup_path), os.path.abspath(path)
    if backup_path == path:
        raise StoreError("the backup file is the store itself (%s)" % path)
    try:
        check(backup_path)
    except StoreError as exc:
        raise StoreError("backup %s is not usable, nothing restored: %s" % (backup_path, exc)) from None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError("store %s is in use (an analyzer has it open): stop the analyzer, then restore again"
                             % path) from None
        tmp = path + ".restoring"
        _unlink_quietly(tmp)
        try:
            _copy(backup_path, tmp)
            summary = check(tmp)
            kept = None
            if os.path.exists(path):
                kept = "%s.before-restore-%s" % (path, time.strftime("%Y%m%dT%H%M%S"))
                os.replace(path, kept)
                for suffix in ("-wal", "-shm"):   # they belong to the replaced file
                    if os.path.exists(path + suffix):
                        os.replace(path + suffix, kept + suffix)
            os.replace(tmp, path)
        finally:
            _unlink_quietly(tmp)
        fsync_path(os.path.dirname(path))
    finally:
        os.close(fd)
    summary["path"] = path
    return summary, kept
