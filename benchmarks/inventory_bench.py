#!/usr/bin/env python3
"""Time the skydive.skydive.skydive inventory plugin on a topology of N host nodes.

    .venv/bin/python benchmarks/inventory_bench.py [--hosts 1000] [--interfaces 4] [--live]
                                                   [--constructed] [--repeat 3]

Offline (default): a generated topology (each host owns --interfaces interfaces, plus a netns)
is written in the `GET /api/topology` format and the plugin builds the inventory from it
(`topology_file`). With --live, the same topology is posted to a real `skydive analyzer`
started on a free port, and the plugin queries it (two Gremlin round trips).

Prints, per mode: the plugin's parse time in-process (best of --repeat) and the wall time of a
whole `ansible-inventory --list` run (interpreter start-up included). Target: parse < 2 s for
1,000 hosts.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def generate(hosts, interfaces):
    nodes, edges = [], []
    for h in range(hosts):
        host = "node-%04d" % h
        hid = "h-%04d" % h
        nodes.append({"ID": hid, "Host": host, "Metadata": {
            "Name": host, "Type": "host", "Hostname": host + ".example.com", "OS": "linux",
            "Role": ("compute", "controller", "storage")[h % 3]}})
        children = [("lo", "device", {"IPV4": ["127.0.0.1/8"], "EncapType": "loopback"})]
        for i in range(max(interfaces - 1, 0)):
            children.append(("eth%d" % i, "device", {
                "IPV4": ["10.%d.%d.%d/16" % (i, h // 250, h % 250 + 1)], "MAC": "52:54:00:%02x:%02x:%02x" % (i, h // 256, h % 256),
                "MTU": 1500, "Driver": "virtio_net"}))
        children.append(("ns-%d" % h, "netns", {"Path": "/var/run/netns/ns-%d" % h}))
        for idx, (name, ctype, extra) in enumerate(children):
            cid = "%s-c%d" % (hid, idx)
            meta = dict(extra, Name=name, Type=ctype)
            if ctype == "device":
                meta.update(IfIndex=idx + 1, State="UP")
            nodes.append({"ID": cid, "Host": host, "Metadata": meta})
            edges.append({"ID": "%s-e%d" % (hid, idx), "Parent": hid, "Child": cid, "Host": host,
                          "Metadata": {"RelationType": "ownership"}})
    return nodes, edges


def install_collection_finder(tmpdir):
    """Make ansible_collections.skydive.skydive importable (this work tree)."""
    ns = os.path.join(tmpdir, "ansible_collections", "skydive")
    os.makedirs(ns)
    os.symlink(REPO, os.path.join(ns, "skydive"))
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    _AnsibleCollectionFinder(paths=[tmpdir])._install()
    return tmpdir


def time_parse(config_path, repeat):
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import inventory_loader
    best, hosts = None, 0
    for _ in range(repeat):
        plugin = inventory_loader.get("skydive.skydive.skydive")
        inventory = InventoryData()
        start = time.perf_counter()
        plugin.parse(inventory, DataLoader(), config_path, cache=False)
        elapsed = time.perf_counter() - start
        hosts = len(inventory.hosts)
        best = elapsed if best is None else min(best, elapsed)
    return best, hosts


def time_cli(config_path, collections):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections,
               ANSIBLE_INVENTORY_ENABLED="skydive.skydive.skydive", ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
    cli = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    start = time.perf_counter()
    proc = subprocess.run([cli, "-i", config_path, "--list"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("ansible-inventory failed:\n%s" % proc.stderr[-2000:])
    return elapsed, len(json.loads(proc.stdout)["_meta"]["hostvars"])


def config(path, **options):
    base = {"plugin": "skydive.skydive.skydive", "group_by": ["type", "host"]}
    base.update(options)
    with open(path, "w") as fh:
        json.dump(base, fh)  # JSON is YAML
    return path


CONSTRUCTED = {
    "compose": {"role": "skydive_metadata.Role", "nics": "skydive_interfaces | map(attribute='name') | list"},
    "keyed_groups": [{"key": "skydive_metadata.Role", "prefix": "role"}],
    "groups": {"big": "skydive_interfaces | length > 3"},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--interfaces", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--live", action="store_true", help="also against a live analyzer")
    parser.add_argument("--constructed", action="store_true", help="add compose/keyed_groups/groups")
    args = parser.parse_args()

    nodes, edges = generate(args.hosts, args.interfaces)
    extra = CONSTRUCTED if args.constructed else {}
    with tempfile.TemporaryDirectory(prefix="skydive-inv-bench-") as tmp:
        collections = install_collection_finder(os.path.join(tmp, "collections"))
        topo = os.path.join(tmp, "topology.json")
        with open(topo, "w") as fh:
            json.dump({"Nodes": nodes, "Edges": edges}, fh)
        print("topology: %d hosts, %d nodes, %d edges%s" % (
            args.hosts, len(nodes), len(edges), " (constructed options)" if args.constructed else ""))

        path = config(os.path.join(tmp, "offline.skydive.yml"), topology_file=topo, **extra)
        parse, count = time_parse(path, args.repeat)
        cli, cli_count = time_cli(path, collections)
        assert count == cli_count == args.hosts, (count, cli_count)
        print("offline  plugin parse %.3f s  (ansible-inventory --list %.3f s)  %d hosts" % (parse, cli, count))

        if args.live:
            import requests
            from tests.fixtures.processes import SkydiveProcess, analyzer_config
            workdir = os.path.join(tmp, "analyzer")
            cfg = analyzer_config(workdir)
            cfg["analyzer"]["topology"]["backend"] = "memory"
            proc = SkydiveProcess("analyzer", workdir, cfg)
            proc.start()
            try:
                session = requests.Session()
                start = time.perf_counter()
                for kind, items in (("node", nodes), ("edge", edges)):
                    for item in items:
                        resp = session.post(proc.url + "/api/" + kind, json=item, timeout=30)
                        if resp.status_code not in (200, 201):
                            raise SystemExit("POST /api/%s: %s %s" % (kind, resp.status_code, resp.text))
                print("live     populated over REST in %.1f s" % (time.perf_counter() - start))
                path = config(os.path.join(tmp, "live.skydive.yml"), analyzer=proc.address, **extra)
                parse, count = time_parse(path, args.repeat)
                cli, cli_count = time_cli(path, collections)
                assert count == cli_count == args.hosts, (count, cli_count)
                print("live     plugin parse %.3f s  (ansible-inventory --list %.3f s)  %d hosts" % (parse, cli, count))
            finally:
                proc.stop()


if __name__ == "__main__":
    main()
