"""The backends the shared storage tests run against: the embedded SQLite store and ClickHouse.

A test taking `store` (or `make_store`, to open the same store again or with settings) runs once
per backend; ClickHouse runs once per test module (a fresh database per test).
"""

import uuid

import pytest

from skydive_runtime.storage import open_store
from tests.fixtures.servers import clickhouse_server

BACKENDS = ("sqlite", "clickhouse")


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory):
    with clickhouse_server(tmp_path_factory.mktemp("clickhouse")) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def make_store(request, tmp_path):
    """make_store(**settings) opens the test's store (the same file or database each call)."""
    opened = []
    if request.param == "clickhouse":
        server = request.getfixturevalue("clickhouse")
        database = "t_" + uuid.uuid4().hex[:12]
        base = server.settings(database, flush_interval=20)
    else:
        server, database = None, None
        base = {"driver": "sqlite", "path": str(tmp_path / "skydive.db")}

    def factory(**settings):
        s = open_store(dict(base, **settings), name=request.param)
        opened.append(s)
        return s
    factory.backend = request.param
    yield factory
    for s in opened:
        s.close()
    if server is not None:
        server.query("DROP DATABASE IF EXISTS %s" % database)


@pytest.fixture
def store(make_store):
    return make_store()
