"""`skydive store check|backup|restore`: maintenance of the analyzer's SQLite store file.

The store is the one `analyzer.topology.backend` names in the configuration (-c FILE, else
/etc/skydive/skydive.yml when it exists), or the file given with --path.
"""

import json

from ..config import ConfigError
from ..storage import DEFAULT_PATH, maintenance

__all__ = ["add_parser", "run"]


def add_parser(sub):
    s = sub.add_parser("store", help="check, back up or restore the analyzer's store file")
    ss = s.add_subparsers(dest="store_command", metavar="subcommand")
    ss.required = True
    c = ss.add_parser("check", help="verify the integrity of the store (works while the analyzer runs)")
    c.add_argument("--path", help="store file (default: from the configuration)")
    c.add_argument("--quick", action="store_true", help="PRAGMA quick_check instead of the full integrity_check")
    b = ss.add_parser("backup", help="copy the store to a file (SQLite online backup: works while the analyzer runs)")
    b.add_argument("dest", metavar="DEST", help="backup file to write, or a directory")
    b.add_argument("--path", help="store file (default: from the configuration)")
    r = ss.add_parser("restore", help="replace the store by a backup (the analyzer must be stopped)")
    r.add_argument("backup", metavar="BACKUP", help="backup file made by `skydive store backup`")
    r.add_argument("--path", help="store file (default: from the configuration)")


def store_path(config, path=None):
    if path:
        return path
    name, section = config.storage_section("analyzer.topology.backend")
    driver = section.get("driver") or name
    if driver != "sqlite":
        raise ConfigError("analyzer.topology.backend: storage.%s uses driver %s, which keeps no file: "
                          "nothing to check, back up or restore" % (name, driver))
    return section.get("path") or DEFAULT_PATH


def run(args, config):
    path = store_path(config, args.path)
    if args.store_command == "check":
        summary = maintenance.check(path, full=not args.quick)
        print("store %s: ok" % summary["path"])
    elif args.store_command == "backup":
        summary = maintenance.backup(path, args.dest)
        print("store %s backed up to %s (verified)" % (path, summary["path"]))
    else:
        summary, kept = maintenance.restore(args.backup, path)
        print("store %s restored from %s (verified)%s" % (
            path, args.backup, "; the replaced file is kept as %s" % kept if kept else ""))
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0
