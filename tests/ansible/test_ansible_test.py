"""`ansible-test sanity` and `ansible-test units` on the collection as it ships, through
tests/ansible/run-ansible-test.sh (select with `-m ansible_test`; the first run on a machine
fetches the pinned sanity tools from PyPI, later ones are offline)."""

import glob
import os

import pytest

from tests.ansible.conftest import run_command

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "run-ansible-test.sh")

pytestmark = pytest.mark.ansible_test


def run(what, *targets):
    proc = run_command(["bash", SCRIPT, what] + list(targets), 1500, cwd=REPO)
    output = proc.stdout + proc.stderr
    return proc.returncode, output


def test_no_sanity_ignore_entries():
    for path in glob.glob(os.path.join(REPO, "tests", "sanity", "ignore-*.txt")):
        with open(path) as fh:
            entries = [line for line in fh if line.strip() and not line.startswith("#")]
        assert entries == [], "%s has ignore entries: %s" % (path, entries)


def test_sanity():
    """Every sanity test over everything that ships: plugins, roles, playbooks, the runtime
    (skydive_runtime/), tripleo/, docs, meta, changelogs, tests/unit."""
    rc, output = run("sanity")
    errors = [line for line in output.splitlines() if line.startswith(("ERROR:", "FATAL:"))]
    assert rc == 0 and not errors, "\n".join(errors) or output[-5000:]
    assert 'Running sanity test "validate-modules"' in output
    assert 'Running sanity test "pylint"' in output


def test_units():
    rc, output = run("units")
    assert rc == 0, output[-5000:]
    assert " passed" in output and " failed" not in output
