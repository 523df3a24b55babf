import uuid

import pytest

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    DEFAULT_ANALYZER,
    SkydiveClient,
    SkydiveError,
    edge_id,
    gremlin_quote,
    is_gremlin,
    json_pointer_escape,
    node_id,
    resolve_connection,
    split_elements,
    split_endpoint,
)


@pytest.mark.parametrize("analyzer, ssl, expected", [
    ("10.0.0.1:8082", False, ("http", "10.0.0.1:8082")),
    ("10.0.0.1:8082", True, ("https", "10.0.0.1:8082")),
    ("analyzer.example.com", False, ("http", "analyzer.example.com:8082")),
    (":9000", False, ("http", "127.0.0.1:9000")),
    ("https://a:1/", False, ("https", "a:1")),
    ("http://a:1", True, ("http", "a:1")),
    ("[::1]", False, ("http", "[::1]:8082")),
    (None, False, ("http", DEFAULT_ANALYZER)),
])
def test_split_endpoint(analyzer, ssl, expected):
    assert split_endpoint(analyzer, ssl) == expected


@pytest.mark.parametrize("analyzer, message", [
    ("ftp://a:1", "only http:// and https://"),
    ("a:1/api", "without a path"),
])
def test_split_endpoint_errors(analyzer, message):
    with pytest.raises(SkydiveError) as exc:
        split_endpoint(analyzer)
    assert message in str(exc.value)


def test_ids_match_the_original_modules():
    # skydive_node: uuid5(OID, seed or "name:type"); skydive_edge: uuid5(OID, "p:c:rel")
    assert node_id("tor1", "fabric") == str(uuid.uuid5(uuid.NAMESPACE_OID, "tor1:fabric"))
    assert node_id("tor1", "fabric", "my-seed") == str(uuid.uuid5(uuid.NAMESPACE_OID, "my-seed"))
    assert edge_id("a", "b", "layer2") == str(uuid.uuid5(uuid.NAMESPACE_OID, "a:b:layer2"))
    assert node_id("tor1", "fabric") != node_id("tor1", "switch")


def test_gremlin_helpers():
    assert gremlin_quote("eth0") == "'eth0'"
    assert gremlin_quote("it's") == '"it\'s"'
    with pytest.raises(SkydiveError):
        gremlin_quote("'\"")
    assert is_gremlin("G.V()") and is_gremlin(" g.E()") and not is_gremlin("4a3c-uuid") and not is_gremlin("G")
    assert json_pointer_escape("a/b~c") == "a~1b~0c"


def test_resolve_connection_precedence():
    env = {"SKYDIVE_ANALYZER": "env:1", "SKYDIVE_ENDPOINT": "old-env:1", "SKYDIVE_USERNAME": "envuser",
           "SKYDIVE_PASSWORD": "envpass", "SKYDIVE_SSL": "yes", "SKYDIVE_TIMEOUT": "7"}
    # environment only
    got = resolve_connection({}, None, env)
    assert got == dict(analyzer="env:1", ssl=True, validate_certs=True, ca_path=None, username="envuser",
                       password="envpass", timeout=7)
    # provider beats environment, flat beats provider
    got = resolve_connection({"username": "flat"}, {"endpoint": "prov:1", "username": "prov", "ssl": False}, env)
    assert (got["analyzer"], got["username"], got["ssl"], got["password"]) == ("prov:1", "flat", False, "envpass")
    # SKYDIVE_ENDPOINT (old collection) when SKYDIVE_ANALYZER is not set; defaults otherwise
    assert resolve_connection({}, None, {"SKYDIVE_ENDPOINT": "old:2"})["analyzer"] == "old:2"
    got = resolve_connection({}, None, {})
    assert (got["analyzer"], got["ssl"], got["validate_certs"], got["timeout"]) == (DEFAULT_ANALYZER, False, True, 30)


def test_resolve_connection_insecure():
    assert resolve_connection({"insecure": True}, None, {})["validate_certs"] is False
    assert resolve_connection({}, {"insecure": True}, {})["validate_certs"] is False
    assert resolve_connection({}, None, {"SKYDIVE_INSECURE": "true"})["validate_certs"] is False
    assert resolve_connection({"validate_certs": False, "insecure": True}, None, {})["validate_certs"] is False
    # the flat option beats the provider's inverse setting
    assert resolve_connection({"validate_certs": True}, {"insecure": True}, {})["validate_certs"] is True
    for flat in ({"validate_certs": True, "insecure": True}, {"validate_certs": False, "insecure": False}):
        with pytest.raises(SkydiveError) as exc:
            resolve_connection(flat, None, {})
        assert "contradict" in str(exc.value)


@pytest.mark.parametrize("env, message", [
    ({"SKYDIVE_TIMEOUT": "soon"}, "SKYDIVE_TIMEOUT='soon' is not a valid integer"),
    ({"SKYDIVE_TIMEOUT": "0"}, "timeout must be a positive number"),
])
def test_resolve_connection_errors(env, message):
    with pytest.raises(SkydiveError) as exc:
        resolve_connection({}, None, env)
    assert message in str(exc.value)


NODE = {"ID": "n1", "Metadata": {"Name": "a", "Type": "host"}, "Host": "h"}
NODE2 = {"ID": "n2", "Metadata": {"Name": "b", "Type": "device"}, "Host": "h"}
EDGE = {"ID": "e1", "Parent": "n1", "Child": "n2", "Metadata": {"RelationType": "ownership"}}


@pytest.mark.parametrize("result, nodes, edges", [
    ([NODE, NODE2, NODE], ["n1", "n2"], []),
    ([EDGE], [], ["e1"]),
    ([{"Nodes": [NODE, NODE2], "Edges": [EDGE]}], ["n1", "n2"], ["e1"]),
    ({"Nodes": None, "Edges": None}, [], []),
    (5, [], []),
    (None, [], []),
    (["a", "b"], [], []),
])
def test_split_elements(result, nodes, edges):
    got_nodes, got_edges = split_elements(result)
    assert [n["ID"] for n in got_nodes] == nodes and [e["ID"] for e in got_edges] == edges


def test_client_unreachable_message():
    # port 1 on localhost: nothing listens there
    client = SkydiveClient("127.0.0.1:1", timeout=2)
    with pytest.raises(SkydiveError) as exc:
        client.query("G.V()")
    assert "cannot reach the Skydive analyzer at 127.0.0.1:1" in str(exc.value)
    with pytest.raises(SkydiveError):
        client.query("  ")


def test_client_timeout_message():
    # a listening socket that never answers: the connection is accepted by the kernel, the
    # request is never answered
    import socket
    server = socket.socket()
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        client = SkydiveClient("127.0.0.1:%d" % port, timeout=1)
        with pytest.raises(SkydiveError) as exc:
            client.status()
        assert "did not answer GET http://127.0.0.1:%d/api/status within 1 s (timeout)" % port in str(exc.value)
    finally:
        server.close()
