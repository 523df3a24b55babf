"""analyzer.topology.fabric definitions (analyzer/fabric_probe.py): what they parse to, and the
configuration error each malformed one gets."""

import pytest

from skydive_runtime.analyzer.fabric_probe import parse_link
from skydive_runtime.config import ConfigError


def test_parsed_definitions():
    link = parse_link('TOR1[Name=tor1] -> [color=red, "width"="2"] PORT1[Name=p1, MTU=1500]')
    assert link.parent == ("TOR1", {"Name": "tor1"}) and link.child == ("PORT1", {"Name": "p1", "MTU": "1500"})
    assert link.metadata == {"Type": "fabric", "color": "red", "width": "2"} and not link.layer2_only
    link = parse_link("A --> B")
    assert link.layer2_only and link.parent == ("A", {"Name": "A"}) and link.child == ("B", {"Name": "B"})
    link = parse_link("PORT --> *[Type=host]/eth0")
    assert link.wildcard == ({"Type": "host"}, {"Name": "eth0"}) and link.child is None


@pytest.mark.parametrize("text, message", [
    ("TOR1", "a link definition has two ends"),
    ("TOR1 -> ", "a link definition has two ends"),
    ("A -> B -> C", "a link definition has two ends"),
    ("A -> [color=red]", "a link definition has two ends"),
    ("A -> [color=red B", "unterminated link attributes"),
    ("*[Type=host]/eth0 -> A", "a wildcard node cannot be the parent of a link"),
    ("A -> *[Type=host]", "a wildcard end is *[parent attributes]/child"),
    ("A[Name] -> B", "attributes must be key=value pairs"),
    ("A[Name=x -> B", "cannot parse the node definition"),
    ("A[x=1][y=2] -> B", "cannot parse the node definition"),
    (42, "expected link definitions (strings)"),
])
def test_malformed_definitions(text, message):
    with pytest.raises(ConfigError) as err:
        parse_link(text)
    assert str(err.value).startswith("analyzer.topology.fabric: ") and message in str(err.value)
