import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fixtures.processes import SkydiveProcess, analyzer_config  # noqa: E402


@pytest.fixture
def analyzer_process(tmp_path):
    """A real `skydive analyzer` on a free port with its own SQLite store."""
    proc = SkydiveProcess("analyzer", tmp_path, analyzer_config(tmp_path))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (network namespaces, raw sockets)")
        for item in items:
            if "needs_root" in item.keywords:
                item.add_marker(skip)
