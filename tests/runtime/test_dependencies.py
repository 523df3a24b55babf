"""The runtime's declared dependencies (pyproject.toml) are exactly the third-party modules its
code imports: none missing (a fresh install would fail at import time), none unused (every node
the roles deploy would install it for nothing)."""

import ast
import os
import re
import sys

import pytest

tomllib = pytest.importorskip("tomllib")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE_OF = {"pyyaml": "yaml"}   # distribution name -> top-level module, where they differ


def declared():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    names = (re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].strip().lower() for d in deps)
    return {MODULE_OF.get(n, n) for n in names}


def imported():
    found = set()
    for root, _dirs, files in os.walk(os.path.join(REPO, "skydive_runtime")):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(root, name), encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"skydive_runtime", "__future__"}


def test_declared_dependencies_are_the_imported_ones():
    assert declared() == imported()
