"""Bad input never breaks the analyzer: > 10,000 generated and mutated Gremlin queries and API
bodies (hypothesis), plus the issue 9 attack shapes (lone surrogates, deep JSON, the YAML alias bomb,
huge bodies, wrong types, ReDoS regexes, path explosions), each answered 2xx/3xx/4xx, never 5xx,
against a real analyzer process; what was stored before is intact after, its log holds no
traceback, /api/status answered within 1 s throughout and its memory stayed bounded.
"""

import json
import string

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fixtures.processes import SkydiveProcess, analyzer_config
from tests.runtime.limits_support import StatusProbe, rss_kb, tracebacks

pytestmark = pytest.mark.timeout(900)

COMMON = dict(deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))


class Harness:
    def __init__(self, tmp_path):
        cfg = analyzer_config(tmp_path, http={"max_body_size": 1024 * 1024},
                              analyzer={"topology": {"backend": "memory"}, "flow": {"backend": "memory"},
                                        "query": {"timeout": 2}})
        self.proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
        self.session = requests.Session()
        self.requests = 0
        self.probe = StatusProbe(self.proc.url, period=0.5)
        self.rss_before = rss_kb(self.proc.proc.pid)

    def send(self, method, path, data=None, headers=None):
        if headers is None and method in ("POST", "PUT", "PATCH", "DELETE"):
            headers = {"Content-Type": "application/json"}     # as every upstream client sends
        r = self.session.request(method, self.proc.url + path, data=data, headers=headers, timeout=30)
        self.requests += 1
        assert r.status_code < 500, (method, path, data, r.status_code, r.content)
        return r.status_code, r.content

    def post_json(self, path, obj, **kw):
        return self.send("POST", path, json.dumps(obj), {"Content-Type": "application/json"}, **kw)

    def close(self):
        self.session.close()
        self.proc.stop()


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = Harness(tmp_path_factory.mktemp("fuzz"))
    # a small graph so that queries really traverse something, and resources that must survive
    for i in range(12):
        h.post_json("/api/node", {"ID": "fz-n%d" % i, "Host": "h", "Metadata": {
            "Name": "n%d" % i, "Type": ["veth", "netns", "ovsbridge", "fabric"][i % 4], "Path": "/p",
            "MTU": 1500 + i, "IPV4": ["10.0.0.%d/24" % i], "Captures": [{"ID": "c", "State": "active"}],
            "Nested": {"a": {"b": i}}, "List": [i, str(i)]}})
    for i in range(11):
        h.post_json("/api/edge", {"ID": "fz-e%d" % i, "Host": "h", "Parent": "fz-n%d" % i,
                                  "Child": "fz-n%d" % (i + 1),
                                  "Metadata": {"RelationType": ["ownership", "layer2"][i % 2]}})
    status, body = h.post_json("/api/capture", {"GremlinQuery": "G.V().Has('Name','n1')", "Name": "keep"})
    assert status == 201
    h.keep_capture = json.loads(body)["UUID"]
    try:
        with h.probe:
            yield h
    finally:
        rss_after = rss_kb(h.proc.proc.pid) if h.proc.proc else 0
        print("fuzz: %d requests; analyzer RSS %d KB -> %d KB; /api/status worst %.3fs"
              % (h.requests, h.rss_before, rss_after, h.probe.worst))
        h.close()
        assert tracebacks(h.proc.log_path) == 0, h.proc.log_tail(80)
        h.probe.assert_responsive()
        assert rss_after - h.rss_before < 400 * 1024


# ---- Gremlin queries ---------------------------------------------------------------------------

KEYS = ["Name", "Type", "MTU", "IPV4", "Nested.a.b", "Captures.State", "@ID", "@Revision", "List",
        "RelationType", "Metadata.Name", "Missing", "TID", "Path"]
STEPS0 = ["V", "E", "Count", "Dedup", "Out", "In", "Both", "OutE", "InE", "BothE", "OutV", "InV", "BothV",
          "SubGraph", "Keys", "Sort", "Limit", "Range", "Values", "ValueMap", "Has", "HasNot", "HasKey",
          "HasEither", "Sum", "As", "Select", "ShortestPathTo", "Descendants", "Ascendants", "Neighbors",
          "At", "Context", "Metrics", "Aggregates", "NextHop", "Flows", "Bogus"]
PREDS = ["NE", "NEE", "GT", "GTE", "LT", "LTE", "Inside", "Outside", "Between", "Within", "Without", "Regex",
         "Ipv4Range", "Metadata"]

literal = st.one_of(
    st.sampled_from(KEYS).map(lambda k: "'%s'" % k),
    st.text(alphabet=string.ascii_letters + string.digits + ".*/:-_ ^$[]()\\", max_size=12).map(lambda s: "'%s'" % s),
    st.integers(min_value=0, max_value=2 ** 70).map(str),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda f: "%r" % f),
    st.sampled_from(["true", "false", "ASC", "DESC", "NOW", "FOREVER", "-1", "'-1m'", "'10.0.0.0/24'", "''"]),
)
arg = st.recursive(literal, lambda inner: st.tuples(st.sampled_from(PREDS), st.lists(inner, max_size=3)).map(
    lambda t: "%s(%s)" % (t[0], ",".join(t[1]))), max_leaves=4)
step = st.tuples(st.sampled_from(STEPS0), st.lists(arg, max_size=4)).map(
    lambda t: "%s(%s)" % (t[0], ",".join(t[1])))
generated_query = st.tuples(st.sampled_from(["G", "g", "G.At('-1m')", "", "X"]), st.lists(step, max_size=6)).map(
    lambda t: ".".join([t[0]] + t[1]) if t[0] else ".".join(t[1]))

SEEDS = [
    "G.V().Has('Type','veth').Out().Count()", "G.V().HasEither('Name','n1','MTU',GT(1505)).Values('Name')",
    "G.V('fz-n0').Out().Out().InE().InV().Dedup()", "G.E().Has('RelationType','layer2').SubGraph()",
    "G.V().Has('Name',Regex('n.*')).ShortestPathTo(Metadata('Name','n9'))", "G.V().Has('IPV4',Ipv4Range('10.0.0.0/28'))",
    "G.V().Has('MTU',Between(1500,1505)).Sort(DESC,'MTU').Limit(2)", "G.V().As('a').Out().Select('a')",
    "G.V().Descendants().Count()", "G.V().Neighbors(2).Keys()", "G.V().ValueMap('Name','MTU')",
    "G.V().Has('List',Within(1,'2')).Sum('MTU')", "G.At('-1m', 60).V()", "G.V().HasNot('Missing').Range(1,3)",
    "G.V().Has('Nested.a.b',Inside(1,5)).BothE().BothV().Dedup('Type')", "G.V().Metrics().Aggregates(10)",
]


@st.composite
def mutated_query(draw):
    q = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        if not q:
            break
        i = draw(st.integers(0, len(q)))
        kind = draw(st.integers(0, 3))
        ch = draw(st.sampled_from(list("()'\".,GVabc019-_ \t\n\\") + ["\x00", "\u00e9", "\U0001f600", "Has(", "))"]))
        if kind == 0:
            q = q[:i] + ch + q[i:]
        elif kind == 1:
            q = q[:i] + q[i + 1:]
        elif kind == 2:
            q = q[:i] + ch + q[i + 1:]
        else:
            j = draw(st.integers(0, len(q)))
            q = q[:min(i, j)] + q[max(i, j):] * draw(st.integers(0, 2))
    return q


@settings(max_examples=2400, **COMMON)
@given(q=generated_query)
def test_fuzz_generated_gremlin(harness, q):
    status, body = harness.post_json("/api/topology", {"GremlinQuery": q})
    assert status in (200, 204, 400), (q, status, body)
    if status == 200:
        json.loads(body)


@settings(max_examples=2400, **COMMON)
@given(q=mutated_query())
def test_fuzz_mutated_gremlin(harness, q):
    status, body = harness.post_json("/api/topology", {"GremlinQuery": q})
    assert status in (200, 204, 400), (q, status, body)


@settings(max_examples=600, **COMMON)
@given(q=st.one_of(mutated_query(), generated_query))
def test_fuzz_queries_in_resources(harness, q):
    """Queries also reach the capture/rule/injection validators and the Count decoration."""
    for path, body in (("/api/capture", {"GremlinQuery": q, "Type": "pcap"}),
                       ("/api/edgerule", {"Src": q, "Dst": q, "Metadata": {"RelationType": "fuzz"}}),
                       ("/api/injectpacket", {"Src": q, "Dst": q, "Type": "icmp4"})):
        status, data = harness.post_json(path, body)
        if status == 201:
            rid = json.loads(data)["UUID"]
            harness.send("GET", path)
            assert harness.send("DELETE", "%s/%s" % (path, rid))[0] == 200


# ---- API bodies --------------------------------------------------------------------------------

json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)

FIELDS = {
    "capture": ["GremlinQuery", "BPFFilter", "Name", "Type", "Port", "SamplingRate", "PollingInterval",
                "RawPacketLimit", "HeaderSize", "ExtraTCPMetric", "IPDefrag", "LayerKeyMode", "ExtraLayers",
                "Target", "TargetType", "UUID", "Count"],
    "alert": ["Name", "Description", "Expression", "Action", "Trigger", "UUID", "CreateTime"],
    "injectpacket": ["Src", "Dst", "SrcIP", "DstIP", "SrcMAC", "DstMAC", "SrcPort", "DstPort", "Type", "Payload",
                     "ICMPID", "Count", "Interval", "Mode", "IncrementPayload", "Pcap", "TTL"],
    "noderule": ["Name", "Description", "Metadata", "Action", "Query"],
    "edgerule": ["Name", "Src", "Dst", "Metadata"],
    "workflow": ["Name", "Title", "Parameters", "Source"],
    "node": ["ID", "Host", "Origin", "Metadata", "CreatedAt", "UpdatedAt", "DeletedAt", "Revision"],
    "edge": ["ID", "Host", "Parent", "Child", "Metadata", "CreatedAt", "Revision"],
}
GOOD = {
    "capture": {"GremlinQuery": "G.V().Has('Name','n2')", "BPFFilter": "icmp", "HeaderSize": 100},
    "alert": {"Expression": "G.V().Count()", "Trigger": "duration:5s"},
    "injectpacket": {"Src": "G.V('fz-n0')", "Dst": "G.V('fz-n1')", "DstMAC": "aa:bb:cc:dd:ee:ff",
                     "SrcMAC": "aa:bb:cc:dd:ee:00", "Type": "icmp4"},
    "noderule": {"Action": "update", "Query": "G.V().Has('Name','n3')", "Metadata": {"k": "v"}},
    "edgerule": {"Src": "G.V('fz-n0')", "Dst": "G.V('fz-n5')", "Metadata": {"RelationType": "fuzzlink"}},
    "workflow": {"Name": "wf", "Source": "function(){}", "Parameters": [{"Name": "a", "Type": "string"}]},
    "node": {"ID": "fz-new", "Host": "h", "Metadata": {"Name": "x", "Type": "t"}},
    "edge": {"ID": "fz-enew", "Parent": "fz-n0", "Child": "fz-n3", "Metadata": {"RelationType": "r"}},
}


@st.composite
def api_body(draw):
    kind = draw(st.sampled_from(sorted(FIELDS)))
    mode = draw(st.integers(0, 3))
    if mode == 0:            # anything at all
        body = draw(json_value)
    elif mode == 1:          # the right fields with random values
        body = {k: draw(json_value) for k in draw(st.lists(st.sampled_from(FIELDS[kind]), max_size=6, unique=True))}
    else:                    # a valid body with one or two fields replaced
        body = dict(GOOD[kind])
        for _ in range(mode - 1):
            body[draw(st.sampled_from(FIELDS[kind]))] = draw(json_value)
    return kind, body


@settings(max_examples=3000, **COMMON)
@given(kb=api_body(), yaml=st.booleans())
def test_fuzz_api_bodies(harness, kb, yaml):
    kind, body = kb
    if yaml:
        import yaml as y
        data, hdrs = y.safe_dump(body), {"Content-Type": "application/yaml"}
    else:
        data, hdrs = json.dumps(body), {"Content-Type": "application/json"}
    status, resp = harness.send("POST", "/api/" + kind, data, hdrs)
    assert status in (201, 400, 409), (kind, body, status, resp)
    if status == 201:
        obj = json.loads(resp)
        rid = obj.get("UUID") or obj.get("ID")
        assert harness.send("GET", "/api/%s/%s" % (kind, rid))[0] == 200
        assert harness.send("DELETE", "/api/%s/%s" % (kind, rid))[0] == 200


raw_bytes = st.one_of(st.binary(max_size=60), st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
                      st.sampled_from([b"{", b"[", b"null", b"\xff\xfe", b"{\"GremlinQuery\": NaN}", b"1e999",
                                       b"[" * 5000, b"a: b: c", b"!!python/object:os.system {}"]))


@settings(max_examples=700, **COMMON)
@given(data=raw_bytes, path=st.sampled_from(["/api/topology", "/api/node", "/api/edge", "/api/capture",
                                             "/api/alert", "/api/noderule", "/api/workflow", "/login"]),
       ctype=st.sampled_from(["application/json", "application/yaml", "application/x-www-form-urlencoded",
                              "text/plain"]),
       ttl=st.sampled_from([None, "", "5s", "-1s", "1h30m", "abc", "99999999999999999h"]))
def test_fuzz_raw_bodies(harness, data, path, ctype, ttl):
    hdrs = {"Content-Type": ctype}
    if ttl is not None:
        hdrs["X-Resource-TTL"] = ttl
    status, _ = harness.send("POST", path, data, hdrs)
    assert status < 500


@settings(max_examples=800, **COMMON)
@given(patch=st.one_of(json_value, st.lists(st.fixed_dictionaries({
    "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
    "path": st.sampled_from(["/Metadata/x", "/Metadata/Name", "/Metadata", "/ID", "/Metadata/Nested/a/b", "",
                             "/Metadata/List/0", "/Metadata/List/-", "/Revision", "x", "/Metadata/~1", "/Parent"]),
    "value": json_value, "from": st.sampled_from(["/Metadata/MTU", "/Metadata", "/nope", "/Host"])}), max_size=4)),
    target=st.sampled_from(["/api/node/fz-n1", "/api/edge/fz-e1", "/api/node/none", "/api/capture/none"]))
def test_fuzz_patches(harness, patch, target):
    status, _ = harness.send("PATCH", target, json.dumps(patch), {"Content-Type": "application/json"})
    assert status in (200, 304, 400, 404)


# ---- issue 9 attack shapes ---------------------------------------------------------------------
ALIAS_BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    "%s: &%s [%s]\n" % (c, c, ",".join(["*" + p] * 9)) for p, c in zip("abcdefgh", "bcdefghi"))


@st.composite
def attack_request(draw):
    kind = draw(st.integers(0, 7))
    path = draw(st.sampled_from(["/api/node", "/api/edge", "/api/capture", "/api/alert", "/api/noderule",
                                 "/api/topology", "/api/injectpacket"]))
    js = {"Content-Type": "application/json"}
    if kind == 0:      # lone surrogates, in values and keys
        s = draw(st.sampled_from(["\\ud800", "\\udfff", "a\\ud83d", "\\ud800\\udc00"]))
        body = '{"ID": "sur", "Metadata": {"Name": "%s", "%s": 1, "Type": "t"}, "GremlinQuery": "G.V(\'%s\')"}' % (s, s, s)
        return path, body.encode(), draw(st.sampled_from([js, {"Content-Type": "application/yaml"}]))
    if kind == 1:      # deep JSON
        d = draw(st.sampled_from([99, 101, 150, 1000, 100000]))
        return path, b'{"Metadata": ' + b"[" * d + b"]" * d + b"}", js
    if kind == 2:      # the alias bomb and other anchors
        return path, draw(st.sampled_from([ALIAS_BOMB, "Name: *x", "a: &x 1\nb: *x"])).encode(), \
            {"Content-Type": "application/yaml"}
    if kind == 3:      # huge bodies
        n = draw(st.sampled_from([1024 * 1024 + 1, 3 * 1024 * 1024]))
        return path, b'{"Name": "' + b"x" * n + b'"}', js
    if kind == 4:      # wrong types
        return path, json.dumps({draw(st.sampled_from(FIELDS["capture"] + FIELDS["node"])): draw(json_value)}).encode(), js
    if kind == 5:      # ReDoS
        rx = draw(st.sampled_from(["(a+)+", "(a|a)*b", "(.*a){20}", "((ab)*)*", "(?P<x>a)(?P=x)", "(a*)*$"]))
        q = "G.V().Has('Name', Regex('%s'))" % rx
        body = {"GremlinQuery": q, "Expression": q, "Query": q, "Action": "update", "Metadata": {"k": "v"}}
        return path, json.dumps(body).encode(), js
    if kind == 6:      # path explosion
        q = "G.V()" + ".Both()" * draw(st.integers(3, 9)) + draw(st.sampled_from(["", ".Count()", ".Dedup()"]))
        return "/api/topology", json.dumps({"GremlinQuery": q}).encode(), js
    return path, json.dumps({"GremlinQuery": draw(mutated_query())}).encode(), js


@settings(max_examples=1200, **COMMON)
@given(req=attack_request())
def test_fuzz_attack_shapes(harness, req):
    path, data, headers = req
    status, body = harness.send("POST", path, data, headers)
    assert status in (200, 201, 204, 400, 409, 413, 415), (path, data[:200], status, body)


def test_fuzz_left_the_analyzer_whole(harness):
    """Runs last in the module: the sentinel resources and the graph survived > 10,000 requests."""
    assert harness.requests >= 10000, harness.requests
    status, body = harness.send("GET", "/api/capture/" + harness.keep_capture)
    assert status == 200 and json.loads(body)["Name"] == "keep"
    status, body = harness.post_json("/api/topology", {"GremlinQuery": "G.V().Has('Name','n0').Count()"})
    assert body == b"1"
    status, body = harness.post_json("/api/topology", {"GremlinQuery": "G.V().Has('Name', Regex('n[0-9]+')).Count()"})
    assert body == b"12"
    status, body = harness.send("GET", "/api/topology")
    nodes = json.loads(body)["Nodes"]
    assert all(n["Metadata"].get("Name") and n["Metadata"].get("Type") for n in nodes)
