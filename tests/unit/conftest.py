"""These unit tests import the collection as ``ansible_collections.skydive.skydive``; they run
under ``ansible-test units`` (tests/ansible/run-ansible-test.sh), which provides that package.
A plain ``pytest`` run from the work tree, where it does not exist, leaves them out."""

import os

_HERE = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))

if os.sep + os.path.join("ansible_collections", "skydive", "skydive", "tests") + os.sep not in _HERE + os.sep:
    collect_ignore_glob = ["*"]
