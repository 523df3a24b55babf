"""Integration tests of the skydive.skydive modules: real `ansible-playbook` runs on localhost
against a live analyzer subprocess, each checked both through the task results and by reading
the analyzer back over REST. What every state module does alike (check mode, idempotence, diff,
absent) is test_module_contract.py; here is what is particular to each (drift, bad input, waits)."""

import pytest
import requests


pytestmark = [pytest.mark.ansible]


def api(analyzer, method, path, **kwargs):
    resp = requests.request(method, analyzer.url + path, timeout=10, **kwargs)
    return resp


def api_list(analyzer, resource):
    resp = api(analyzer, "GET", "/api/%s" % resource)
    assert resp.status_code == 200, resp.text
    return resp.json()


def post_node(analyzer, ident, name, node_type, host="", **metadata):
    metadata.update(Name=name, Type=node_type)
    resp = api(analyzer, "POST", "/api/node", json={"ID": ident, "Metadata": metadata, "Host": host})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def defaults(analyzer):
    return {"group/skydive.skydive.skydive": {"analyzer": analyzer.address}}


def ok(result):
    assert not result.get("failed"), result.get("msg") or result
    return result


# ---------------------------------------------------------------------------------------------

def test_node_lifecycle(analyzer, runner):
    node = {"name": "tor-lifecycle", "node_type": "switch", "metadata": {"Model": "QFX", "Rack": "r1"}}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_node": node},
        {"name": "check_drift", "skydive.skydive.skydive_node": dict(node, metadata={"Rack": "r2"}),
         "check_mode": True, "diff": True},
        {"name": "read_after_check", "skydive.skydive.skydive_query": {
            "query": "G.V().Has('Name', 'tor-lifecycle')"}},
        {"name": "drift", "skydive.skydive.skydive_node": dict(node, metadata={"Rack": "r2", "Units": 2}),
         "diff": True},
        {"name": "drift_again", "skydive.skydive.skydive_node": dict(node, metadata={"Rack": "r2", "Units": 2})},
        {"name": "purge", "skydive.skydive.skydive_node": dict(node, metadata={"Rack": "r2"}, purge_metadata=True)},
        {"name": "update_missing", "skydive.skydive.skydive_node": {
            "name": "nope", "node_type": "switch", "state": "update", "metadata": {"A": 1}}},
        {"name": "delete", "skydive.skydive.skydive_node": dict(node, state="absent")},
    ], module_defaults=defaults(analyzer))

    create = ok(run["create"])
    assert create["changed"] is True
    ident = create["id"]
    # upstream deterministic ID: uuid5(NAMESPACE_OID, "<name>:<type>")
    import uuid
    assert ident == str(uuid.uuid5(uuid.NAMESPACE_OID, "tor-lifecycle:switch")) == create["UUID"]
    assert create["node"]["Metadata"] == {"Name": "tor-lifecycle", "Type": "switch", "Model": "QFX", "Rack": "r1"}

    check = ok(run["check_drift"])
    assert check["changed"] is True
    assert check["diff"]["before"]["Metadata"]["Rack"] == "r1"
    assert check["diff"]["after"]["Metadata"]["Rack"] == "r2"
    assert ok(run["read_after_check"])["nodes"][0]["Metadata"]["Rack"] == "r1"

    drift = ok(run["drift"])
    assert drift["changed"] is True
    assert drift["node"]["Metadata"] == {"Name": "tor-lifecycle", "Type": "switch", "Model": "QFX",
                                         "Rack": "r2", "Units": 2}
    assert drift["node"]["Revision"] > create["node"]["Revision"]
    assert drift["diff"]["before"]["Metadata"]["Rack"] == "r1"
    assert ok(run["drift_again"])["changed"] is False

    purge = ok(run["purge"])
    assert purge["changed"] is True
    assert purge["node"]["Metadata"] == {"Name": "tor-lifecycle", "Type": "switch", "Rack": "r2"}

    missing = run["update_missing"]
    assert missing["failed"] and "does not exist" in missing["msg"] and "state=update" in missing["msg"]

    assert ok(run["delete"])["changed"] is True
    assert api(analyzer, "GET", "/api/node/%s" % ident).status_code == 404


def test_node_seed_and_host(analyzer, runner):
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_node": {
            "name": "port-seeded", "node_type": "device", "seed": "tor9/port1", "host": "tor9"}},
        {"name": "other_host", "skydive.skydive.skydive_node": {
            "name": "port-seeded", "node_type": "device", "seed": "tor9/port1", "host": "elsewhere"}},
        {"name": "delete", "skydive.skydive.skydive_node": {
            "name": "port-seeded", "node_type": "device", "seed": "tor9/port1", "state": "absent"}},
    ], module_defaults=defaults(analyzer))
    import uuid
    create = ok(run["create"])
    assert create["id"] == str(uuid.uuid5(uuid.NAMESPACE_OID, "tor9/port1"))
    assert create["node"]["Host"] == "tor9"
    other = ok(run["other_host"])
    assert other["changed"] is False
    assert any("cannot change the host" in w for w in other.get("warnings", []))
    assert ok(run["delete"])["changed"] is True


def test_node_bad_input(analyzer, runner):
    run = runner.play([
        {"name": "empty_type", "skydive.skydive.skydive_node": {"name": "no-type", "node_type": ""}},
        {"name": "netns_without_path", "skydive.skydive.skydive_node": {"name": "ns1", "node_type": "netns"}},
        {"name": "contradiction", "skydive.skydive.skydive_node": {
            "name": "a", "node_type": "switch", "metadata": {"Type": "router"}}},
    ], module_defaults=defaults(analyzer))
    empty = run["empty_type"]
    assert empty["failed"]
    assert "rejected the creation of node" in empty["msg"] and "HTTP 400" in empty["msg"]
    assert "Type" in empty["msg"]
    netns = run["netns_without_path"]
    assert netns["failed"] and "HTTP 400" in netns["msg"] and "Path" in netns["msg"]
    assert run["contradiction"]["failed"] and "metadata.Type='router' contradicts node_type='switch'" \
        in run["contradiction"]["msg"]


def test_edge_lifecycle(analyzer, runner):
    tor = post_node(analyzer, "edge-tor", "edge-tor", "switch")
    post_node(analyzer, "edge-p1", "edge-p1", "device")
    post_node(analyzer, "edge-p2", "edge-p2", "device")
    by_query = {"parent_node": "G.V().Has('Name', 'edge-tor')", "child_node": "G.V().Has('Name', 'edge-p1')",
                "relation_type": "layer2", "metadata": {"Speed": "25G"}}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_edge": by_query},
        {"name": "again_by_id", "skydive.skydive.skydive_edge": dict(
            by_query, parent_node="edge-tor", child_node="edge-p1")},
        {"name": "other_relation", "skydive.skydive.skydive_edge": dict(by_query, relation_type="ownership")},
        {"name": "check_drift", "skydive.skydive.skydive_edge": dict(by_query, metadata={"Speed": "100G"}),
         "check_mode": True, "diff": True},
        {"name": "read_after_check", "skydive.skydive.skydive_query": {
            "query": "G.E().Has('Parent', 'edge-tor', 'Child', 'edge-p1', 'RelationType', 'layer2')"}},
        {"name": "drift", "skydive.skydive.skydive_edge": dict(by_query, metadata={"Speed": "100G"}), "diff": True},
        {"name": "update", "skydive.skydive.skydive_edge": dict(by_query, state="update", metadata={"Lag": 1})},
        {"name": "two_parents", "skydive.skydive.skydive_edge": dict(
            by_query, parent_node="G.V().Has('Name', Within('edge-p1', 'edge-p2'))")},
        {"name": "no_child", "skydive.skydive.skydive_edge": dict(by_query, child_node="G.V().Has('Name', 'ghost')")},
        {"name": "unknown_id", "skydive.skydive.skydive_edge": dict(by_query, child_node="no-such-node-id")},
        {"name": "delete", "skydive.skydive.skydive_edge": dict(by_query, state="absent")},
        {"name": "delete_ghost", "skydive.skydive.skydive_edge": dict(
            by_query, child_node="G.V().Has('Name', 'ghost')", state="absent")},
    ], module_defaults=defaults(analyzer))

    create = ok(run["create"])
    import uuid
    assert create["changed"] is True and create["parent"] == tor["ID"] and create["child"] == "edge-p1"
    assert create["id"] == str(uuid.uuid5(uuid.NAMESPACE_OID, "edge-tor:edge-p1:layer2"))
    assert create["edge"]["Metadata"] == {"RelationType": "layer2", "Speed": "25G"}
    assert ok(run["again_by_id"])["changed"] is False
    other = ok(run["other_relation"])
    assert other["changed"] is True and other["id"] != create["id"]

    check = ok(run["check_drift"])
    assert check["changed"] is True
    assert (check["diff"]["before"]["Metadata"]["Speed"], check["diff"]["after"]["Metadata"]["Speed"]) == ("25G", "100G")
    assert ok(run["read_after_check"])["edges"][0]["Metadata"]["Speed"] == "25G"
    drift = ok(run["drift"])
    assert drift["changed"] is True and drift["edge"]["Metadata"]["Speed"] == "100G"
    update = ok(run["update"])
    assert update["changed"] is True and update["edge"]["Metadata"] == {
        "RelationType": "layer2", "Speed": "100G", "Lag": 1}

    two = run["two_parents"]
    assert two["failed"]
    assert "parent_node query G.V().Has('Name', Within('edge-p1', 'edge-p2')) selects 2 nodes" in two["msg"]
    assert "exactly one" in two["msg"]
    none = run["no_child"]
    assert none["failed"] and "selects 0 nodes" in none["msg"]
    assert run["unknown_id"]["failed"] and "no node with ID no-such-node-id" in run["unknown_id"]["msg"]

    assert ok(run["delete"])["changed"] is True
    assert ok(run["delete_ghost"])["changed"] is False
    assert api(analyzer, "GET", "/api/edge/%s" % create["id"]).status_code == 404
    assert api(analyzer, "GET", "/api/edge/%s" % other["id"]).status_code == 200


def test_edge_adopts_existing_link(analyzer, runner):
    """An edge made by someone else (other ID) between the same ends is found, not duplicated."""
    post_node(analyzer, "adopt-a", "adopt-a", "switch")
    post_node(analyzer, "adopt-b", "adopt-b", "device")
    resp = api(analyzer, "POST", "/api/edge", json={
        "ID": "foreign-edge", "Parent": "adopt-a", "Child": "adopt-b", "Metadata": {"RelationType": "layer2"}})
    assert resp.status_code in (200, 201), resp.text
    run = runner.play([
        {"name": "present", "skydive.skydive.skydive_edge": {
            "parent_node": "adopt-a", "child_node": "adopt-b", "relation_type": "layer2"}},
    ], module_defaults=defaults(analyzer))
    present = ok(run["present"])
    assert present["changed"] is False and present["id"] == "foreign-edge"


CAPTURE_QUERY = "G.V().Has('Name', 'cap-if', 'Type', 'device')"


def test_capture_lifecycle(analyzer, runner):
    post_node(analyzer, "cap-if", "cap-if", "device")
    capture = {"query": CAPTURE_QUERY, "capture_name": "cap1", "description": "test",
               "bpf_filter": "icmp", "layer_key_mode": "L3", "extra_tcp_metric": True}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_capture": capture},
        {"name": "check_drift", "skydive.skydive.skydive_capture": dict(capture, bpf_filter="tcp"),
         "check_mode": True, "diff": True},
        {"name": "list_after_check", "ansible.builtin.uri": {
            "url": analyzer.url + "/api/capture", "return_content": True}},
        {"name": "drift", "skydive.skydive.skydive_capture": dict(capture, bpf_filter="tcp", sampling_rate=2),
         "diff": True},
        {"name": "drift_again", "skydive.skydive.skydive_capture": dict(capture, bpf_filter="tcp", sampling_rate=2)},
        {"name": "upstream_selector", "skydive.skydive.skydive_capture": {
            "interface_name": "cap-if", "type": "device", "capture_name": "cap2", "capture_type": "pcap",
            "raw_packet_limit": 5, "header_size": 128}},
        {"name": "extra_layers", "skydive.skydive.skydive_capture": dict(
            capture, capture_name="xl", capture_type="ebpf", bpf_filter="", extra_layers=["DNS"])},
        {"name": "sampling_on_pcap", "skydive.skydive.skydive_capture": dict(
            capture, capture_name="sr", capture_type="pcap", sampling_rate=5)},
        {"name": "mirror", "skydive.skydive.skydive_capture": dict(capture, capture_name="mi", capture_type="dpdk")},
        {"name": "bad_header", "skydive.skydive.skydive_capture": dict(capture, header_size=5)},
        {"name": "bad_bpf", "skydive.skydive.skydive_capture": dict(capture, capture_name="bad", bpf_filter="no such filter (")},
        {"name": "no_selector", "skydive.skydive.skydive_capture": {"capture_name": "x"}},
        {"name": "delete", "skydive.skydive.skydive_capture": dict(capture, state="absent")},
        {"name": "delete2", "skydive.skydive.skydive_capture": {
            "interface_name": "cap-if", "type": "device", "capture_name": "cap2", "state": "absent"}},
    ], module_defaults=defaults(analyzer))

    create = ok(run["create"])
    assert create["changed"] is True and create["id"]
    cap = create["capture"]
    assert (cap["GremlinQuery"], cap["Name"], cap["BPFFilter"], cap["LayerKeyMode"], cap["ExtraTCPMetric"]) == \
        (CAPTURE_QUERY, "cap1", "icmp", "L3", True)

    check = ok(run["check_drift"])
    assert check["changed"] is True and check["drift"] == ["BPFFilter"]
    assert (check["diff"]["before"]["BPFFilter"], check["diff"]["after"]["BPFFilter"]) == ("icmp", "tcp")
    listed = run["list_after_check"]["json"]
    assert list(listed) == [create["id"]] and listed[create["id"]]["BPFFilter"] == "icmp"

    drift = ok(run["drift"])
    assert drift["changed"] is True and drift["replaced"] == [create["id"]]
    assert sorted(drift["drift"]) == ["BPFFilter", "SamplingRate"]
    assert drift["id"] != create["id"] and drift["capture"]["BPFFilter"] == "tcp"
    assert drift["capture"]["SamplingRate"] == 2
    assert ok(run["drift_again"])["changed"] is False

    upstream = ok(run["upstream_selector"])
    assert upstream["capture"]["GremlinQuery"] == CAPTURE_QUERY
    assert (upstream["capture"]["Type"], upstream["capture"]["RawPacketLimit"], upstream["capture"]["HeaderSize"]) == \
        ("pcap", 5, 128)
    # what no capture type does yet, or not this one, is a 400 naming the option
    assert run["extra_layers"]["failed"] and "HTTP 400" in run["extra_layers"]["msg"]
    assert "ExtraLayers: not supported by ebpf capture (only afpacket" in run["extra_layers"]["msg"]
    assert "SamplingRate: not supported by pcap capture (only ovssflow)" in run["sampling_on_pcap"]["msg"]
    assert run["mirror"]["failed"] and "capture_type" in run["mirror"]["msg"] and "dpdk" in run["mirror"]["msg"]

    assert run["bad_header"]["failed"] and "header_size must be 0 or between 14 and 4096" in run["bad_header"]["msg"]
    bad_bpf = run["bad_bpf"]
    assert bad_bpf["failed"] and "HTTP 400" in bad_bpf["msg"] and "BPF" in bad_bpf["msg"]
    assert run["no_selector"]["failed"] and "query" in run["no_selector"]["msg"]

    delete = ok(run["delete"])
    assert delete["changed"] is True and delete["deleted"] == [drift["id"]]
    assert ok(run["delete2"])["changed"] is True
    assert api_list(analyzer, "capture") == {}


def test_capture_wait_reports_no_capturable_node(analyzer, runner):
    """wait=true on a node no agent owns (Host empty) cannot become active: clear timeout."""
    post_node(analyzer, "wait-if", "wait-if", "device")
    run = runner.play([
        {"name": "wait", "skydive.skydive.skydive_capture": {
            "query": "G.V().Has('Name', 'wait-if')", "capture_name": "w", "wait": True, "wait_timeout": 2}},
        {"name": "cleanup", "skydive.skydive.skydive_capture": {
            "query": "G.V().Has('Name', 'wait-if')", "capture_name": "w", "state": "absent"}},
    ], module_defaults=defaults(analyzer))
    wait = run["wait"]
    assert wait["failed"]
    assert "selects no node that can be captured" in wait["msg"] and "1 node(s) selected" in wait["msg"]
    assert ok(run["cleanup"])["changed"] is True


def test_capture_wait_active_with_agent_reported_state(analyzer, runner):
    """The wait loop follows the Captures entries agents put on nodes: a node carrying the
    capture in state active ends the wait; state error fails it with the agent's message."""
    host = "wait-agent-host"
    post_node(analyzer, "wa-if", "wa-if", "veth", host=host)
    create = runner.play([
        {"name": "create", "skydive.skydive.skydive_capture": {
            "query": "G.V().Has('Name', 'wa-if')", "capture_name": "wa"}},
    ], module_defaults=defaults(analyzer))
    uuid = ok(create["create"])["id"]
    # what an agent reports once its probe runs (written as the agent would, via the node)
    resp = api(analyzer, "PATCH", "/api/node/wa-if", json=[{"op": "add", "path": "/Metadata/Captures", "value": [
        {"ID": uuid, "State": "active", "Name": "wa", "PacketsReceived": 7}]}])
    assert resp.status_code == 200, resp.text
    run = runner.play([
        {"name": "wait", "skydive.skydive.skydive_capture": {
            "query": "G.V().Has('Name', 'wa-if')", "capture_name": "wa", "wait": True, "wait_timeout": 10}},
    ], module_defaults=defaults(analyzer))
    wait = ok(run["wait"])
    assert wait["changed"] is False
    assert wait["nodes"] == [{"id": "wa-if", "name": "wa-if", "host": host, "state": "active", "packets_received": 7}]
    assert wait["capture"]["Count"] == 1

    resp = api(analyzer, "PATCH", "/api/node/wa-if", json=[{"op": "add", "path": "/Metadata/Captures", "value": [
        {"ID": uuid, "State": "error", "Name": "wa", "Error": "no such device"}]}])
    assert resp.status_code == 200, resp.text
    run = runner.play([
        {"name": "wait", "skydive.skydive.skydive_capture": {
            "query": "G.V().Has('Name', 'wa-if')", "capture_name": "wa", "wait": True, "wait_timeout": 10}},
        {"name": "cleanup", "skydive.skydive.skydive_capture": {
            "query": "G.V().Has('Name', 'wa-if')", "capture_name": "wa", "state": "absent"}},
    ], module_defaults=defaults(analyzer))
    assert run["wait"]["failed"] and "failed on node wa-if of host %s: no such device" % host in run["wait"]["msg"]
    ok(run["cleanup"])


def test_injection_lifecycle(analyzer, runner):
    post_node(analyzer, "inj-src", "inj-src", "veth", host="inj-host", IPV4=["10.9.0.1/24"], MAC="02:00:00:00:00:01")
    post_node(analyzer, "inj-dst", "inj-dst", "veth", host="inj-host", IPV4=["10.9.0.2/24"], MAC="02:00:00:00:00:02")
    inj = {"src": "G.V().Has('Name', 'inj-src')", "dst": "G.V().Has('Name', 'inj-dst')",
           "type": "icmp4", "count": 3, "interval": 10, "payload": "hello"}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_injection": inj},
        {"name": "check_drift", "skydive.skydive.skydive_injection": dict(inj, count=5),
         "check_mode": True, "diff": True},
        {"name": "list_after_check", "ansible.builtin.uri": {
            "url": analyzer.url + "/api/injectpacket", "return_content": True}},
        {"name": "drift", "skydive.skydive.skydive_injection": dict(inj, count=5, ttl=32)},
        {"name": "drift_again", "skydive.skydive.skydive_injection": dict(inj, count=5, ttl=32)},
        {"name": "bad_ip", "skydive.skydive.skydive_injection": dict(inj, type="udp4", src_ip="not-an-ip")},
        {"name": "bad_ttl", "skydive.skydive.skydive_injection": dict(inj, ttl=300)},
        {"name": "no_src_node", "skydive.skydive.skydive_injection": dict(inj, src="G.V().Has('Name', 'ghost')")},
        {"name": "delete", "skydive.skydive.skydive_injection": dict(inj, state="absent")},
        # ping_mesh: the analyzer's POST /api/pingmesh (tests/injection/test_pingmesh.py runs a real one)
        {"name": "mesh_ghost", "skydive.skydive.skydive_injection": dict(inj, ping_mesh=True, src="G.V().Has('Name', 'ghost')")},
        {"name": "mesh_tcp", "skydive.skydive.skydive_injection": dict(inj, ping_mesh=True, type="tcp4")},
        {"name": "mesh_check", "skydive.skydive.skydive_injection": dict(inj, ping_mesh=True), "check_mode": True},
    ], module_defaults=defaults(analyzer))
    assert run["mesh_ghost"]["failed"] and "HTTP 400" in run["mesh_ghost"]["msg"] and "Src selects no node" in run["mesh_ghost"]["msg"]
    assert run["mesh_tcp"]["failed"] and "type must be icmp4 or icmp6" in run["mesh_tcp"]["msg"]
    mesh_check = ok(run["mesh_check"])
    assert mesh_check["changed"] is False and mesh_check["skipped"] is True and "ping_mesh" not in mesh_check
    create = ok(run["create"])
    assert create["changed"] is True and create["id"]
    body = create["injection"]
    assert (body["Src"], body["Dst"], body["Type"], body["Count"], body["Interval"], body["Payload"], body["TTL"]) == \
        (inj["src"], inj["dst"], "icmp4", 3, 10, "hello", 64)
    check = ok(run["check_drift"])
    assert check["changed"] is True and check["drift"] == ["Count"]
    assert (check["diff"]["before"]["Count"], check["diff"]["after"]["Count"]) == (3, 5)
    assert list(run["list_after_check"]["json"]) == [create["id"]]
    drift = ok(run["drift"])
    assert drift["changed"] is True and drift["replaced"] == [create["id"]]
    assert (drift["injection"]["Count"], drift["injection"]["TTL"]) == (5, 32)
    assert ok(run["drift_again"])["changed"] is False
    assert run["bad_ip"]["failed"] and "HTTP 400" in run["bad_ip"]["msg"]
    assert run["bad_ttl"]["failed"] and "ttl must be between 1 and 255" in run["bad_ttl"]["msg"]
    assert run["no_src_node"]["failed"] and "HTTP 400" in run["no_src_node"]["msg"]
    assert ok(run["delete"])["changed"] is True
    assert api_list(analyzer, "injectpacket") == {}


def test_alert_lifecycle(analyzer, runner):
    alert = {"name": "a-down", "expression": "G.V().Has('State', 'DOWN')", "description": "links down"}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_alert": alert},
        {"name": "check_drift", "skydive.skydive.skydive_alert": dict(alert, trigger="duration:10s"),
         "check_mode": True, "diff": True},
        {"name": "drift", "skydive.skydive.skydive_alert": dict(alert, trigger="duration:10s")},
        {"name": "drift_again", "skydive.skydive.skydive_alert": dict(alert, trigger="duration:10s")},
        {"name": "bad_trigger", "skydive.skydive.skydive_alert": dict(alert, name="bad", trigger="sometimes")},
        {"name": "no_expression", "skydive.skydive.skydive_alert": {"name": "bad2"}},
        {"name": "delete", "skydive.skydive.skydive_alert": {"name": "a-down", "state": "absent"}},
    ], module_defaults=defaults(analyzer))
    create = ok(run["create"])
    assert create["changed"] is True
    assert (create["alert"]["Name"], create["alert"]["Expression"], create["alert"]["Trigger"]) == \
        ("a-down", alert["expression"], "graph")
    check = ok(run["check_drift"])
    assert check["changed"] is True and check["diff"]["after"]["Trigger"] == "duration:10s"
    assert check["diff"]["before"]["Trigger"] == "graph"
    drift = ok(run["drift"])
    assert drift["changed"] and drift["replaced"] == [create["id"]] and drift["alert"]["Trigger"] == "duration:10s"
    assert ok(run["drift_again"])["changed"] is False
    assert run["bad_trigger"]["failed"] and "trigger 'sometimes'" in run["bad_trigger"]["msg"]
    assert run["no_expression"]["failed"] and "expression" in run["no_expression"]["msg"]
    assert ok(run["delete"])["changed"] is True
    assert api_list(analyzer, "alert") == {}


def test_node_rule_lifecycle(analyzer, runner):
    create_rule = {"name": "nr-core", "action": "create", "node_name": "nr-core1", "node_type": "fabric",
                   "metadata": {"Site": "par1"}}
    update_rule = {"name": "nr-tag", "action": "update", "query": "G.V().Has('Name', 'nr-core1')",
                   "metadata": {"Role": "core"}}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_node_rule": create_rule},
        {"name": "tag", "skydive.skydive.skydive_node_rule": update_rule},
        {"name": "check_drift", "skydive.skydive.skydive_node_rule": dict(create_rule, metadata={"Site": "lon1"}),
         "check_mode": True, "diff": True},
        {"name": "drift", "skydive.skydive.skydive_node_rule": dict(create_rule, metadata={"Site": "lon1"})},
        {"name": "drift_again", "skydive.skydive.skydive_node_rule": dict(create_rule, metadata={"Site": "lon1"})},
        {"name": "update_with_name", "skydive.skydive.skydive_node_rule": dict(update_rule, metadata={"Name": "x"})},
        {"name": "create_without_type", "skydive.skydive.skydive_node_rule": {"name": "nr-bad", "node_name": "x"}},
        {"name": "delete_tag", "skydive.skydive.skydive_node_rule": {"name": "nr-tag", "state": "absent"}},
        {"name": "delete", "skydive.skydive.skydive_node_rule": {"name": "nr-core", "state": "absent"}},
    ], module_defaults=defaults(analyzer))
    create = ok(run["create"])
    assert create["changed"] and create["rule"]["Metadata"] == {"Name": "nr-core1", "Type": "fabric", "Site": "par1"}
    assert ok(run["tag"])["rule"]["Action"] == "update"
    check = ok(run["check_drift"])
    assert check["changed"] and check["drift"] == ["Metadata"]
    drift = ok(run["drift"])
    assert drift["changed"] and drift["rule"]["Metadata"]["Site"] == "lon1"
    assert ok(run["drift_again"])["changed"] is False
    assert run["update_with_name"]["failed"] and "cannot change Name or Type" in run["update_with_name"]["msg"]
    assert run["create_without_type"]["failed"] and "needs the node's Type" in run["create_without_type"]["msg"]
    assert ok(run["delete_tag"])["changed"] and ok(run["delete"])["changed"]
    assert api_list(analyzer, "noderule") == {}


def test_edge_rule_lifecycle(analyzer, runner):
    post_node(analyzer, "er-a", "er-a", "switch")
    post_node(analyzer, "er-b", "er-b", "device")
    rule = {"name": "er-link", "src": "G.V().Has('Name', 'er-a')", "dst": "G.V().Has('Name', 'er-b')",
            "relation_type": "layer2", "metadata": {"Type": "fabric"}}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_edge_rule": rule},
        {"name": "check_drift", "skydive.skydive.skydive_edge_rule": dict(rule, relation_type="ownership"),
         "check_mode": True, "diff": True},
        {"name": "list_after_check", "ansible.builtin.uri": {
            "url": analyzer.url + "/api/edgerule", "return_content": True}},
        {"name": "drift", "skydive.skydive.skydive_edge_rule": dict(rule, description="now described")},
        {"name": "drift_again", "skydive.skydive.skydive_edge_rule": dict(rule, description="now described")},
        {"name": "missing_dst", "skydive.skydive.skydive_edge_rule": {"name": "er-bad", "src": "G.V()",
                                                                      "relation_type": "layer2"}},
        {"name": "delete", "skydive.skydive.skydive_edge_rule": {"name": "er-link", "state": "absent"}},
    ], module_defaults=defaults(analyzer))
    create = ok(run["create"])
    assert create["changed"] and create["rule"]["Metadata"] == {"RelationType": "layer2", "Type": "fabric"}
    check = ok(run["check_drift"])
    assert check["changed"] and check["diff"]["after"]["Metadata"]["RelationType"] == "ownership"
    assert run["list_after_check"]["json"][create["id"]]["Metadata"]["RelationType"] == "layer2"
    drift = ok(run["drift"])
    assert drift["changed"] and drift["rule"]["Description"] == "now described"
    assert ok(run["drift_again"])["changed"] is False
    assert run["missing_dst"]["failed"] and "dst" in run["missing_dst"]["msg"]
    assert ok(run["delete"])["changed"]


def test_query_module_and_lookup(analyzer, runner):
    post_node(analyzer, "q-host", "q-host", "host")
    post_node(analyzer, "q-if", "q-if", "device", host="q-host")
    api(analyzer, "POST", "/api/edge", json={"ID": "q-own", "Parent": "q-host", "Child": "q-if",
                                             "Metadata": {"RelationType": "ownership"}})
    run = runner.play([
        {"name": "nodes", "skydive.skydive.skydive_query": {"query": "G.V().Has('Name', 'q-host')"},
         "check_mode": True},
        {"name": "count", "skydive.skydive.skydive_query": {"query": "G.V().Has('Name', Within('q-host', 'q-if')).Count()"}},
        {"name": "subgraph", "skydive.skydive.skydive_query": {
            "query": "G.V().Has('Name', 'q-host').OutE().Has('RelationType', 'ownership').SubGraph()"}},
        {"name": "empty", "skydive.skydive.skydive_query": {"query": "G.V().Has('Name', 'ghost')", "fail_on_empty": True}},
        {"name": "syntax", "skydive.skydive.skydive_query": {"query": "G.V().Nope("}},
        {"name": "lookup_one", "ansible.builtin.set_fact": {
            "one": "{{ lookup('skydive.skydive.skydive', \"G.V().Has('Name', 'q-if')\", analyzer='%s') }}" % analyzer.address}},
        {"name": "lookup_many", "ansible.builtin.set_fact": {
            "many": "{{ query('skydive.skydive.skydive', \"G.V().Has('Name', 'q-if').Count()\", "
                    "\"G.V().Has('Name', 'q-host').Values('Name')\") }}"}},
        {"name": "lookup_upstream", "ansible.builtin.set_fact": {
            "up": "{{ lookup('skydive.skydive.skydive', filter={'query': \"G.V().Has('Name', 'q-host')\"}, "
                  "provider={'endpoint': '%s'}) }}" % analyzer.address}},
        {"name": "lookup_bad", "ansible.builtin.set_fact": {
            "bad": "{{ lookup('skydive.skydive.skydive', 'G.V().Nope(') }}"}},
    ], module_defaults=defaults(analyzer), env={"SKYDIVE_ANALYZER": analyzer.address})
    nodes = ok(run["nodes"])
    assert nodes["changed"] is False and [n["ID"] for n in nodes["nodes"]] == ["q-host"] and nodes["count"] == 1
    assert ok(run["count"])["result"] == 2 and run["count"]["count"] == 2
    sub = ok(run["subgraph"])
    assert sorted(n["ID"] for n in sub["nodes"]) == ["q-host", "q-if"] and [e["ID"] for e in sub["edges"]] == ["q-own"]
    assert run["empty"]["failed"] and "returned nothing" in run["empty"]["msg"]
    syntax = run["syntax"]
    assert syntax["failed"] and "HTTP 400" in syntax["msg"] and "G.V().Nope(" in syntax["msg"]
    assert [n["ID"] for n in ok(run["lookup_one"])["ansible_facts"]["one"]] == ["q-if"]
    assert ok(run["lookup_many"])["ansible_facts"]["many"] == [1, ["q-host"]]
    assert [n["ID"] for n in ok(run["lookup_upstream"])["ansible_facts"]["up"]] == ["q-host"]
    bad = run["lookup_bad"]
    assert bad["failed"] and "skydive lookup" in bad["msg"] and "HTTP 400" in bad["msg"]


def test_connection_options_and_errors(analyzer, runner, dead_address):
    query = {"query": "G.V().Count()"}
    run = runner.play([
        {"name": "flat", "skydive.skydive.skydive_query": dict(query, analyzer=analyzer.address)},
        {"name": "url", "skydive.skydive.skydive_query": dict(query, analyzer=analyzer.url)},
        {"name": "provider", "skydive.skydive.skydive_query": dict(query, provider={"endpoint": analyzer.address})},
        {"name": "env", "skydive.skydive.skydive_query": query},
        {"name": "unreachable", "skydive.skydive.skydive_query": dict(query, analyzer=dead_address, timeout=3)},
        {"name": "unreachable_node", "skydive.skydive.skydive_node": {
            "name": "x", "node_type": "switch", "analyzer": dead_address}},
        {"name": "tls_to_plain", "skydive.skydive.skydive_query": dict(query, analyzer=analyzer.address, ssl=True)},
        {"name": "contradiction", "skydive.skydive.skydive_query": dict(
            query, analyzer=analyzer.address, validate_certs=True, insecure=True)},
        {"name": "bad_scheme", "skydive.skydive.skydive_query": dict(query, analyzer="ftp://x:1")},
    ], env={"SKYDIVE_ANALYZER": analyzer.address})
    for name in ("flat", "url", "provider", "env"):
        assert ok(run[name])["count"] >= 0
    for name in ("unreachable", "unreachable_node"):
        res = run[name]
        assert res["failed"]
        assert "cannot reach the Skydive analyzer at %s" % dead_address in res["msg"]
        # ansible-core itself adds "exception": "(traceback unavailable)" to any failure
        assert "Traceback" not in res["msg"] and "Traceback" not in res.get("exception", "")
    assert run["tls_to_plain"]["failed"] and "does not speak TLS" in run["tls_to_plain"]["msg"]
    assert run["contradiction"]["failed"] and "contradict" in run["contradiction"]["msg"]
    assert run["bad_scheme"]["failed"] and "only http:// and https://" in run["bad_scheme"]["msg"]


def test_basic_auth(auth_analyzer, runner):
    good = {"username": "admin", "password": "pass"}
    node = {"name": "auth-node", "node_type": "switch"}
    run = runner.play([
        {"name": "create", "skydive.skydive.skydive_node": dict(node, **good)},
        {"name": "provider", "skydive.skydive.skydive_node": dict(node, provider=dict(good, endpoint=auth_analyzer.address))},
        {"name": "wrong_password", "skydive.skydive.skydive_node": dict(node, username="admin", password="nope")},
        {"name": "no_credentials", "skydive.skydive.skydive_query": {"query": "G.V().Count()"}},
        {"name": "env_credentials", "skydive.skydive.skydive_query": {"query": "G.V().Count()"},
         "environment": {"SKYDIVE_USERNAME": "admin", "SKYDIVE_PASSWORD": "pass"}},
        {"name": "lookup_wrong", "ansible.builtin.set_fact": {
            "x": "{{ lookup('skydive.skydive.skydive', 'G.V().Count()', analyzer='%s', username='admin', "
                 "password='bad') }}" % auth_analyzer.address}},
        {"name": "delete", "skydive.skydive.skydive_node": dict(node, state="absent", **good)},
    ], module_defaults={"group/skydive.skydive.skydive": {"analyzer": auth_analyzer.address}})
    assert ok(run["create"])["changed"] is True
    assert ok(run["provider"])["changed"] is False
    wrong = run["wrong_password"]
    assert wrong["failed"]
    assert "refused the login of user 'admin'" in wrong["msg"] and "HTTP 401" in wrong["msg"]
    assert "check username and password" in wrong["msg"]
    assert "nope" not in wrong["msg"]
    anon = run["no_credentials"]
    assert anon["failed"] and "requires authentication" in anon["msg"] and "HTTP 401" in anon["msg"]
    assert ok(run["env_credentials"])["count"] >= 1
    lookup = run["lookup_wrong"]
    assert lookup["failed"] and "HTTP 401" in lookup["msg"]
    assert ok(run["delete"])["changed"] is True


def test_injection_wait_follows_node_state(analyzer, runner):
    """wait=true follows the PacketInjections entries agents put on the source nodes (set here
    over REST the way an agent reports them): still running -> timeout naming the node; gone
    without ever being seen -> a warning and packets_sent 0."""
    post_node(analyzer, "injw-src", "injw-src", "veth", host="injw-host", IPV4=["10.8.0.1/24"], MAC="02:00:00:00:01:01")
    inj = {"src": "G.V().Has('Name', 'injw-src')", "dst_ip": "10.8.0.2", "dst_mac": "02:00:00:00:01:02",
           "count": 2, "interval": 10}
    created = ok(runner.play([{"name": "create", "skydive.skydive.skydive_injection": inj}],
                             module_defaults=defaults(analyzer))["create"])
    resp = api(analyzer, "PATCH", "/api/node/injw-src", json=[{"op": "add", "path": "/Metadata/PacketInjections", "value": [
        {"ID": created["id"], "State": "active", "PacketCount": 1}]}])
    assert resp.status_code == 200, resp.text
    run = runner.play([{"name": "wait", "skydive.skydive.skydive_injection": dict(inj, wait=True, wait_timeout=2)}],
                      module_defaults=defaults(analyzer))
    assert run["wait"]["failed"] and "still running on injw-src after 2 s" in run["wait"]["msg"]
    resp = api(analyzer, "PATCH", "/api/node/injw-src", json=[{"op": "remove", "path": "/Metadata/PacketInjections"}])
    assert resp.status_code == 200, resp.text
    run = runner.play([
        {"name": "wait", "skydive.skydive.skydive_injection": dict(inj, wait=True, wait_timeout=5)},
        {"name": "delete", "skydive.skydive.skydive_injection": dict(inj, state="absent")},
    ], module_defaults=defaults(analyzer))
    wait = ok(run["wait"])
    assert wait["changed"] is False and wait["packets_sent"] == 0
    assert any("never showed on a topology node" in w for w in wait.get("warnings", []))
    assert ok(run["delete"])["changed"] is True
