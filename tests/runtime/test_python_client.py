"""The upstream Python client (PyPI skydive-client) against a real Analyzer on a TCP port.

Mirrors contrib/python/api/tests/tests.py (spec §10.5) plus node/edge CRUD and a subscriber.
"""

import asyncio
import json
import time

import pytest

from skydive.rest.client import BadRequest, RESTClient
from skydive.websocket.client import (EdgeAddedMsgType, NodeAddedMsgType, SyncReplyMsgType, SyncRequestMsg,
                                      SyncRequestMsgType, WSClient, WSClientDefaultProtocol, WSMessage)
from skydive.graph import Edge, Node

from tests.fixtures.processes import wait_until
from tests.runtime.test_api_support import AnalyzerThread, analyzer_config

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def analyzer(tmp_path):
    a = AnalyzerThread(analyzer_config(tmp_path)).start()
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture
def auth_analyzer(tmp_path):
    cfg = analyzer_config(tmp_path, analyzer={"auth": {"api": {"backend": "basic"}}},
                          auth={"basic": {"type": "basic", "users": {"admin": "pass"}}})
    a = AnalyzerThread(cfg).start()
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        lp.close()
        asyncio.set_event_loop(None)


class PublisherProtocol(WSClientDefaultProtocol):
    """test_injection's publisher: good and bad nodes/edges, then stop."""

    def onOpen(self):
        tor = Node("TOR_TEST", "", metadata={"Name": "Test TOR", "Type": "fabric"})
        port = Node("PORT_TEST", "", metadata={"Name": "Test port", "Type": "fabric"})
        bad_node = Node("BAD_NODE", "", metadata={"Name": "Bad node"})
        bad_netns = Node("BAD_NETNS", "", metadata={"Name": "Bad netns", "Type": "netns"})
        link = Edge("TOR_L2LINK", "", "TOR_TEST", "PORT_TEST", metadata={"RelationType": "layer2"})
        bad_link = Edge("BAD_LINK", "", "", "", metadata={"RelationType": "layer2"})
        for n in (tor, port, bad_node, bad_netns):
            self.sendWSMessage(WSMessage("Graph", NodeAddedMsgType, n))
        for e in (link, bad_link):
            self.sendWSMessage(WSMessage("Graph", EdgeAddedMsgType, e))
        self.stop_when_complete()


def test_connection(analyzer, loop):
    opened = []

    class Proto(WSClientDefaultProtocol):
        def onOpen(self):
            opened.append(True)
            self.stop_when_complete()

    client = WSClient("host-test", "ws://%s/ws/publisher" % analyzer.address, protocol=Proto)
    client.connect()
    client.start()
    assert opened == [True]


def test_connection_with_auth(auth_analyzer, loop):
    client = WSClient("host-test", "ws://%s/ws/publisher" % auth_analyzer.address,
                      protocol=WSClientDefaultProtocol, username="admin", password="pass")
    assert client.login("%s" % auth_analyzer.address, "admin", "toto") is False
    assert client.login("%s" % auth_analyzer.address, "admin", "pass") is True
    opened = []

    class Proto(WSClientDefaultProtocol):
        def onOpen(self):
            opened.append(True)
            self.stop_when_complete()

    client = WSClient("host-test2", "ws://%s/ws/publisher" % auth_analyzer.address, protocol=Proto,
                      username="admin", password="pass")
    client.connect()
    client.start()
    assert opened == [True]
    rest = RESTClient(auth_analyzer.address, username="admin", password="pass")
    assert rest.node_list() == []
    bad = RESTClient(auth_analyzer.address, username="admin", password="wrong")
    with pytest.raises(Exception):
        bad.node_list()


def test_injection(analyzer, loop):
    client = WSClient("host-test", "ws://%s/ws/publisher" % analyzer.address, protocol=PublisherProtocol)
    client.connect()
    client.start()
    rest = RESTClient(analyzer.address)
    wait_until(lambda: len(rest.lookup_edges("G.E().Has('RelationType', 'layer2')")) == 1, timeout=5)
    assert len(rest.lookup_nodes("G.V().Has('Name', 'Test port')")) == 1
    assert len(rest.lookup_nodes("G.V().Has('Name', 'Bad netns')")) == 0
    assert len(rest.lookup_nodes("G.V().Has('Name', 'Bad node')")) == 0
    assert len(rest.lookup_edges("G.E().Has('RelationType', 'layer2')")) == 1
    tor = rest.lookup_nodes("G.V().Has('Name', 'Test TOR')")[0]
    assert tor.id == "TOR_TEST"
    # origin forced to <X-Client-Type>.<X-Host-ID>
    raw = rest.lookup("G.V().Has('Name', 'Test TOR')")
    assert raw[0]["Origin"] == "skydive-python-client.host-test"
    assert rest.lookup("G.V().Count()") == 2


def test_capture(analyzer):
    rest = RESTClient(analyzer.address)
    capture = rest.capture_create("G.V().Has('Name', 'test', 'Type', 'netns')")
    captures = rest.capture_list()
    assert capture.uuid in [c.uuid for c in captures]
    assert capture.layer_key_mode == "L2"
    with pytest.raises(BadRequest):     # same query and type: 409
        rest.capture_create("G.V().Has('Name', 'test', 'Type', 'netns')")
    rest.capture_delete(capture.uuid)
    assert capture.uuid not in [c.uuid for c in rest.capture_list()]


def test_alert(analyzer):
    rest = RESTClient(analyzer.address)
    alert = rest.alert_create("https://localhost:8081",
                              "G.V().Has('Name', 'alert-ns-webhook', 'Type', 'netns')")
    assert alert.uuid in [a.uuid for a in rest.alert_list()]
    # upstream Alert.from_object swaps Expression and Trigger
    assert alert.expression == "graph"
    rest.alert_delete(alert.uuid)
    assert alert.uuid not in [a.uuid for a in rest.alert_list()]


def test_topology_rules(analyzer):
    rest = RESTClient(analyzer.address)
    noderule1 = rest.noderule_create("create", metadata={"Name": "node1", "Type": "fabric"})
    noderule2 = rest.noderule_create("create", metadata={"Name": "node2", "Type": "fabric"})
    time.sleep(1)
    edgerule = rest.edgerule_create("G.V().Has('Name', 'node1')", "G.V().Has('Name', 'node2')",
                                    {"RelationType": "layer2", "EdgeName": "my_edge"})
    time.sleep(1)
    assert len(rest.lookup_nodes("G.V().Has('Name', 'node1')")) == 1
    assert len(rest.lookup_nodes("G.V().Has('Name', 'node2')")) == 1
    assert len(rest.lookup_edges("G.E().Has('RelationType', 'layer2', 'EdgeName', 'my_edge')")) == 1
    assert noderule1.uuid in [r.uuid for r in rest.noderule_list()]
    assert edgerule.uuid in [r.uuid for r in rest.edgerule_list()]
    rest.edgerule_delete(edgerule.uuid)
    rest.noderule_delete(noderule1.uuid)
    rest.noderule_delete(noderule2.uuid)
    assert rest.lookup_edges("G.E().Has('EdgeName', 'my_edge')") == []
    assert rest.lookup_nodes("G.V().Has('Name', Within('node1', 'node2'))") == []
    assert rest.noderule_list() == [] and rest.edgerule_list() == []


def test_nodes_and_edges(analyzer):
    rest = RESTClient(analyzer.address)
    n1 = rest.node_create("py-n1", "h", {"Name": "n1", "Type": "fabric"})
    n2 = rest.node_create("py-n2", "h", {"Name": "n2", "Type": "fabric"})
    assert n1.id == "py-n1" and n1.revision == 1
    e = rest.edge_create("py-n1", "py-n2", edge_id="py-e1", host="h", metadata={"RelationType": "layer2"})
    assert e.parent == "py-n1" and e.child == "py-n2"
    assert {n.id for n in rest.node_list()} == {"py-n1", "py-n2"}
    assert [x.id for x in rest.edge_list()] == ["py-e1"]
    upd = rest.node_update("py-n1", [{"op": "add", "path": "/Metadata/Color", "value": "red"}])
    assert upd.metadata["Color"] == "red" and upd.revision == 2
    with pytest.raises(BadRequest):     # nothing changes: 304 -> BadRequest in the Python client
        rest.node_update("py-n1", [{"op": "add", "path": "/Metadata/Color", "value": "red"}])
    # Name/Type changes are silently ignored -> not modified
    with pytest.raises(BadRequest):
        rest.node_update("py-n1", [{"op": "replace", "path": "/Metadata/Name", "value": "other"}])
    e2 = rest.edge_update("py-e1", [{"op": "add", "path": "/Metadata/Speed", "value": 10}])
    assert e2.metadata["Speed"] == 10
    with pytest.raises(BadRequest):     # schema: Type is required
        rest.node_create("py-bad", "h", {"Name": "x"})
    assert rest.node_delete("py-n1") == b""
    assert rest.edge_list() == []      # the node's edges went with it
    assert [n.id for n in rest.node_list()] == ["py-n2"]
    rest.edge_create("py-n2", "py-n2", edge_id="py-loop", metadata={"RelationType": "ownership"})
    rest.edge_delete("py-loop")        # the client returns None for edges
    assert rest.edge_list() == []


def test_subscriber_sync_and_live_events(analyzer, loop):
    rest = RESTClient(analyzer.address)
    rest.node_create("sub-n0", "h", {"Name": "before", "Type": "fabric"})
    received = []

    class Proto(WSClientDefaultProtocol):
        def onOpen(self):
            self.sendWSMessage(WSMessage("Graph", SyncRequestMsgType, SyncRequestMsg("")))

        def onMessage(self, payload, isBinary):
            msg = json.loads(payload.decode())
            received.append(msg)
            if msg["Type"] == SyncReplyMsgType:
                # a change made through REST must arrive as a live event
                loop.run_in_executor(None, rest.node_create, "sub-n1", "h", {"Name": "live", "Type": "fabric"})
            elif msg["Type"] == NodeAddedMsgType and msg["Obj"]["ID"] == "sub-n1":
                self.stop_when_complete()

    client = WSClient("sub-test", "ws://%s/ws/subscriber" % analyzer.address, protocol=Proto)
    client.connect()
    loop.call_later(10, loop.stop)
    client.start()
    types = [m["Type"] for m in received]
    assert types[0] == "SyncReply"
    assert received[0]["Status"] == 200
    assert [n["ID"] for n in received[0]["Obj"]["Nodes"]] == ["sub-n0"]
    assert "NodeAdded" in types
    added = [m for m in received if m["Type"] == "NodeAdded"][0]
    assert added["Namespace"] == "Graph" and added["Obj"]["Metadata"]["Name"] == "live"
