import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.fixtures.processes import SkydiveProcess, analyzer_config  # noqa: E402
from tests.fixtures.topology import NetEnv  # noqa: E402


@pytest.fixture
def analyzer_process(tmp_path):
    """A real `skydive analyzer` on a free port with its own SQLite store."""
    proc = SkydiveProcess("analyzer", tmp_path, analyzer_config(tmp_path))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def net():
    """Namespaces, links and bridges made through it are removed after the test, even on failure."""
    env = NetEnv()
    try:
        yield env
    finally:
        env.cleanup()


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (network namespaces, raw sockets)")
        for item in items:
            if "needs_root" in item.keywords:
                item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) every component is installed by scripts/bootstrap: a skip there means
    something is missing, and it must fail the run instead of passing silently."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = "skipped in CI, where every dependency must be present: %s" % reason
