"""Gremlin dialect: parsing, core steps, predicates, result shapes (spec §4.1–4.5, §13)."""

import json

import pytest

from skydive_runtime.graph import Graph
from skydive_runtime.gremlin import GremlinError, QueryContext, execute, parse

from .gremlin_fixtures import ids, worked_example_graph


@pytest.fixture(scope="module")
def g():
    return worked_example_graph()


def run(g, q):
    return execute(q, QueryContext(g)).to_json_value()


# ---- §4.5 worked examples, verbatim ---------------------------------------------------------
WORKED = [
    ('G.V().Has("Type","intf")', 2),
    ('G.V().HasEither("Type","intf","Name","Node4")', 3),
    ('G.V().HasEither("Bytes",1024,"Bytes",2024)', 2),
    ('G.V().Has("List","111")', 1),
    ('G.V().Has("Indexes",6)', 1),
    ('G.V().Has("Type")', 2),
    ('G.V().Has("Value",1).Out().Has("Value",2).OutE().Has("Direction","Left").OutV().Out()', 1),
    ('G.V().Out().Has("Value",4)', 2),
    ('G.V().Out().Has("Value",4).Dedup()', 1),
    ('G.E().Dedup("Direction")', 4),
    ('G.V().Dedup("Type")', 3),
    ('G.V().Has("Value",Within(1,2,4))', 3),
    ('G.V().Has("MTU",Ne(1200))', 1),
    ('G.V().Has("Value",2).Both()', 2),
    ('G.E().Has("Name","e3").BothV()', 2),
    ('G.V().Has("Name",Regex(".*ode.*"))', 1),
    ('G.E().Has("Direction","Left").SubGraph().V()', 3),
    ('G.V().Has("Value",2).ShortestPathTo(Metadata("Value",4)).SubGraph().V()', 3),
    ('G.V().Has("IPV4",Ipv4Range("192.168.0.0/24"))', 1),
    ('G.V().HasNot("ZZZ").Limit(1)', 1),
]


@pytest.mark.parametrize("query,count", WORKED)
def test_worked_examples_counts(g, query, count):
    assert len(run(g, query)) == count


def test_worked_examples_exact(g):
    assert run(g, 'G.V().Count()') == 4
    assert ids(run(g, 'G.V().Has("List","111")')) == ["n1"]
    assert ids(run(g, 'G.V().Has("Indexes",6)')) == ["n4"]
    assert ids(run(g, 'G.V().Has("Value",1).Out().Has("Value",2).OutE().Has("Direction","Left").OutV().Out()')) == ["n4"]
    assert ids(run(g, 'G.V().Out().Has("Value",4)')) == ["n4", "n4"]
    assert ids(run(g, 'G.V().Has("MTU",Ne(1200))')) == ["n3"]
    assert ids(run(g, 'G.V().Has("Value",1).ShortestPathTo(Metadata("Value",3),Metadata("Direction","Left"))')) == [["n1", "n2", "n3"]]
    assert sorted(ids(run(g, 'G.V().Has("Value",2).Both()'))) == ["n1", "n3"]
    assert ids(run(g, 'G.E().Has("Name","e3").BothV()')) == ["n3", "n4"]
    assert ids(run(g, 'G.V().Has("Name",Regex(".*ode.*"))')) == ["n4"]
    assert run(g, 'G.V().Values("Type")') == ["intf", "intf"]
    assert sorted(ids(run(g, 'G.V().Has("Value",2).ShortestPathTo(Metadata("Value",4)).SubGraph().V()'))) == ["n2", "n3", "n4"]
    assert ids(run(g, 'G.V().Has("IPV4",Ipv4Range("192.168.0.0/24"))')) == ["n3"]


# ---- result shapes ---------------------------------------------------------------------------
def test_count_is_a_bare_int(g):
    v = run(g, "G.V().Count()")
    assert v == 4 and type(v) is int
    assert json.dumps(v) == "4"
    assert run(g, "G.E().Count()") == 5
    assert run(g, "G.V().Has('Type', 'nope').Count()") == 0


def test_graph_is_a_one_element_array(g):
    v = run(g, "G")
    assert isinstance(v, list) and len(v) == 1
    assert set(v[0]) == {"Nodes", "Edges"}
    assert len(v[0]["Nodes"]) == 4 and len(v[0]["Edges"]) == 5
    json.dumps(v)
    sub = run(g, "G.V().Has('Value', 1).SubGraph()")
    assert [n["ID"] for n in sub[0]["Nodes"]] == ["n1"] and sub[0]["Edges"] is None


def test_empty_graph_has_null_lists():
    assert run(Graph(), "G") == [{"Nodes": None, "Edges": None}]
    assert run(worked_example_graph(), "G.V().Has('Type', 'nope').SubGraph()") == [{"Nodes": None, "Edges": None}]


def test_node_and_edge_json_is_upstream(g):
    n = run(g, "G.V('n1')")[0]
    assert list(n) == ["ID", "Metadata", "Host", "Origin", "CreatedAt", "UpdatedAt", "DeletedAt", "Revision"]
    assert n["DeletedAt"] is None and n["Host"] == "h1"
    e = run(g, "G.E('e1')")[0]
    assert e["Parent"] == "n1" and e["Child"] == "n2"


def test_empty_node_list_is_empty_array(g):
    assert run(g, "G.V().Has('Type', 'nope')") == []
    assert run(g, "G.E().Has('Name', 'nope')") == []


def test_values_null_when_absent(g):
    assert run(g, "G.V().Values('Nope')") is None
    assert run(g, "G.V().Has('Value', 1).Values('Map')") == [{"a": 1}]
    assert run(g, "G.V().Has('Value', 1).Values('List')") == [["111", "222"]]
    assert run(g, "G.V().Values('@ID')") == ["n1", "n2", "n3", "n4"]
    assert run(g, "G.V().Values('Map.a')") == [1]


def test_values_skips_empty_lists_and_maps():
    gr = Graph()
    gr.new_node({"L": []}, id="a")
    gr.new_node({"L": {}}, id="b")
    gr.new_node({"L": [1]}, id="c")
    assert run(gr, "G.V().Values('L')") == [[1]]


def test_keys(g):
    keys = run(g, "G.V().Keys()")
    for k in ("@ID", "@Host", "@Origin", "@CreatedAt", "@UpdatedAt", "@DeletedAt", "@Revision",
              "Value", "Type", "Map", "Map.a", "Indexes"):
        assert k in keys
    assert len(keys) == len(set(keys))
    assert run(g, "G.V().Has('Type', 'nope').Keys()") is None


def test_value_map(g):
    assert run(g, "G.V().ValueMap('Name', 'MTU')") == [{"MTU": 1500}, {"Name": "Node4"}]
    assert run(g, "G.V().ValueMap('Nope')") is None


def test_sum(g):
    assert run(g, "G.V().Sum('Bytes')") == 1024 + 2024 + 4024
    assert run(g, "G.V().Sum('Nope')") == 0
    with pytest.raises(GremlinError):
        run(g, "G.V().Sum('Type')")
    with pytest.raises(GremlinError):
        run(g, "G.V().Sum()")


def test_paths_are_arrays_of_arrays(g):
    v = run(g, "G.V('n1').ShortestPathTo(Metadata('Value', 4))")
    assert ids(v) == [["n1", "n4"]]
    assert run(g, "G.V('n1').ShortestPathTo(Metadata('Value', 99))") == []
    assert ids(run(g, "G.V('n1').ShortestPathTo(Metadata('Value', 1))")) == [["n1"]]
    assert run(g, "G.V().ShortestPathTo(Metadata('Value', 4)).Count()") == 4


def test_shortest_path_goes_both_ways(g):
    (path,) = ids(run(g, "G.V('n4').ShortestPathTo(Metadata('Value', 2))"))
    assert len(path) == 3 and path[0] == "n4" and path[-1] == "n2"
    # the edge filter restricts the edges used
    assert ids(run(g, "G.V('n4').ShortestPathTo(Metadata('Value', 2), Metadata('Name', Within('e4', 'e1')))")) \
        == [["n4", "n1", "n2"]]
    assert ids(run(g, "G.V('n4').ShortestPathTo(Metadata('Value', 2), Metadata('Name', Within('e3', 'e2')))")) \
        == [["n4", "n3", "n2"]]
    assert run(g, "G.V('n4').ShortestPathTo(Metadata('Value', 2), Metadata('Name', 'e3'))") == []


# ---- steps -----------------------------------------------------------------------------------
def test_inv_is_parent_outv_is_child(g):
    assert ids(run(g, "G.E('e1').InV()")) == ["n1"]
    assert ids(run(g, "G.E('e1').OutV()")) == ["n2"]
    assert ids(run(g, "G.E('e1').BothV()")) == ["n1", "n2"]
    assert ids(run(g, "G.V('n2').InE().InV()")) == ["n1"]


def test_out_filters_the_neighbour_not_the_edge(g):
    assert ids(run(g, "G.V('n1').Out('Value', 4)")) == ["n4"]
    assert ids(run(g, "G.V('n1').Out('Direction', 'Left')")) == []
    assert ids(run(g, "G.V('n1').OutE('Direction', 'Left')")) == ["e1"]


def test_in_out_both(g):
    assert sorted(ids(run(g, "G.V('n4').In()"))) == ["n1", "n3"]
    assert sorted(ids(run(g, "G.V('n1').Out()"))) == ["n2", "n3", "n4"]
    assert sorted(ids(run(g, "G.V('n3').Both()"))) == ["n1", "n2", "n4"]
    assert sorted(ids(run(g, "G.V('n3').In('Value', Gt(1))"))) == ["n2"]


def test_edge_steps(g):
    assert sorted(ids(run(g, "G.V('n1').OutE()"))) == ["e1", "e4", "e5"]
    assert sorted(ids(run(g, "G.V('n3').InE()"))) == ["e2", "e5"]
    assert sorted(ids(run(g, "G.V('n3').BothE()"))) == ["e2", "e3", "e5"]
    assert ids(run(g, "G.V('n3').BothE('Mode', 'Direct')")) == ["e5"]
    assert ids(run(g, "G.E().Has('Mode')")) == ["e5"]
    assert sorted(ids(run(g, "G.E().HasNot('Direction')"))) == ["e3", "e4", "e5"]
    assert ids(run(g, "G.E().HasKey('Mode')")) == ["e5"]
    assert ids(run(g, "G.E('e2').OutV()")) == ["n3"]
    assert run(g, "G.E('e2').InV().Values('Value')") == [2]


def test_v_and_e_by_id(g):
    assert ids(run(g, "G.V('n3')")) == ["n3"]
    with pytest.raises(GremlinError, match="Node 'xyz' does not exist"):
        run(g, "G.V('xyz')")
    with pytest.raises(GremlinError, match="Edge 'xyz' does not exist"):
        run(g, "G.E('xyz')")


def test_v_with_filter_pairs(g):
    # V(k, v) is what V().Has(k, v) reduces to
    assert ids(run(g, "G.V().Has('Type', 'intf', 'Value', 2)")) == ["n2"]
    assert ids(run(g, "G.V().Has('Value', 1).Has('Type', 'intf')")) == ["n1"]


def test_has_key_and_has_not(g):
    assert ids(run(g, "G.V().HasKey('MTU')")) == ["n3"]
    assert ids(run(g, "G.V().HasNot('Value')")) == []
    assert sorted(ids(run(g, "G.V().HasNot('IPV4')"))) == ["n1"]


def test_has_either_needs_any(g):
    assert sorted(ids(run(g, "G.V().HasEither('Value', 1, 'MTU', 1500)"))) == ["n1", "n3"]


def test_special_getters(g):
    assert ids(run(g, "G.V().Has('@ID', 'n2')")) == ["n2"]
    assert len(run(g, "G.V().Has('@Host', 'h1')")) == 4
    assert len(run(g, "G.V().Has('@Origin', 'analyzer.h1')")) == 4
    assert len(run(g, "G.V().Has('@Revision', 1)")) == 4
    assert ids(run(g, "G.V().Has('@CreatedAt', Gt(1600000000001))")) == ["n3", "n4"]
    assert len(run(g, "G.V().Has('@DeletedAt', 0)")) == 4
    assert ids(run(g, "G.V().Has('Metadata.Value', 3)")) == ["n3"]
    assert ids(run(g, "G.E().Has('Parent', 'n3')")) == ["e3"]
    assert ids(run(g, "G.E().Has('Child', 'n3')")) == ["e2", "e5"]


def test_dedup_with_keys_keeps_elements_lacking_keys(g):
    assert ids(run(g, "G.V().Dedup('Type')")) == ["n1", "n3", "n4"]
    assert ids(run(g, "G.V().Dedup('Nope')")) == ["n1", "n2", "n3", "n4"]
    assert len(run(g, "G.V().Out().Dedup()")) == 3
    assert len(run(g, "G.V().Dedup('Type', 'Value')")) == 4


def test_limit_and_range(g):
    assert ids(run(g, "G.V().Limit(2)")) == ["n1", "n2"]
    assert ids(run(g, "G.V().Range(1, 3)")) == ["n2", "n3"]
    assert ids(run(g, "G.V().Range(3, 10)")) == ["n4"]
    assert ids(run(g, "G.V().Range(3, 1)")) == []
    assert ids(run(g, "G.V().Limit(0)")) == []
    assert ids(run(g, "G.V().Out().Range(1, 2)")) == ids(run(g, "G.V().Out()"))[1:2]
    assert ids(run(g, "G.V().Has('Type', 'intf').Limit(1)")) == ["n1"]
    assert ids(run(g, "G.E().Limit(1)")) == ["e1"]
    assert run(g, "G.V().Values('Value').Limit(2)") == [1, 2]


def test_sort(g):
    assert ids(run(g, "G.V().Sort(DESC, 'Value')")) == ["n4", "n3", "n2", "n1"]
    assert ids(run(g, "G.V().Sort(ASC, 'Value')")) == ["n1", "n2", "n3", "n4"]
    assert ids(run(g, "G.V().Sort('Bytes')")) == ["n1", "n2", "n4", "n3"]   # missing key last
    assert ids(run(g, "G.V().Sort(DESC, 'Bytes')")) == ["n4", "n2", "n1", "n3"]
    assert ids(run(g, "G.V().Sort()")) == ["n1", "n2", "n3", "n4"]   # Metadata.CreatedAt: no-op
    assert ids(run(g, "G.V().Sort(DESC, '@CreatedAt')")) == ["n4", "n3", "n2", "n1"]
    assert ids(run(g, "G.V().Has('Type').Sort(DESC, 'Type')")) == ["n1", "n2"]  # stable


def test_as_select(g):
    v = run(g, "G.V('n1').As('a').Out().As('b').Select('a', 'b')")
    assert ids(v)[0] == "n1" and sorted(ids(v)[1:]) == ["n2", "n3", "n4"]
    with pytest.raises(GremlinError, match="Key z not registered"):
        run(g, "G.V().Select('z')")


def test_g_step_goes_back_to_the_graph(g):
    assert len(run(g, "G.V().Has('Value', 1).G")[0]["Nodes"]) == 4


def test_values_has_on_maps():
    gr = Graph()
    gr.new_node({"Neighbors": [{"IP": "1.1.1.1", "MAC": "aa"}, {"IP": "2.2.2.2", "MAC": "bb"}]}, id="a")
    assert run(gr, "G.V().Values('Neighbors').Count()") == 1


def test_dotted_keys_and_lists():
    gr = Graph()
    gr.new_node({"Captures": [{"ID": "c1", "State": "active"}, {"ID": "c2"}], "Ovs": {"OtherConfig": {"x": "1"}}}, id="a")
    gr.new_node({"Captures": [{"ID": "c3"}]}, id="b")
    gr.new_node({"ExtID.iface-id": "port1"}, id="c")
    assert ids(run(gr, "G.V().Has('Captures.ID', 'c2')")) == ["a"]
    assert ids(run(gr, "G.V().Has('Ovs.OtherConfig.x', '1')")) == ["a"]
    assert ids(run(gr, "G.V().Has('Captures.ID', NEE('c1'))")) == ["b", "c"]
    assert ids(run(gr, "G.V().Has('Captures.ID', NE('c1'))")) == ["b"]
    assert ids(run(gr, "G.V().Has('ExtID.iface-id', 'port1')")) == ["c"]
    # NE/Without on a list: no element may be equal (upstream Not(Term) semantics)
    assert ids(run(gr, "G.V().Has('Captures.ID', Without('c1'))")) == ["b", "c"]   # missing key matches
    assert ids(run(gr, "G.V().Has('Captures.ID', Without('c1', 'c3'))")) == ["c"]
    assert ids(run(gr, "G.V().Has('Captures.ID', Within('c1', 'c3'))")) == ["a", "b"]


def test_ipv4_lists_match_any_element_but_not_without_cidr():
    gr = Graph()
    gr.new_node({"IPV4": ["10.0.0.1/24", "172.16.0.1/16"]}, id="a")
    assert ids(run(gr, "G.V().Has('IPV4', '172.16.0.1/16')")) == ["a"]
    assert ids(run(gr, "G.V().Has('IPV4', '10.0.0.1')")) == []
    assert ids(run(gr, "G.V().Has('IPV4', Ipv4Range('10.0.0.0/8'))")) == ["a"]
    assert ids(run(gr, "G.V().Has('IPV4', IPV4RANGE('192.168.0.0/16'))")) == []


def test_invalid_step_on_value(g):
    with pytest.raises(GremlinError, match="Invalid step 'Out' on values"):
        run(g, "G.V().Count().Out()")
    with pytest.raises(GremlinError, match="Invalid step 'OutV' on nodes"):
        run(g, "G.V().OutV()")
    with pytest.raises(GremlinError, match="Invalid step 'Out' on edges"):
        run(g, "G.E().Out()")
    with pytest.raises(GremlinError, match="Invalid step 'V' on nodes"):
        run(g, "G.V().V()")


def test_case_insensitive_keywords(g):
    assert run(g, "g.v().has('Type', 'intf').count()") == 2
    assert run(g, "G.V().HAS('Type', 'intf').COUNT()") == 2
    assert run(g, "G.V().hAs('Value', within(1, 2)).Count()") == 2
    assert ids(run(g, "g.V().sort(desc, 'Value').limit(1)")) == ["n4"]
    assert run(g, "G.V().Has('Type', 'intf', 'Name', regex('no.*')).Count()") == 0
    assert run(g, "G.V().Has('Type', REGEX('in.*')).Count()") == 2
    assert run(g, "G.V().Has('Value', Regex('1|2')).Count()") == 0   # regex only matches strings


def test_strings_quotes_and_whitespace(g):
    assert run(g, 'G.V().Has("Type", \'intf\').Count()') == 2
    assert run(g, "G . V ( ) \n\t. Has ( 'Type' , 'intf' ) . Count ( )") == 2
    # a string ends at the next quote of either kind: "intf' is the string intf
    assert run(g, "G.V().Has(\"Type\", \"intf').Count()") == 2


def test_numbers_bools_and_floats():
    gr = Graph()
    gr.new_node({"Up": True, "N": 2, "F": 1.5}, id="a")
    gr.new_node({"Up": False, "N": 3}, id="b")
    assert ids(run(gr, "G.V().Has('Up', true)")) == ["a"]
    assert ids(run(gr, "G.V().Has('Up', FALSE)")) == ["b"]
    assert ids(run(gr, "G.V().Has('N', 2.0)")) == ["a"]
    assert ids(run(gr, "G.V().Has('N', Within(2.0, 7))")) == ["a"]
    assert ids(run(gr, "G.V().Has('F', 1.5)")) == ["a"]
    assert ids(run(gr, "G.V().Has('Up', 1)")) == []      # bools are not numbers


# ---- predicates: boundaries ------------------------------------------------------------------
@pytest.fixture(scope="module")
def nums():
    gr = Graph()
    for i in range(1, 8):
        gr.new_node({"X": i, "S": "v%d" % i}, id="x%d" % i)
    gr.new_node({"S": "none"}, id="nox")
    return gr


def xs(gr, pred):
    return [n["Metadata"]["X"] for n in run(gr, "G.V().Has('X', %s)" % pred)]


def test_between_is_half_open(nums):
    assert xs(nums, "Between(2, 5)") == [2, 3, 4]
    assert xs(nums, "BETWEEN(1, 1)") == []


def test_inside_is_open(nums):
    assert xs(nums, "Inside(2, 5)") == [3, 4]
    assert xs(nums, "Inside(2, 3)") == []


def test_comparisons(nums):
    assert xs(nums, "Gt(5)") == [6, 7]
    assert xs(nums, "Gte(5)") == [5, 6, 7]
    assert xs(nums, "Lt(3)") == [1, 2]
    assert xs(nums, "Lte(3)") == [1, 2, 3]
    assert xs(nums, "Gt('5')") == [6, 7]          # cast like upstream
    assert run(nums, "G.V().Has('S', Gt(1)).Count()") == 0   # strings are not ints


def test_within_without(nums):
    assert xs(nums, "Within(1, 3, 99)") == [1, 3]
    assert ids(run(nums, "G.V().Has('X', Without(1, 3))")) == ["x2", "x4", "x5", "x6", "x7", "nox"]


def test_ne_requires_the_key_nee_does_not(nums):
    assert run(nums, "G.V().Has('X', Ne(1)).Count()") == 6
    assert run(nums, "G.V().Has('X', Nee(1)).Count()") == 7      # + the node without X
    assert "nox" in ids(run(nums, "G.V().Has('X', NEE(1))"))
    assert "nox" not in ids(run(nums, "G.V().Has('X', NE(1))"))


def test_regex_is_anchored(nums):
    assert run(nums, "G.V().Has('S', Regex('v'))") == []
    assert run(nums, "G.V().Has('S', Regex('v.')).Count()") == 7
    assert run(nums, "G.V().Has('S', Regex('.*1')).Count()") == 1
    assert run(nums, "G.V().Has('S', Regex('no')).Count()") == 0
    for bad in ("'^v.'", "'v.$'", "'^v.$'"):
        with pytest.raises(GremlinError, match="anchored"):
            parse("G.V().Has('S', Regex(%s))" % bad)


def test_bad_regex_is_a_gremlin_error():
    with pytest.raises(GremlinError):
        parse("G.V().Has('S', Regex('('))")


def test_outside_is_unsupported():
    with pytest.raises(GremlinError, match="Unexpected token while parsing parameters"):
        parse("G.V().Has('X', Outside(1, 5))")


def test_no_negative_literals():
    with pytest.raises(GremlinError, match="position 15"):
        parse("G.V().Has('X', -1)")


def test_ipv4range_boundaries():
    gr = Graph()
    for ip in ("10.0.0.0", "10.0.0.255", "10.0.1.0", "9.255.255.255/8", "nonsense", "10.0.0.7/32"):
        gr.new_node({"IP": ip}, id=ip)
    assert sorted(ids(run(gr, "G.V().Has('IP', Ipv4Range('10.0.0.0/24'))"))) == ["10.0.0.0", "10.0.0.255", "10.0.0.7/32"]
    with pytest.raises(GremlinError):
        parse("G.V().Has('IP', Ipv4Range('300.0.0.0/8'))")
    with pytest.raises(GremlinError):
        parse("G.V().Has('IP', Ipv4Range(1))")


def test_predicate_arity_errors():
    for q, msg in [("G.V().Has('X', Gt(1, 2))", "One parameter expected with GT"),
                   ("G.V().Has('X', Inside(1))", "Two parameters expected with INSIDE"),
                   ("G.V().Has('X', Between(1, 2, 3))", "Two parameters expected with BETWEEN"),
                   ("G.V().Has('X', Ne())", "One parameter expected with NE"),
                   ("G.V().Has('X', Regex(1))", "REGEX predicate expects a string"),
                   ("G.V().Has('X', Lt('abc'))", "LT values should be of int64 type")]:
        with pytest.raises(GremlinError, match=msg):
            parse(q)


# ---- parse errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("query,msg,pos", [
    ("X.V()", 'found "X" at position 0, expected `G`', 0),
    ("    X", 'found "X" at position 4, expected `G`', 4),
    ("", 'found "" at position 0, expected `G`', 0),
    ("G V()", 'found "V" at position 2, expected `.`', 2),
    ("G.Foo()", "Expected step function, got: Foo", 2),
    ("G.V().Foo('x')", "Expected step function, got: Foo", 6),
    ("G.V(", "Expected right parenthesis at position 4", 4),
    ("G.V", "Expected left parenthesis at position 3, got: end of query", 3),
    ("G.", "Expected step function at position 2, got end of query", 2),
    ("G.V().Has('a', 'b'", "Expected right parenthesis", 18),
    ("G.V().Has('a)", "nterminated string starting at position 10", 10),
    ("G.V().Has('a', 5s)", 'letter "s" after number at position 16', 15),
    ("G.V().Has('a', b)", "Unexpected token while parsing parameters at position 15, got: b", 15),
    ("G.V().Has('a', 1.2.3)", "Expected number token at position 15", 15),
    ("G.V()#", 'Illegal character "#" at position 5', 5),
    ("G.V('a', 'b')", "V accepts at most one parameter", 2),
    ("G.V(1)", "V parameter must be a string", 2),
    ("G.V().Has()", "At least one parameter must be provided", 6),
    ("G.V().Has('a', 'b', 'c')", "params should be a list of key,value", 6),
    ("G.V().Has(1, 'b')", "keys should be of string type", 6),
    ("G.V().HasKey('a', 'b')", "HasKey accepts only one parameter", 6),
    ("G.V().HasNot(1)", "HasNot accepts only one parameter", 6),
    ("G.V().Count(1)", "Count accepts no parameter", 6),
    ("G.V().Limit()", "Limit requires 1 parameter", 6),
    ("G.V().Limit('a')", "a is not an integer", 6),
    ("G.V().Range(1)", "Range requires 2 parameters", 6),
    ("G.V().Sort(1)", "Sort parameter has to be a string key", 6),
    ("G.V().Sort('a', 'b')", "Use ASC or DESC predicate", 6),
    ("G.V().Sort(ASC, 1)", "Second sort parameter has to be a string key", 6),
    ("G.V().Values()", "Values requires 1 parameter", 6),
    ("G.V().Values(1)", "Values parameter has to be a string key", 6),
    ("G.V().Dedup(1)", "Dedup parameters have to be string keys", 6),
    ("G.V().ShortestPathTo()", "ShortestPathTo predicate accepts only 1 or 2 parameters", 6),
    ("G.V().ShortestPathTo('a')", "have to be Metadata", 6),
    ("G.V().ShortestPathTo(Metadata('a'))", "slice must be defined by pair k,v", 21),
    ("G.V().As()", "As requires 1 parameter", 6),
    ("G.V().Select()", "Select requires at least one key", 6),
    ("G.Context()", "At least one parameter must be provided to 'Context'", 2),
    ("G.At(1, 2, 3)", "At most two parameters", 2),
    ("G.At('yesterday')", "Time must be in RFC1123 or in Go Duration format", 2),
    ("G.At(1.5)", "Key 'Context' must be either an integer or a string", 2),
    ("G.At(1, 'abc')", "invalid duration", 2),
    ("G.V().Has('a', Within(Ne(1)))", "expects literal values", 15),
    ("G.V().Has('a', NE(1)", "Expected right parenthesis", 20),
])
def test_parse_errors(query, msg, pos):
    with pytest.raises(GremlinError) as ei:
        parse(query)
    assert msg in str(ei.value)
    assert ei.value.position == pos


def test_parse_error_on_deep_nesting():
    q = "G.V().Has('a', " + "Within(" * 200 + ")" * 200 + ")"
    with pytest.raises(GremlinError, match="nested too deeply"):
        parse(q)


def test_parse_rejects_non_strings():
    with pytest.raises(GremlinError):
        parse(None)
    with pytest.raises(GremlinError):
        parse(b"G.V()")


def test_parse_validates_without_a_graph():
    q = parse("G.V().Has('Name', 'eth0').SubGraph()")
    assert q.returns_graph
    assert not parse("G.V()").returns_graph
    assert parse("G").returns_graph
    assert parse("G.At('-1m')").returns_graph
    assert parse("G.V().Has('a', 1).G").returns_graph
    assert not parse("G.V().Count()").returns_graph
    assert not parse("G.V().Count()").returns_raw_packets


def test_reduce_fuses_v_and_has_into_an_index_lookup():
    q = parse("G.V().Has('Name', 'x')")
    assert [s.name for s in q.steps] == ["G", "V"]
    assert q.steps[1].flt is not None
    q = parse("G.V().Out().Has('Type', 'veth').OutE().Has('RelationType', 'layer2')")
    assert [s.name for s in q.steps] == ["G", "V", "Out", "OutE"]
    q = parse("G.V().Has('a').Limit(3)")      # single-arg Has is not fused into V
    assert [s.name for s in q.steps] == ["G", "V", "Has", "Limit"]
    assert q.steps[2].stop == 3


def test_index_lookup_is_used(monkeypatch):
    gr = Graph()
    for i in range(200):
        gr.new_node({"Name": "n%d" % i, "Type": "veth"}, id="id%d" % i)
    calls = []

    class SpyIndex:
        def __init__(self, inner):
            self.inner = inner

        def candidates(self, eq):
            res = self.inner.candidates(eq)
            calls.append((list(eq), None if res is None else len(res)))
            return res

        def __getattr__(self, name):
            return getattr(self.inner, name)
    monkeypatch.setattr(gr, "node_index", SpyIndex(gr.node_index))
    assert ids(run(gr, "G.V().Has('Name', 'n42')")) == ["id42"]
    assert calls == [([("Name", "n42")], 1)]


def test_graph_of_result_for_dot(g):
    res = execute("G.V().Has('Value', Within(1, 2)).SubGraph()", QueryContext(g))
    assert res.is_graph and not res.is_raw_packets
    dot = res.to_dot()
    assert dot.startswith("digraph G {") and '"n1" -> "n2"' in dot and dot.rstrip().endswith("}")
    res = execute("G.V().Count()", QueryContext(g))
    assert not res.is_graph
    with pytest.raises(GremlinError):
        res.to_dot()


def test_execute_accepts_a_bare_graph_and_a_parsed_query(g):
    q = parse("G.V().Has('Type', 'intf').Count()")
    assert execute(q, g).to_json_value() == 2
    assert q.execute(QueryContext(g)).to_json_value() == 2


def test_results_are_json_serialisable(g):
    for q in ["G", "G.V()", "G.E()", "G.V().Count()", "G.V().Values('Map')", "G.V().Keys()",
              "G.V('n1').ShortestPathTo(Metadata('Value', 3))", "G.V().ValueMap('Value')"]:
        json.dumps(run(g, q))


def test_live_results_reflect_graph_changes():
    gr = Graph()
    n = gr.new_node({"Name": "a", "Type": "veth"}, id="a")
    q = parse("G.V().Has('Name', 'a').Count()")
    assert execute(q, gr).to_json_value() == 1
    gr.update_metadata(n, {"Name": "b"})
    assert execute(q, gr).to_json_value() == 0
    gr.del_node(n)
    assert execute("G.V().Count()", gr).to_json_value() == 0
