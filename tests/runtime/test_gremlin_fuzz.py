"""Property-based fuzzing of the Gremlin parser and executor: random strings, generated queries
and mutations of valid queries. Whatever the input, the only exception is GremlinError."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skydive_runtime.gremlin import GremlinError, QueryContext, execute, parse

from .gremlin_fixtures import worked_example_graph

GRAPH = worked_example_graph()
CTX = QueryContext(GRAPH, now=lambda: 1_700_000_000_000)
# 4 fuzz tests x 2600 examples = 10,400 generated/mutated queries
FUZZ = settings(max_examples=2600, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

VALID = [
    'G.V().Has("Type","intf")', 'G.V().HasEither("Type","intf","Name","Node4")', 'G.V().Count()',
    'G.V().Has("Value",1).Out().Has("Value",2).OutE().Has("Direction","Left").OutV().Out()',
    'G.E().Dedup("Direction")', 'G.V().Has("Value",Within(1,2,4))', 'G.V().Has("MTU",Ne(1200))',
    'G.V().Has("Value",1).ShortestPathTo(Metadata("Value",3),Metadata("Direction","Left"))',
    'G.E().Has("Name","e3").BothV()', "G.V().Has('Name',Regex('.*ode.*'))", "G.V().Values('Type')",
    'G.E().Has("Direction","Left").SubGraph().V()', 'G.V().Has("IPV4",Ipv4Range("192.168.0.0/24"))',
    'G.V().HasNot("ZZZ").Limit(1)', "G.V().Sort(DESC, 'Value').Range(1, 3)", "G.V().Keys()",
    "G.V('n1').As('a').Out().As('b').Select('a','b').Dedup('Type')", "G.At('-1m', 60).V()",
    "G.V().Has('Bytes', Between(1000, 3000)).Sum('Bytes')", "G.V().Has('Value', Inside(1, 4), 'X', NEE(3))",
    "G.V('n1').Descendants('Name', 'e1', 2).Neighbors(1).Ascendants()", "G.V().Metrics().Aggregates(10).Sum()",
    "G.V().NextHop('10.0.0.1')", "G.V().ValueMap('Value', 'Name')", "G.V().BothE('Name', Regex('e.*')).InV().G",
    "g.v().has('Value', gte(2), 'Value', lte(3)).count()", "G.V().Has('@ID', 'n1', 'Map.a', 1)",
]

ALPHABET = st.sampled_from(list("GgVvEe.()'\",0123456789 -_aZ#\n\t\\$^*[]{}") + ["Has", "Out", "Within",
                                                                                  "Metadata", "NE", "At"])


def check(query, execute_it=True):
    try:
        q = parse(query)
    except GremlinError as exc:
        assert isinstance(str(exc), str) and str(exc)
        return "parse-error"
    if not execute_it:
        return "parsed"
    try:
        res = q.execute(CTX)
    except GremlinError as exc:
        assert str(exc)
        return "exec-error"
    json.dumps(res.to_json_value())
    if res.is_graph:
        res.to_dot()
    return "ok"


@FUZZ
@given(st.text(max_size=80))
def test_random_unicode_strings(s):
    check(s)


@FUZZ
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_random_token_soup(s):
    check(s)


@st.composite
def mutated(draw):
    q = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "swap", "truncate", "duplicate"]))
        i = draw(st.integers(0, max(0, len(q) - 1)))
        if op == "insert":
            q = q[:i] + draw(ALPHABET) + q[i:]
        elif op == "delete":
            q = q[:i] + q[i + 1:]
        elif op == "replace":
            q = q[:i] + draw(ALPHABET) + q[i + 1:]
        elif op == "swap" and i + 1 < len(q):
            q = q[:i] + q[i + 1] + q[i] + q[i + 2:]
        elif op == "truncate":
            q = q[:i]
        elif op == "duplicate":
            j = draw(st.integers(i, len(q)))
            q = q[:j] + q[i:j] + q[j:]
    return q


@FUZZ
@given(mutated())
def test_mutations_of_valid_queries(q):
    check(q)


LITERAL = st.one_of(st.text(alphabet="abcdefNnode0123.*|/", max_size=8).map(lambda s: "'%s'" % s),
                    st.integers(0, 3000).map(str), st.sampled_from(["true", "FALSE", "1.5", "2.0", "NOW", "ASC"]))
KEY = st.sampled_from(["'Value'", "'Type'", "'Name'", "'IPV4'", "'@ID'", "'Map.a'", "'List'", "'Direction'", "'Nope'"])
PRED = st.one_of(
    LITERAL,
    st.builds(lambda n, a: "%s(%s)" % (n, a), st.sampled_from(["Ne", "NEE", "Gt", "Lte", "Regex", "Ipv4Range"]), LITERAL),
    st.builds(lambda n, a, b: "%s(%s, %s)" % (n, a, b), st.sampled_from(["Inside", "Between", "Within", "Without"]),
              LITERAL, LITERAL),
)
PAIR = st.builds(lambda k, v: "%s, %s" % (k, v), KEY, PRED)
ARGS = st.one_of(st.just(""), KEY, PAIR, st.builds(lambda a, b: a + ", " + b, PAIR, PAIR),
                 st.integers(0, 5).map(str), LITERAL,
                 st.builds(lambda p: "Metadata(%s)" % p, PAIR))
FILTER_ARGS = st.one_of(st.just(""), KEY, PAIR, st.builds(lambda a, b: a + ", " + b, PAIR, PAIR))
INT = st.integers(0, 6).map(str)
STEP_ARGS = {
    "V": st.sampled_from(["", "", "'n1'", "'n9'"]), "E": st.sampled_from(["", "'e1'"]),
    "Has": st.one_of(KEY, PAIR, st.builds(lambda a, b: a + ", " + b, PAIR, PAIR)),
    "HasEither": st.builds(lambda a, b: a + ", " + b, PAIR, PAIR), "HasKey": KEY, "HasNot": KEY,
    "Out": FILTER_ARGS, "In": FILTER_ARGS, "Both": FILTER_ARGS, "OutV": FILTER_ARGS, "InV": FILTER_ARGS,
    "BothV": FILTER_ARGS, "OutE": FILTER_ARGS, "InE": FILTER_ARGS, "BothE": FILTER_ARGS,
    "SubGraph": FILTER_ARGS, "Dedup": st.one_of(st.just(""), KEY), "Count": st.just(""),
    "Keys": st.just(""), "Metrics": st.sampled_from(["", "'SFlow'"]), "Values": KEY, "Sum": KEY,
    "ValueMap": st.one_of(KEY, st.builds(lambda a, b: a + ", " + b, KEY, KEY)), "Limit": INT,
    "Range": st.builds(lambda a, b: a + ", " + b, INT, INT),
    "Sort": st.one_of(st.just(""), KEY, KEY.map(lambda k: "DESC, " + k)),
    "ShortestPathTo": st.one_of(PAIR.map(lambda p: "Metadata(%s)" % p),
                                st.builds(lambda a, b: "Metadata(%s), Metadata(%s)" % (a, b), PAIR, PAIR)),
    "As": st.just("'a'"), "Select": st.just("'a'"), "At": st.sampled_from(["'-1m'", "NOW", "5, 10"]),
    "Descendants": st.one_of(st.just(""), INT, PAIR, PAIR.map(lambda p: p + ", 2")),
    "Ascendants": st.one_of(st.just(""), INT), "Neighbors": st.one_of(st.just(""), INT, PAIR),
    "NextHop": st.just("'10.0.0.1'"), "Aggregates": st.one_of(st.just(""), st.integers(1, 60).map(str)),
}
STEP = st.sampled_from(sorted(STEP_ARGS)).flatmap(
    lambda n: st.one_of(STEP_ARGS[n], STEP_ARGS[n], STEP_ARGS[n], ARGS).map(lambda a: ".%s(%s)" % (n, a)))
FIRST = st.sampled_from([".V()", ".V()", ".E()", ".V('n1')"])


@FUZZ
@given(st.builds(lambda first, steps: "G" + first + "".join(steps), FIRST, st.lists(STEP, max_size=5)))
def test_generated_queries(q):
    check(q)


def test_fuzz_corpus_is_valid():
    for q in VALID:
        assert check(q) in ("ok", "exec-error"), q
