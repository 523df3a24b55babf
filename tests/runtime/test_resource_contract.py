"""The REST contract every resource kind keeps (spec §1.1), NetBox style: one suite, run over a
declaration per kind of valid and invalid bodies, against a real analyzer subprocess.

list, get, 404, 201, duplicate (409, or the kind's documented answer), PATCH (JSON patch on node
and edge; `resource not updatable` otherwise), DELETE, X-Resource-TTL (expiry, or the documented
refusal for graph kinds), restart (the resource is still there after an analyzer restart on the
same store).
"""

import time

import pytest
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config, wait_until

pytestmark = pytest.mark.timeout(180)


class Contract:
    """What one kind is. valid(tag) -> a body (tag keeps bodies of different tests apart);
    setup(post) creates what the bodies refer to; invalid: (body, words of the 400 message)."""

    def __init__(self, name, valid, invalid, key="UUID", duplicate=(409, "duplicated resource"),
                 patch=None, ttl=True, setup=None):
        self.name = name
        self.valid = valid
        self.invalid = invalid
        self.key = key              # the field holding the ID
        self.duplicate = duplicate  # (status, text) of a second POST of the same body; None: a new resource
        self.patch = patch          # (JSON patch, check(created, patched)); None: 400 resource not updatable
        self.ttl = ttl              # X-Resource-TTL expires it; False: refused with a 400
        self.setup = setup

    def __repr__(self):
        return self.name


def _inj_nodes(post):
    for name, ip, mac in (("ct-inj-src", "10.77.0.1/24", "02:00:00:77:00:01"),
                          ("ct-inj-dst", "10.77.0.2/24", "02:00:00:77:00:02")):
        post("node", {"ID": name, "Host": "ct-host", "Metadata": {"Name": name, "Type": "veth",
                                                                   "IPV4": [ip], "MAC": mac}})


def _edge_ends(post):
    for name in ("ct-parent", "ct-child"):
        post("node", {"ID": name, "Metadata": {"Name": name, "Type": "switch"}})


NOTHING = "G.V().Has('Name', 'ct-selects-nothing')"

CONTRACTS = [
    Contract("capture", lambda tag: {"GremlinQuery": "G.V().Has('Name', 'ct-%s')" % tag, "Name": tag},
             [({"GremlinQuery": "G.V().Foo()"}, "GremlinQuery"),
              ({"GremlinQuery": NOTHING, "HeaderSize": 5}, "HeaderSize: must be 0 or between 14 and 4096"),
              ({"GremlinQuery": NOTHING, "LayerKeyMode": "L7"}, "LayerKeyMode: must be L2 or L3"),
              ({"GremlinQuery": NOTHING, "SamplingRate": "often"}, "SamplingRate: expected an integer")]),
    Contract("injectpacket", lambda tag: {"Src": "G.V().Has('Name', 'ct-inj-src')",
                                          "Dst": "G.V().Has('Name', 'ct-inj-dst')", "Payload": tag},
             [({"Src": "G.V().Has('Name', 'ct-ghost')"}, "Not able to find a source node"),
              ({"Src": "G.V().Has('Name', 'ct-inj-src')", "Type": "icmp9"}, "given type is not supported"),
              ({"Src": "G.V().Has('Name', 'ct-inj-src')", "DstIP": "10.77.0.2", "SrcMAC": "zz"},
               "SrcMAC: 'zz' is not a MAC address")],
             duplicate=None, setup=_inj_nodes),
    Contract("alert", lambda tag: {"Name": tag, "Expression": "G.V().Has('Name', 'ct-%s')" % tag},
             [({"Name": "x"}, "Expression: non zero value required"),
              ({"Expression": "G.V()", "Trigger": "sometimes"}, "Trigger: 'sometimes' does not match"),
              ({"Expression": "1 + 1"}, "JavaScript alerts are not supported")],
             duplicate=None),
    Contract("noderule", lambda tag: {"Name": tag, "Action": "create",
                                      "Metadata": {"Name": "ct-%s" % tag, "Type": "fabric"}},
             [({"Action": "delete"}, "Action: 'delete' does not match"),
              ({"Action": "update", "Query": "G.V()", "Metadata": {"Name": "x"}},
               "Name and Type fields can not be changed"),
              ({"Action": "create", "Metadata": {"Name": "x"}}, "Type")],
             duplicate=None),
    Contract("edgerule", lambda tag: {"Name": tag, "Src": "G.V().Has('Name', 'ct-%s-a')" % tag,
                                      "Dst": "G.V().Has('Name', 'ct-%s-b')" % tag,
                                      "Metadata": {"RelationType": "layer2"}},
             [({"Src": "G.V()", "Dst": "G.V()", "Metadata": {}}, "RelationType is required"),
              ({"Src": "G.V()", "Metadata": {"RelationType": "layer2"}}, "Dst: a Gremlin query is required")],
             duplicate=None),
    # workflow: built-ins only, user (JavaScript) workflows are refused (tests/runtime/test_workflows.py)
    Contract("node", lambda tag: {"ID": "ct-node-%s" % tag, "Metadata": {"Name": "ct-%s" % tag, "Type": "switch"}},
             [({"Metadata": {"Name": "x", "Type": "switch"}}, "No ID found for graph element"),
              ({"ID": "ct-bad", "Metadata": {"Name": "x"}}, "Type"),
              ({"ID": "ct-bad", "Metadata": {"Name": "ns", "Type": "netns"}}, "Path")],
             key="ID", duplicate=(400, "Node ID conflict"), ttl=False,
             patch=([{"op": "add", "path": "/Metadata/Rack", "value": "r1"}],
                    lambda old, el: el["Metadata"]["Rack"] == "r1" and el["Revision"] == old["Revision"] + 1)),
    Contract("edge", lambda tag: {"ID": "ct-edge-%s" % tag, "Parent": "ct-parent", "Child": "ct-child",
                                  "Metadata": {"RelationType": "layer2", "Tag": tag}},
             [({"ID": "ct-bad", "Parent": "ct-ghost", "Child": "ct-child", "Metadata": {"RelationType": "layer2"}},
               "Parent node not found"),
              ({"ID": "ct-bad", "Parent": "ct-parent", "Child": "ct-child", "Metadata": {}}, "RelationType"),
              ({"ID": "ct-bad", "Child": "ct-child", "Metadata": {"RelationType": "layer2"}}, "parent ID wrong format")],
             key="ID", duplicate=(400, "Edge ID conflict"), ttl=False, setup=_edge_ends,
             patch=([{"op": "add", "path": "/Metadata/Speed", "value": 25}],
                    lambda old, el: el["Metadata"]["Speed"] == 25 and el["Revision"] == old["Revision"] + 1)),
]

class Client:
    def __init__(self, proc):
        self.proc = proc

    def req(self, method, path, body=None, headers=None, **kwargs):
        headers = dict({"Content-Type": "application/json"}, **(headers or {}))     # as every client sends
        return requests.request(method, self.proc.url + path, json=body, headers=headers, timeout=10, **kwargs)

    def post(self, kind, body, expect=201, **kwargs):
        r = self.req("POST", "/api/" + kind, body, **kwargs)
        assert r.status_code == expect, (kind, body, r.status_code, r.text)
        return r.json() if expect == 201 else r.text


def _start(workdir):
    proc = SkydiveProcess("analyzer", workdir, analyzer_config(workdir))
    return proc.start()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    proc = _start(tmp_path_factory.mktemp("contract"))
    c = Client(proc)
    try:
        for contract in CONTRACTS:
            if contract.setup:
                contract.setup(c.post)
        yield c
    finally:
        proc.stop()


def _kinds():
    return pytest.mark.parametrize("contract", CONTRACTS, ids=[c.name for c in CONTRACTS])


def _err(r, status, words):
    assert r.status_code == status, (status, r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("text/plain") and words in r.text, (words, r.text)


@_kinds()
def test_create_get_list_delete(client, contract):
    body = contract.valid("life")
    created = client.post(contract.name, body)
    rid = created[contract.key]
    assert rid
    for k, v in body.items():
        assert created[k] == v, (k, created[k], v)
    got = client.req("GET", "/api/%s/%s" % (contract.name, rid))
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert got.json() == created
    listed = client.req("GET", "/api/" + contract.name).json()
    assert isinstance(listed, dict) and listed[rid] == created
    r = client.req("DELETE", "/api/%s/%s" % (contract.name, rid))
    assert (r.status_code, r.text, r.headers["Content-Type"].split(";")[0]) == (200, "", "text/plain")
    assert rid not in client.req("GET", "/api/" + contract.name).json()
    _err(client.req("GET", "/api/%s/%s" % (contract.name, rid)), 404, "'%s' not found" % rid)


@_kinds()
def test_unknown_id_is_404(client, contract):
    _err(client.req("GET", "/api/%s/ct-no-such-id" % contract.name), 404, "'ct-no-such-id' not found")
    _err(client.req("DELETE", "/api/%s/ct-no-such-id" % contract.name), 404, "'ct-no-such-id' not found")
    r = client.req("PATCH", "/api/%s/ct-no-such-id" % contract.name, [{"op": "remove", "path": "/Name"}])
    assert (r.status_code, r.text) == (404, "")


@_kinds()
def test_invalid_bodies_are_400_with_message(client, contract):
    for body, words in contract.invalid + [([contract.valid("list")], "must be a JSON object")]:
        _err(client.req("POST", "/api/" + contract.name, body), 400, words)
    _err(client.req("POST", "/api/" + contract.name, data=b"{nope",
                    headers={"Content-Type": "application/json"}), 400, "failed to decode JSON body")
    assert all(not str(k).startswith("ct-bad") for k in client.req("GET", "/api/" + contract.name).json())


@_kinds()
def test_duplicate(client, contract):
    body = contract.valid("dup")
    first = client.post(contract.name, body)
    if contract.duplicate is None:      # no duplicate rule upstream: a second, distinct resource
        second = client.post(contract.name, body)
        assert second[contract.key] != first[contract.key]
        assert client.req("DELETE", "/api/%s/%s" % (contract.name, second[contract.key])).status_code == 200
    else:
        status, text = contract.duplicate
        _err(client.req("POST", "/api/" + contract.name, body), status, text)
    assert client.req("DELETE", "/api/%s/%s" % (contract.name, first[contract.key])).status_code == 200


@_kinds()
def test_patch(client, contract):
    created = client.post(contract.name, contract.valid("patch"))
    path = "/api/%s/%s" % (contract.name, created[contract.key])
    if contract.patch is None:
        _err(client.req("PATCH", path, [{"op": "add", "path": "/Description", "value": "x"}]), 400,
             "resource not updatable")
        assert client.req("GET", path).json() == created
    else:
        ops, check = contract.patch
        r = client.req("PATCH", path, ops)
        assert r.status_code == 200, r.text
        assert check(created, r.json()) and client.req("GET", path).json() == r.json()
        r = client.req("PATCH", path, ops)
        assert (r.status_code, r.text) == (304, "")
        _err(client.req("PATCH", path, [{"op": "foobar", "path": "/Metadata/x"}]), 400, "failed to apply patch")
    _err(client.req("PATCH", path, {"op": "add"}), 400, "failed to apply patch")
    assert client.req("DELETE", path).status_code == 200


@_kinds()
def test_ttl(client, contract):
    body = contract.valid("ttl")
    _err(client.req("POST", "/api/" + contract.name, body, headers={"X-Resource-TTL": "forever"}), 400,
         "invalid ttl")
    if not contract.ttl:
        _err(client.req("POST", "/api/" + contract.name, body, headers={"X-Resource-TTL": "1s"}), 400,
             "X-Resource-TTL: %s resources do not expire" % contract.name)
        assert client.req("GET", "/api/%s/%s" % (contract.name, body[contract.key])).status_code == 404
        return
    created = client.post(contract.name, body, headers={"X-Resource-TTL": "1s"})
    path = "/api/%s/%s" % (contract.name, created[contract.key])
    assert client.req("GET", path).status_code == 200
    started = time.time()
    wait_until(lambda: client.req("GET", path).status_code == 404, timeout=6, message="%s expiry" % path)
    assert time.time() - started < 5
    assert created[contract.key] not in client.req("GET", "/api/" + contract.name).json()


@_kinds()
def test_restart_keeps_it(tmp_path, contract):
    proc = _start(tmp_path)
    try:
        c = Client(proc)
        if contract.setup:
            contract.setup(c.post)
        created = c.post(contract.name, contract.valid("restart"))
        proc.stop()
        proc.start()
        r = c.req("GET", "/api/%s/%s" % (contract.name, created[contract.key]))
        assert r.status_code == 200, r.text
        after = r.json()
        for k in ("Count", "UpdatedAt"):        # Count: decoration computed on the live graph
            after.pop(k, None)
            created.pop(k, None)
        assert after == created
    finally:
        proc.stop()
