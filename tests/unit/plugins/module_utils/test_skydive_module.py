import pytest

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import (
    apply_patch,
    differing_fields,
    metadata_patch,
    strict_equal,
    strip_volatile,
    values_equal,
)


@pytest.mark.parametrize("current, wanted, equal", [
    (None, "", True),            # the analyzer omits empty fields
    (None, 0, True),
    (None, False, True),
    ("", None, True),
    (10, 10.0, True),
    ("L2", "L3", False),
    (True, 1, False),            # a bool is not a number
    (False, 0, True),            # both empty: the analyzer would omit either
    ({"a": 1, "b": ""}, {"a": 1}, True),
    ({"a": 1}, {"a": 2}, False),
    ([1, 2], [1, 2], True),
    ([1, 2], [2, 1], False),
])
def test_values_equal(current, wanted, equal):
    assert values_equal(current, wanted) is equal


def test_differing_fields():
    current = {"UUID": "x", "GremlinQuery": "G.V()", "BPFFilter": "icmp", "SamplingRate": 1, "Count": 3}
    wanted = {"GremlinQuery": "G.V()", "BPFFilter": "tcp", "SamplingRate": 1, "Port": 0}
    assert differing_fields(current, wanted) == ["BPFFilter"]
    assert differing_fields(None, {"Name": "a"}) == ["Name"]


@pytest.mark.parametrize("current, wanted, equal", [
    (1, 1.0, True),
    (True, 1, False),
    ("", None, False),
    ({"a": [1, {"b": True}]}, {"a": [1, {"b": True}]}, True),
    ({"a": 1}, {"a": 1, "b": None}, False),
    ("1", 1, False),
])
def test_strict_equal(current, wanted, equal):
    assert strict_equal(current, wanted) is equal


def test_metadata_patch_merge_and_purge():
    current = {"Name": "tor1", "Type": "switch", "TID": "t", "Rack": "r1", "Model": "X", "a/b": 1}
    wanted = {"Name": "tor1", "Type": "switch", "Rack": "r2", "Units": 2, "Model": "X"}
    ops = metadata_patch(current, wanted, purge=False)
    assert ops == [{"op": "add", "path": "/Metadata/Rack", "value": "r2"},
                   {"op": "add", "path": "/Metadata/Units", "value": 2}]
    ops = metadata_patch(current, wanted, purge=True)
    assert ops[-1] == {"op": "remove", "path": "/Metadata/a~1b"}
    assert apply_patch(current, ops) == {"Name": "tor1", "Type": "switch", "TID": "t", "Rack": "r2",
                                         "Model": "X", "Units": 2}
    assert metadata_patch(apply_patch(current, ops), wanted, purge=True) == []
    # protected keys are never patched
    assert metadata_patch({"RelationType": "layer2"}, {"RelationType": "x"}, False, protected=("RelationType",)) == []


def test_strip_volatile():
    assert strip_volatile({"UUID": 1, "Count": 2, "Name": "a"}, ("UUID", "Count")) == {"Name": "a"}
    assert strip_volatile(None) == {}
