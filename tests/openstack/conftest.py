"""A real Keystone and a real Neutron (ML2/OVN) per test run (tests/fixtures/openstack.py), started
only when a test asks for them, stopped at the end of the run even on failure."""

import os

import pytest

from tests.fixtures.openstack import Keystone, Neutron


@pytest.fixture(scope="session")
def keystone(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root (Keystone keys owned by root)")
    if not Keystone.available():
        pytest.skip("Keystone is not installed (apt: keystone, uwsgi-plugin-python3)")
    ks = Keystone(str(tmp_path_factory.mktemp("keystone"))).start()
    try:
        yield ks
    finally:
        ks.stop()


@pytest.fixture(scope="session")
def neutron(keystone, ovn, tmp_path_factory):
    """neutron-server (ML2/OVN) on the run's OVN NB/SB (tests/conftest.py `ovn`) and Keystone."""
    if not Neutron.available():
        pytest.skip("Neutron is not installed (apt: neutron-server, python3-psycopg2, postgresql-15)")
    server = Neutron(keystone, ovn, str(tmp_path_factory.mktemp("neutron"))).start()
    try:
        yield server
    finally:
        server.stop()
