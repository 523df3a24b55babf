"""Configuration: files merged in order, environment overrides, errors naming the key."""

import pytest

from skydive_runtime.config import Config, ConfigError, parse_listen


def test_files_merge_in_order(tmp_path):
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text("analyzer:\n  listen: 0.0.0.0:9000\nflow:\n  update: 5\n")
    b.write_text("flow:\n  update: 7\n")
    c = Config.load([str(a), str(b)], env={})
    assert c.get("analyzer.listen") == "0.0.0.0:9000"
    assert c.get_int("flow.update") == 7
    assert c.get_int("flow.expire") == 600, "defaults survive a partial section"


def test_env_overrides_are_typed():
    c = Config.load([], env={"SKYDIVE_ANALYZERS": "10.0.0.1:8082, 10.0.0.2:8082", "SKYDIVE_FLOW_EXPIRE": "30",
                             "SKYDIVE_OVS_ENABLE_STATS": "true"})
    assert c.get("analyzers") == ["10.0.0.1:8082", "10.0.0.2:8082"]
    assert c.get("flow.expire") == 30 and c.get("ovs.enable_stats") is True


@pytest.mark.parametrize("content,needle", [
    ("flow:\n  update: 0\n", "flow.update"),
    ("analyzer:\n  listen: nowhere\n", "analyzer.listen"),
    ("flow:\n  expire: soon\n", "flow.expire"),
    ("analyzers: [1.2.3.4:99999]\n", "analyzers"),
    ("- a\n- b\n", "map at the top level"),
    ("a: [\n", "not valid YAML"),
])
def test_bad_values_name_the_key(tmp_path, content, needle):
    f = tmp_path / "bad.yml"
    f.write_text(content)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        Config.load([str(f)], env={})


def test_env_error_names_variable():
    with pytest.raises(ConfigError, match="SKYDIVE_FLOW_UPDATE"):
        Config.load([], env={"SKYDIVE_FLOW_UPDATE": "often"})


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        Config.load([str(tmp_path / "nope.yml")], env={})


def test_listen_forms():
    assert parse_listen("8082") == ("127.0.0.1", 8082)
    assert parse_listen(":8082") == ("127.0.0.1", 8082)
    assert parse_listen("0.0.0.0:1") == ("0.0.0.0", 1)
    assert parse_listen("[::1]:80") == ("::1", 80)


def test_deprecated_keys_relocated(tmp_path):
    f = tmp_path / "old.yml"
    f.write_text("graph:\n  backend: memory\n")
    assert Config.load([str(f)], env={}).get("analyzer.topology.backend") == "memory"


def test_storage_section():
    c = Config.load([], env={})
    name, section = c.storage_section("analyzer.topology.backend")
    assert name == "sqlite" and section["driver"] == "sqlite"
    c.set("analyzer.topology.backend", "es")
    with pytest.raises(ConfigError, match="storage.es"):
        c.storage_section("analyzer.topology.backend")
