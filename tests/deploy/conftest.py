import pytest

from tests.deploy.simnodes import SimCluster, requirements_missing, runtime_missing


@pytest.fixture(scope="session")
def sim_cluster():
    """Three simulated nodes (controller, compute1, compute2) reachable over SSH."""
    reason = requirements_missing() or runtime_missing()
    if reason:
        pytest.skip(reason)
    cluster = SimCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
