#!/usr/bin/env python3
"""Deployment benchmarks (the roles and playbooks of this collection, for real):

  allinone_deploy_s   all-in-one deploy (analyzer + agent on this machine, local connection)
                      from nothing, with packages cached (a warm-up deploy + uninstall first,
                      so the controller's wheel cache and pip's cache are filled)
  allinone_rerun_s    the same playbook again, nothing to change (asserts changed=0)
  threenode_deploy_s  deploy.yml over SSH on three simulated nodes (netns + sshd), wheelhouse
                      install, with the controller cache warm
  threenode_rerun_s   the unchanged re-run on the three nodes

The all-in-one runs under a private directory with its own ports (18082/18081) and is
removed afterwards. Needs root. Usage: deploy_bench.py [--skip-threenode] [--json FILE]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.deploy.simnodes import ANSIBLE_PLAYBOOK, SimCluster, requirements_missing  # noqa: E402

DEPLOY = os.path.join(REPO, "playbooks", "deploy.yml")
UNINSTALL = os.path.join(REPO, "playbooks", "uninstall.yml")


def _run(inventory, playbook, env=None):
    t0 = time.monotonic()
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, playbook], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=REPO,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", **(env or {})))
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit("%s failed (rc %d)" % (os.path.basename(playbook), proc.returncode))
    changed = sum(int(x.split("=")[1]) for line in proc.stdout.splitlines() if " : ok=" in line
                  for x in line.split() if x.startswith("changed="))
    return elapsed, changed


def bench_allinone():
    base = tempfile.mkdtemp(prefix="skd-bench-", dir="/tmp")
    os.chmod(base, 0o755)
    src = os.path.join(base, "src")
    os.makedirs(src)
    shutil.copy(os.path.join(REPO, "pyproject.toml"), src)
    shutil.copytree(os.path.join(REPO, "skydive_runtime"), os.path.join(src, "skydive_runtime"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    inv = os.path.join(base, "inventory.yml")
    import yaml
    with open(inv, "w") as fh:
        yaml.safe_dump({"all": {"children": {"analyzers": {"hosts": {"benchnode": None}},
                                             "agents": {"hosts": {"benchnode": None}}},
                                "vars": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": sys.executable,
                                    "skydive_listen_ip": "127.0.0.1",
                                    "skydive_analyzer_port": 18082, "skydive_agent_port": 18081,
                                    "skydive_config_dir": base + "/etc/skydive",
                                    "skydive_install_dir": base + "/opt/skydive",
                                    "skydive_data_dir": base + "/var/lib/skydive",
                                    "skydive_systemd_root": base,
                                    "skydive_cli_link": "", "skydive_sys_username": "root",
                                    "skydive_source_dir": src,
                                    "skydive_extra_config": {"agent.topology.netns.run_path": base + "/netns"},
                                }}}, fh)
    os.makedirs(base + "/netns")
    try:
        _run(inv, DEPLOY)            # warm-up: fills the wheel cache and pip's cache
        _run(inv, UNINSTALL)
        deploy, _ = _run(inv, DEPLOY)
        rerun, changed = _run(inv, DEPLOY)
        assert changed == 0, "unchanged re-run reported %d changes" % changed
        return {"allinone_deploy_s": round(deploy, 1), "allinone_rerun_s": round(rerun, 1)}
    finally:
        try:
            _run(inv, UNINSTALL)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def bench_threenode():
    cluster = SimCluster().start()
    try:
        inv = cluster.write_inventory()
        t0 = time.monotonic()
        res = cluster.playbook(DEPLOY, inventory=inv)
        deploy = time.monotonic() - t0
        assert res.rc == 0, res.tail()
        t0 = time.monotonic()
        res = cluster.playbook(DEPLOY, inventory=inv)
        rerun = time.monotonic() - t0
        assert res.rc == 0 and not any(res.changed().values()), res.changed_tasks()
        return {"threenode_deploy_s": round(deploy, 1), "threenode_rerun_s": round(rerun, 1)}
    finally:
        cluster.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-threenode", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    reason = requirements_missing()
    if reason:
        raise SystemExit("cannot run: %s" % reason)
    with open("/proc/loadavg") as fh:
        load_before = fh.read().split()[0]
    figures = bench_allinone()
    if not args.skip_threenode:
        figures.update(bench_threenode())
    with open("/proc/loadavg") as fh:
        figures["loadavg_1m_before_after"] = [float(load_before), float(fh.read().split()[0])]
    for k, v in figures.items():
        print("%-24s %s" % (k, v))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
