"""What `ansible-galaxy collection build` ships (galaxy.yml build_ignore) and the metadata."""

import json
import os
import subprocess
import sys
import tarfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GALAXY = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
MODULES = ["skydive_alert", "skydive_audit", "skydive_capture", "skydive_edge", "skydive_edge_rule", "skydive_injection",
           "skydive_node", "skydive_node_rule", "skydive_query", "skydive_topology_diff"]


def test_artifact_contents(tmp_path):
    proc = subprocess.run([GALAXY, "collection", "build", REPO, "--output-path", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(str(tmp_path / "skydive-skydive-1.0.0.tar.gz")) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    tops = set(n.split("/")[0] for n in names)
    # the roles build the runtime wheel from skydive_runtime/ + pyproject.toml of the installed
    # collection (tests/ansible/test_collection_artifact.py), and tripleo/ drives the roles
    for shipped in ("meta", "plugins", "roles", "playbooks", "changelogs", "docs", "tests", "skydive_runtime",
                    "pyproject.toml", "tripleo"):
        assert shipped in tops, shipped
    for left_out in (".venv", ".git", "benchmarks", "scripts", ".ci", "Makefile", "skydive_runtime.egg-info",
                     "build", "dist"):
        assert left_out not in tops, left_out
    assert set(n.split("/")[1] for n in names if n.startswith("tests/")) <= {"unit", "sanity"}
    for module in MODULES:
        assert "plugins/modules/%s.py" % module in names
    for plugin in ("plugins/lookup/skydive.py", "plugins/inventory/skydive.py", "plugins/doc_fragments/skydive.py",
                   "plugins/module_utils/skydive_api.py", "plugins/module_utils/skydive_module.py"):
        assert plugin in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("skydive", "skydive", "1.0.0")


def test_action_group_lists_every_module():
    with open(os.path.join(REPO, "meta", "runtime.yml")) as fh:
        runtime = yaml.safe_load(fh)
    assert sorted(runtime["action_groups"]["skydive"]) == MODULES
    on_disk = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py"))
    assert on_disk == MODULES
