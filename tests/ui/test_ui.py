"""The analyzer's web UI, in headless Chromium against a real analyzer.

Two Chromium runs for the whole module: one `--dump-dom` run (the page as served, with a
virtual time budget) and one DevTools session over `--remote-debugging-pipe` for the live
checks (events after load, filter, Gremlin console, details, captures, status, screenshot,
a few thousand nodes, reconnection after an analyzer restart).

SKYDIVE_UI_TEST_ANALYZER=http://host:port runs them against an already running analyzer
(the restart test is then skipped).
"""

import asyncio
import html.parser
import json
import os
import re
import struct
import subprocess
import threading
import time
import uuid
import zlib

import aiohttp
import pytest
import requests
import yaml

from tests.fixtures.processes import REPO, SKYDIVE, SkydiveProcess, analyzer_config, wait_until
from tests.ui.browser import Browser, chromium_binary, dump_dom, WINDOW
from tests.ui.topology import populate, post_edge, post_node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EXTERNAL = os.environ.get("SKYDIVE_UI_TEST_ANALYZER", "").rstrip("/")
UI_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "skydive_runtime", "ui")


class External:
    def __init__(self, url):
        self.url = url
        self.proc = None


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    if EXTERNAL:
        yield External(EXTERNAL)
        return
    workdir = tmp_path_factory.mktemp("ui-analyzer")
    proc = SkydiveProcess("analyzer", workdir, analyzer_config(workdir))
    proc.start()
    try:
        r = requests.get(proc.url + "/", timeout=10)
        assert r.status_code == 200 and "statics/js/main.js" in r.text, \
            "the analyzer does not serve the web UI at / (HTTP %d)" % r.status_code
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def topo(analyzer):
    """Two hosts with the canonical structure; host names unique per run (external analyzers)."""
    tag = uuid.uuid4().hex[:6]
    return {"h1": populate(analyzer.url, "ui-%s-a" % tag, namespaces=2),
            "h2": populate(analyzer.url, "ui-%s-b" % tag, namespaces=3)}


@pytest.fixture(scope="module")
def page(analyzer, topo):
    b = Browser().start()
    try:
        # every node shown at once (hosts-first folding is tested in test_ui_guide.py)
        b.navigate(analyzer.url + "/?expand=all")
        b.wait_for("document.body.dataset.wsState === 'connected' && Number(document.body.dataset.syncs) >= 1",
                   timeout=60, message="the first SyncReply")      # a cold Chromium on loaded cores
        yield b
    finally:
        b.close()


def api_nodes(base):
    r = requests.get(base + "/api/node", timeout=10)
    r.raise_for_status()
    return r.json()


def api_edges(base):
    r = requests.get(base + "/api/edge", timeout=10)
    r.raise_for_status()
    return r.json()


def dom_node_ids(page):
    return set(page.eval("[...document.querySelectorAll('#layer-nodes .node')].map(e => e.dataset.id)"))


def js(s):
    return json.dumps(s)


def q_node(nid):
    """JS expression: the SVG group of a node."""
    return "document.querySelector(%s)" % js('#layer-nodes [data-id="%s"]' % nid)


def q_edge(eid):
    return "document.querySelector(%s)" % js('#layer-edges [data-id="%s"]' % eid)


def q_value(path):
    """JS expression: the value element of a metadata tree leaf in the details panel."""
    return "document.querySelector(%s)" % js('#details [data-path="%s"] .v' % path)


# ------------------------------------------------------------------------------ static files
def test_index_and_statics_are_served(analyzer):
    r = requests.get(analyzer.url + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="statics/js/main.js">' in r.text
    refs = re.findall(r'(?:href|src)="(statics/[^"]+)"', r.text)
    assert "statics/css/skydive.css" in refs
    # every ES module reachable from main.js is served with a JavaScript MIME type
    todo, seen = ["js/main.js"], set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        r = requests.get(analyzer.url + "/statics/" + rel, timeout=10)
        assert r.status_code == 200, rel
        assert "javascript" in r.headers["Content-Type"], (rel, r.headers["Content-Type"])
        for imp in re.findall(r'from "\./([^"]+)"', r.text):
            todo.append(os.path.normpath(os.path.join(os.path.dirname(rel), imp)))
    on_disk = {os.path.join("js", f) for f in os.listdir(os.path.join(UI_DIR, "js")) if f.endswith(".js")}
    assert seen == on_disk, "modules not imported by main.js (dead code?) or missing: %s" % (seen ^ on_disk)
    r = requests.get(analyzer.url + "/statics/css/skydive.css", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/css")
    # the Python side of the package and anything outside it is not served
    for path in ("/statics/__init__.py", "/statics/../__init__.py", "/statics/%2e%2e/config.py",
                 "/statics/js/../../config.py", "/statics/nope.js"):
        assert requests.get(analyzer.url + path, timeout=10).status_code == 404, path


# ------------------------------------------------------------------------------ --dump-dom
class DomCollector(html.parser.HTMLParser):
    """Nodes (g.node[data-id] with their label), edges (path.edge[data-id]), group boxes, body."""

    def __init__(self):
        super().__init__()
        self.nodes, self.edges, self.groups, self.body, self.title = {}, {}, {}, {}, ""
        self._node = None
        self._in_label = self._in_title = False
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "body":
            self.body = a
        elif tag == "title" and self._node is None and not self.title:
            self._in_title = True
        elif tag == "g" and "node" in cls and "data-id" in a:
            self._node = a["data-id"]
            self.nodes[self._node] = {"class": cls, "type": a.get("data-type"), "label": ""}
        elif tag == "text" and "label" in cls and self._node:
            self._in_label = True
        elif tag == "path" and "edge" in cls and "data-id" in a:
            self.edges[a["data-id"]] = {"class": cls, "d": a.get("d", "")}
        elif tag == "rect" and "group-box" in cls:
            self.groups[a["data-group"]] = a

    def handle_endtag(self, tag):
        if tag == "text":
            self._in_label = False
        elif tag == "g" and self._node is not None:
            self._node = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_label:
            self.nodes[self._node]["label"] += data
        elif self._in_title:
            self.title += data


def test_dump_dom_shows_the_topology(analyzer, topo):
    # virtual time runs ahead of the real websocket on a loaded machine: one retry, longer
    for budget in (10000, 30000):
        c = DomCollector()
        c.feed(dump_dom(analyzer.url + "/?expand=all", budget_ms=budget))
        if c.body.get("data-syncs", "0") != "0":
            break
    nodes, edges = api_nodes(analyzer.url), api_edges(analyzer.url)
    assert c.body.get("data-ws-state") == "connected", c.body
    assert set(c.nodes) == set(nodes)
    assert set(c.edges) == set(edges)
    assert c.body["data-nodes"] == str(len(nodes)) and c.body["data-edges"] == str(len(edges))
    assert c.title == "Skydive · %d nodes · %d edges" % (len(nodes), len(edges))
    for nid, n in nodes.items():
        assert c.nodes[nid]["type"] == n["Metadata"]["Type"]
        assert c.nodes[nid]["label"] == n["Metadata"]["Name"]
    for eid, e in edges.items():
        relation = e["Metadata"]["RelationType"]
        assert ("rel-" + relation) in c.edges[eid]["class"], (relation, c.edges[eid])
        assert re.fullmatch(r"M-?[\d.]+ -?[\d.]+L-?[\d.]+ -?[\d.]+", c.edges[eid]["d"]), c.edges[eid]
    # owners (host, netns with an interface, ovsbridge) are drawn as group boxes, leaves are not
    owners = {e["Parent"] for e in edges.values() if e["Metadata"]["RelationType"] == "ownership"}
    assert set(c.groups) == owners
    for h in topo.values():
        assert h["host"]["ID"] in c.groups and h["br-int"]["ID"] in c.groups and h["ns1"]["ID"] in c.groups
        assert h["eth0"]["ID"] not in c.groups
        assert "t-host" in c.nodes[h["host"]["ID"]]["class"] and "group" in c.nodes[h["host"]["ID"]]["class"]
        assert "t-ovsbridge" in c.nodes[h["br-int"]["ID"]]["class"]


# ------------------------------------------------------------------------------ live session
def test_live_node_added_updated_deleted(analyzer, topo, page):
    base = analyzer.url
    host = topo["h1"]["host"]
    nid = str(uuid.uuid4())
    before = int(page.eval("document.body.dataset.nodes"))
    post_node(base, nid, host["Host"], {"Name": "live-tap0", "Type": "tuntap", "State": "UP"})
    sel = q_node(nid)
    page.wait_for(sel + " !== null", message="the node added after page load")
    assert page.eval(sel + ".querySelector('.label').textContent") == "live-tap0"
    assert page.eval("document.body.dataset.nodes") == str(before + 1)
    assert page.eval("document.title").startswith("Skydive · %d nodes" % (before + 1))
    edge = post_edge(base, host["ID"], nid, "ownership", host["Host"])
    page.wait_for(q_edge(edge["ID"]) + " !== null")
    assert "rel-ownership" in page.eval(q_edge(edge["ID"]) + ".getAttribute('class')")

    # NodeUpdated: state and an active capture change the node's look
    patch = [{"op": "add", "path": "/Metadata/State", "value": "DOWN"},
             {"op": "add", "path": "/Metadata/Captures", "value": [{"ID": "c-live", "State": "active", "Type": "pcap"}]}]
    r = requests.patch(base + "/api/node/" + nid, json=patch, timeout=10)
    assert r.status_code == 200, r.text
    page.wait_for(sel + ".classList.contains('state-down') && " + sel + ".classList.contains('captured')",
                  message="NodeUpdated applied")

    # NodeDeleted (and its EdgeDeleted)
    assert requests.delete(base + "/api/node/" + nid, timeout=10, headers={"Content-Type": "application/json"}).status_code == 200
    page.wait_for(sel + " === null && " + q_edge(edge["ID"]) + " === null",
                  message="the node and its edge removed")
    assert page.eval("document.body.dataset.nodes") == str(before)
    assert dom_node_ids(page) == set(api_nodes(base))


def _click_node(page, nid):
    """Center the node, then click it with real mouse events."""
    page.eval("window.skydive.renderer.centerOn(%s)" % js(nid))
    page.wait_for("""(() => { const g = %s; const e = g && g.querySelector('.shape');
        if (!e) return false; const r = e.getBoundingClientRect();
        const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        return !!hit && hit.closest('.node') === g; })()""" % q_node(nid),
                  message="node %s visible and clickable" % nid)
    x, y = page.eval("""(() => { const r = %s.querySelector('.shape').getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2]; })()""" % q_node(nid))
    page.click(x, y)


def test_details_panel_shows_metadata_tree(analyzer, topo, page):
    eth0 = topo["h1"]["eth0"]
    patch = [{"op": "add", "path": "/Metadata/Captures",
              "value": [{"ID": "c-details", "State": "active", "Type": "afpacket", "PacketsReceived": 42}]}]
    assert requests.patch(analyzer.url + "/api/node/" + eth0["ID"], json=patch, timeout=10).status_code == 200
    page.wait_for(q_node(eth0["ID"]) + ".classList.contains('captured')")
    page.eval("window.skydive.tabs.show('tab-details')")
    _click_node(page, eth0["ID"])
    page.wait_for("document.body.dataset.selected === %s" % js(eth0["ID"]), message="node selected by the click")
    page.wait_for("document.getElementById('details-title') && document.getElementById('details-title').textContent === 'eth0'")
    assert page.eval(q_node(eth0["ID"]) + ".classList.contains('selected')")
    text = page.eval("document.getElementById('details').innerText")
    assert eth0["ID"] in text and eth0["Host"] in text
    # the metadata tree: nested objects and lists, values typed
    assert page.eval(q_value("Metadata.Metric.RxBytes") + ".textContent") == "98000"
    assert page.eval(q_value("Metadata.IPV4.0") + ".textContent") == '"192.168.122.10/24"'
    assert page.eval(q_value("Metadata.MTU") + ".className") == "v num"
    state = page.eval(q_value("Metadata.Captures.0.State") + ".className")
    assert "capture-state-active" in state
    assert page.eval(q_value("Metadata.Captures.0.PacketsReceived") + ".textContent") == "42"
    # links of the node: its ownership parent (the host)
    links = page.eval("[...document.querySelectorAll('#details .links li')].map(l => l.innerText)")
    assert any("ownership" in l and topo["h1"]["host"]["Metadata"]["Name"] in l for l in links), links
    # a live update of the selected node is reflected in the panel
    patch = [{"op": "replace", "path": "/Metadata/Metric/RxBytes", "value": 123456}]
    assert requests.patch(analyzer.url + "/api/node/" + eth0["ID"], json=patch, timeout=10).status_code == 200
    page.wait_for(q_value("Metadata.Metric.RxBytes") + ".textContent === '123456'", message="details refreshed")


def test_search_and_collapse_groups(analyzer, topo, page):
    base = analyzer.url
    ns1, inner = topo["h1"]["ns1"], topo["h1"]["ns1/eth0"]
    page.eval("window.skydive.tabs.show('tab-details')")

    def search_pick(text):
        page.eval("{ const i = document.getElementById('node-search'); i.value = %s;"
                  "i.dispatchEvent(new Event('input')); }" % js(text))
        page.wait_for("document.getElementById('search-results').dataset.query === %s && "
                      "document.querySelectorAll('#search-results button').length === 1" % js(text.lower()),
                      message="one search hit")
        page.eval("document.querySelector('#search-results button').click()")

    search_pick(ns1["ID"])
    page.wait_for("document.body.dataset.selected === %s" % js(ns1["ID"]))
    page.eval("document.getElementById('details-fold').click()")
    page.wait_for(q_node(inner["ID"]) + ".getAttribute('display') === 'none'", message="the netns folded")
    assert page.eval(q_node(ns1["ID"]) + ".classList.contains('collapsed')")
    assert page.eval(q_node(ns1["ID"]) + ".querySelector('.fold-count').textContent") == "1"
    assert page.eval("document.querySelector(%s)" % js('#layer-groups [data-group="%s"]' % ns1["ID"])) is None
    # edges of folded nodes are hidden too
    owner_edge = [e for e in api_edges(base).values() if e["Child"] == inner["ID"] and e["Parent"] == ns1["ID"]][0]
    assert page.eval(q_edge(owner_edge["ID"]) + ".getAttribute('display')") == "none"
    assert page.eval("document.getElementById('details-fold').textContent") == "Expand"
    # a node arriving in a folded group is counted, not shown
    nid = str(uuid.uuid4())
    post_node(base, nid, ns1["Host"], {"Name": "lo", "Type": "device"})
    post_edge(base, ns1["ID"], nid, "ownership", ns1["Host"])
    page.wait_for(q_node(ns1["ID"]) + ".querySelector('.fold-count').textContent === '2'")
    # not drawn: no element yet (never shown), or folded away
    assert page.eval("(e => !e || e.getAttribute('display') === 'none')(%s)" % q_node(nid))
    # finding a folded node unfolds its group
    search_pick(inner["ID"])
    page.wait_for(q_node(inner["ID"]) + ".getAttribute('display') === null && document.body.dataset.selected === %s"
                  % js(inner["ID"]), message="the group unfolded by the search")
    assert not page.eval(q_node(ns1["ID"]) + ".classList.contains('collapsed')")
    # toolbar: fold every namespace and bridge, then unfold everything
    folders = {e["Parent"] for e in api_edges(base).values() if e["Metadata"]["RelationType"] == "ownership"}
    nodes = api_nodes(base)
    expected = {i for i in folders if nodes[i]["Metadata"]["Type"] in ("netns", "ovsbridge", "bridge", "container")}
    page.eval("window.skydive.renderer.foldAll(new Set(['netns', 'ovsbridge', 'bridge', 'container']))")
    page.wait_for("document.querySelectorAll('#layer-nodes .node.collapsed').length === %d" % len(expected))
    assert set(page.eval("[...document.querySelectorAll('#layer-nodes .node.collapsed')].map(e => e.dataset.id)")) == expected
    hidden = set(page.eval("[...document.querySelectorAll('#layer-nodes .node[display=none]')].map(e => e.dataset.id)"))
    owned = {e["Child"] for e in api_edges(base).values() if e["Metadata"]["RelationType"] == "ownership" and e["Parent"] in expected}
    assert hidden == owned
    # links leaving a folded group are drawn once between the visible ends
    top = {e["Child"]: e["Parent"] for e in api_edges(base).values()
           if e["Metadata"]["RelationType"] == "ownership" and e["Parent"] in expected}
    proxies = set()
    for e in api_edges(base).values():
        if e["Metadata"]["RelationType"] == "ownership" or not (e["Parent"] in top or e["Child"] in top):
            continue
        a, b = top.get(e["Parent"], e["Parent"]), top.get(e["Child"], e["Child"])
        if a != b:
            proxies.add("|".join(sorted((a, b))))
    assert proxies
    assert set(page.eval("[...document.querySelectorAll('#layer-edges path.proxy')].map(e => e.dataset.proxy)")) == proxies
    # Hosts only: every node holding others folded, only the roots shown
    page.eval("document.getElementById('btn-collapse').click()")
    roots = set(nodes) - {e["Child"] for e in api_edges(base).values() if e["Metadata"]["RelationType"] == "ownership"}
    page.wait_for("document.querySelectorAll('#layer-nodes .node:not([display=none])').length === %d" % len(roots))
    assert set(page.eval("[...document.querySelectorAll('#layer-nodes .node:not([display=none])')].map(e => e.dataset.id)")) == roots
    page.eval("document.getElementById('btn-expand').click()")
    page.wait_for("document.querySelectorAll('#layer-nodes .node[display=none]').length === 0 && "
                  "document.querySelectorAll('#layer-nodes .node.collapsed').length === 0 && "
                  "document.querySelectorAll('#layer-edges path.proxy').length === 0")
    requests.delete(base + "/api/node/" + nid, timeout=10, headers={"Content-Type": "application/json"})
    page.wait_for(q_node(nid) + " === null")


def test_graph_store_semantics(page):
    """The page's own store (module loaded in the page): partial updates, ownership moves,
    dangling edges, coalesced change sets."""
    r = page.eval("""(async () => {
      const { GraphStore } = await import('/statics/js/graphstore.js');
      const s = new GraphStore();
      const N = (id, name, extra) => ({ ID: id, Metadata: Object.assign({ Name: name, Type: 'device' }, extra || {}) });
      const E = (id, p, c, rel) => ({ ID: id, Parent: p, Child: c, Metadata: { RelationType: rel } });
      s.reset([N('h', 'host'), N('a', 'a'), N('b', 'b')], [E('o1', 'h', 'a', 'ownership')]);
      s.takeChanges();
      const out = {};
      s.apply({ Type: 'NodePartiallyUpdated', Obj: { ID: 'a', Revision: 5, Ops: [
        { Type: 1, Key: 'Metric.RxBytes', Value: 10 }, { Type: 1, Key: 'MTU', Value: 9000 }, { Type: 2, Key: 'Name' }] } });
      out.partial = s.node('a').Metadata; out.rev = s.node('a').Revision;
      s.apply({ Type: 'EdgeAdded', Obj: E('dangling', 'a', 'missing', 'layer2') });
      out.dangling = s.edge('dangling') === undefined;
      // a second ownership edge moves 'a' from h to b
      s.apply({ Type: 'EdgeAdded', Obj: E('o2', 'b', 'a', 'ownership') });
      out.owner = s.ownerId('a'); out.hChildren = [...s.children('h')]; out.bChildren = [...s.children('b')];
      out.depthA = s.depths().get('a');
      s.apply({ Type: 'EdgeDeleted', Obj: E('o1', 'h', 'a', 'ownership') });
      out.ownerAfter = s.ownerId('a');
      // added then deleted in one batch: nothing to render
      s.takeChanges();
      s.apply({ Type: 'NodeAdded', Obj: N('tmp', 'tmp') });
      s.apply({ Type: 'NodeDeleted', Obj: N('tmp', 'tmp') });
      const c = s.takeChanges();
      out.transient = [c.addedNodes.size, c.removedNodes.size];
      // deleting a node removes its edges first
      s.apply({ Type: 'NodeDeleted', Obj: N('b', 'b') });
      out.afterDelete = [s.edges.size, s.ownerId('a') === undefined, s.adj.get('a').size];
      return out;
    })()""")
    assert r["partial"] == {"Type": "device", "Metric": {"RxBytes": 10}, "MTU": 9000} and r["rev"] == 5
    assert r["dangling"] is True
    assert r["owner"] == "b" and r["hChildren"] == [] and r["bChildren"] == ["a"] and r["depthA"] == 1
    assert r["ownerAfter"] == "b"
    assert r["transient"] == [0, 0]
    assert r["afterDelete"] == [0, True, 0]


def _empty_spot(page, clearance=24):
    """A point of the graph pane over its background only, with `clearance` px of background
    all around (a grid scan with elementFromPoint), clear of the toolbar, legend and time bar."""
    spot = page.eval("""(() => {
      const g = document.getElementById('graph'), r = g.getBoundingClientRect(), c = %d;
      const bare = (x, y) => { const e = document.elementFromPoint(x, y); return !!e && e === g; };
      for (let y = r.bottom - 60; y > r.top + 100; y -= 12) {
        for (let x = r.left + c + 4; x < r.right - 100; x += 12) {
          if (!bare(x, y) || !bare(x + 60, y - 40)) continue;
          let ok = true;
          for (const [dx, dy] of [[-c, 0], [c, 0], [0, -c], [0, c], [-c, -c], [c, c], [-c, c], [c, -c]]) {
            if (!bare(x + dx, y + dy)) { ok = false; break; }
          }
          if (ok) return [x, y];
        }
      }
      return null; })()""" % clearance)
    assert spot, "no empty spot in the graph pane"
    return spot


def test_view_controls_with_real_input(topo, page):
    """Wheel zoom, background pan, node drag (pins) and double-click (unpins), toolbar, tabs keyboard."""
    page.eval("window.skydive.tabs.show('tab-details'); window.skydive.renderer.select(null);"
              "document.getElementById('btn-fit').click()")
    page.wait_for("document.body.dataset.layout === 'stable'", timeout=60)
    view = "[window.skydive.renderer.view.k, window.skydive.renderer.view.tx, window.skydive.renderer.view.ty]"
    pane = page.eval("(() => { const r = document.getElementById('graph').getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()")
    cx, cy = pane[0] + pane[2] / 2, pane[1] + pane[3] / 2
    k0, _, _ = page.eval(view)
    page.wheel(cx, cy, -300)
    page.wait_for("window.skydive.renderer.view.k > %f" % (k0 * 1.2), message="wheel zoom in")
    assert page.eval("window.skydive.renderer.userView") is True
    page.wheel(cx, cy, 300)
    page.wait_for("Math.abs(window.skydive.renderer.view.k - %f) < 1e-6" % k0, message="wheel zoom back")
    # pan from an empty spot, searched right before the drag; what the pointer pressed on is
    # recorded by the page: a node that arrived there in between is a new try, not a failure
    for attempt in range(3):
        page.wait_for("document.body.dataset.layout === 'stable'", timeout=60)
        x0, y0 = _empty_spot(page)
        page.eval("window.__panDown = null; document.getElementById('graph').addEventListener('pointerdown',"
                  " (ev) => { window.__panDown = ev.target.id || ev.target.tagName; }, {capture: true, once: true})")
        _, tx0, ty0 = page.eval(view)
        page.drag(x0, y0, x0 + 60, y0 - 40)
        _, tx1, ty1 = page.eval(view)
        down = page.eval("window.__panDown")
        if down == "graph":
            break
    assert down == "graph", "no empty spot stayed empty for a drag: %r" % down
    assert abs(tx1 - tx0 - 60) < 1 and abs(ty1 - ty0 + 40) < 1, (tx0, ty0, tx1, ty1)
    assert page.eval("document.body.dataset.selected || ''") == ""    # a pan is not a click
    # drag a leaf: it is pinned where it was dropped; double-click unpins it
    leaf = topo["h2"]["eth0"]["ID"]
    page.eval("window.skydive.renderer.centerOn(%s)" % js(leaf))
    x, y = page.eval("(() => { const r = %s.querySelector('.shape').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()" % q_node(leaf))
    page.drag(x, y, x + 50, y + 30)
    page.wait_for(q_node(leaf) + ".classList.contains('pinned')", message="dragged node pinned")
    k = page.eval("window.skydive.renderer.view.k")
    p = page.eval("(() => { const p = window.skydive.layout.point(%s); return [p.fx, p.fy]; })()" % js(leaf))
    page.wait_for("document.body.dataset.layout === 'stable'", timeout=60)
    q = page.eval("(() => { const p = window.skydive.layout.point(%s); return [p.x, p.y]; })()" % js(leaf))
    assert abs(q[0] - p[0]) < 0.01 and abs(q[1] - p[1]) < 0.01      # stays where it was dropped
    x, y = page.eval("(() => { const r = %s.querySelector('.shape').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()" % q_node(leaf))
    assert abs(x - (page.eval("window.skydive.renderer.view.tx") + p[0] * k) - pane[0]) < 2
    page.double_click(x, y)
    page.wait_for("!" + q_node(leaf) + ".classList.contains('pinned')", message="double-click unpins")
    # toolbar
    page.eval("document.getElementById('btn-layout').click()")
    page.wait_for("document.body.dataset.layout === 'frozen'")
    assert page.eval("document.getElementById('btn-layout').getAttribute('aria-pressed')") == "true"
    page.eval("document.getElementById('btn-layout').click()")
    page.wait_for("document.body.dataset.layout !== 'frozen'")
    page.eval("document.getElementById('chk-labels').click()")
    assert page.eval("getComputedStyle(%s.querySelector('.label')).display" % q_node(leaf)) == "none"
    page.eval("document.getElementById('chk-labels').click()")
    page.eval("document.getElementById('chk-ownership').click()")
    assert page.eval("getComputedStyle(document.querySelector('#layer-edges .rel-ownership')).display") == "none"
    page.eval("document.getElementById('chk-ownership').click()")
    assert page.eval("getComputedStyle(document.querySelector('#layer-edges .rel-ownership')).display") != "none"
    # tabs: arrow keys move between them (ARIA tabs pattern)
    page.eval("document.getElementById('tab-details').focus()")
    page.key("ArrowRight", key_code=39)
    page.wait_for("document.activeElement.id === 'tab-query' && !document.getElementById('panel-query').hidden")
    page.key("ArrowRight", key_code=39)
    page.wait_for("document.activeElement.id === 'tab-captures' && document.getElementById('panel-query').hidden")
    page.key("Home", key_code=36)
    page.wait_for("document.activeElement.id === 'tab-details' && !document.getElementById('panel-details').hidden")
    # Escape clears the selection
    page.eval("window.skydive.renderer.select({kind: 'node', id: %s}); document.body.focus()" % js(leaf))
    page.key("Escape", key_code=27)
    page.wait_for("!document.body.dataset.selected")
    page.eval("document.getElementById('btn-fit').click()")
    assert not [c for c in page.console if c.startswith("exception")], page.console


def _api_subgraph(base, query):
    r = requests.post(base + "/api/topology", json={"GremlinQuery": query}, headers={"Accept": "application/json"}, timeout=10)
    r.raise_for_status()
    return r.json()[0]


def test_filter_box(analyzer, topo, page):
    base = analyzer.url
    all_ids = set(api_nodes(base))

    def apply(f):
        page.eval("document.getElementById('filter-input').value = %s;"
                  "document.querySelector('#filter-form button[type=submit]').click()" % js(f))

    good = "G.V().Has('Type', 'netns').SubGraph()"
    expected = {n["ID"] for n in _api_subgraph(base, good)["Nodes"]}
    assert len(expected) >= 5
    syncs = int(page.eval("document.body.dataset.syncs"))
    apply(good)
    page.wait_for("Number(document.body.dataset.syncs) > %d" % syncs, message="SyncReply to the filter")
    page.wait_for("document.body.dataset.nodes === '%d'" % len(expected))
    assert dom_node_ids(page) == expected
    assert page.eval("document.body.dataset.filter") == good
    assert page.eval("new URL(location.href).searchParams.get('filter')") == good
    assert page.eval("document.getElementById('filter-active').hidden") is False
    assert page.eval("document.getElementById('filter-error').hidden") is True

    # a query that does not return a graph: the analyzer's error is shown, the graph is kept
    for bad in ("G.V().Has('Type', 'netns')", "G.V().Nope()"):
        apply(bad)
        page.wait_for("!document.getElementById('filter-error').hidden", message="filter error for %s" % bad)
        err = page.eval("document.getElementById('filter-error').textContent")
        server = page.eval("document.body.dataset.filterError")
        assert server and server in err and err.startswith("Filter rejected by the analyzer: ")
        assert "Still showing: " + good in err
        assert dom_node_ids(page) == expected
        assert page.eval("document.body.dataset.wsState") == "connected"
    assert "must be G or end with .SubGraph()" in err or "Nope" in err

    # live events honour the filter: a new netns appears, a new device does not
    host = topo["h2"]["host"]
    ns_id, dev_id = str(uuid.uuid4()), str(uuid.uuid4())
    post_node(base, dev_id, host["Host"], {"Name": "filtered-out", "Type": "device"})
    post_node(base, ns_id, host["Host"], {"Name": "ns-live", "Type": "netns", "Path": "/var/run/netns/ns-live"})
    page.wait_for(q_node(ns_id) + " !== null")
    assert page.eval(q_node(dev_id)) is None

    # Clear: the whole topology again
    page.eval("document.getElementById('filter-clear').click()")
    total = len(all_ids) + 2
    page.wait_for("document.body.dataset.nodes === '%d'" % total, message="the unfiltered graph")
    assert dom_node_ids(page) == set(api_nodes(base))
    assert page.eval("document.getElementById('filter-active').hidden") is True
    assert page.eval("new URL(location.href).searchParams.get('filter')") is None
    for nid in (ns_id, dev_id):
        requests.delete(base + "/api/node/" + nid, timeout=10, headers={"Content-Type": "application/json"})
    page.wait_for("document.body.dataset.nodes === '%d'" % len(all_ids))


def test_gremlin_console(analyzer, topo, page):
    base = analyzer.url
    page.eval("document.getElementById('tab-query').click()")
    assert page.eval("document.getElementById('panel-query').hidden") is False
    q = "G.V().Has('Type', 'host')"
    page.eval("document.getElementById('query-input').value = %s; document.getElementById('query-run').click()" % js(q))
    page.wait_for("document.getElementById('query-result').textContent.length > 0", message="query result")
    shown = json.loads(page.eval("document.getElementById('query-result').textContent"))
    r = requests.post(base + "/api/topology", json={"GremlinQuery": q}, headers={"Accept": "application/json"}, timeout=10)
    assert sorted(n["ID"] for n in shown) == sorted(n["ID"] for n in r.json())
    assert "\n  " in page.eval("document.getElementById('query-result').textContent")   # pretty printed
    hosts = {h["host"]["ID"] for h in topo.values()}
    highlighted = set(page.eval("[...document.querySelectorAll('#layer-nodes .node.highlighted')].map(e => e.dataset.id)"))
    assert hosts <= highlighted and highlighted == {n["ID"] for n in shown}
    assert page.eval("document.getElementById('graph').classList.contains('dimmed')")

    # errors: the analyzer's text, verbatim
    bad = "G.V().Has('Type', 'host').Nope()"
    r = requests.post(base + "/api/topology", json={"GremlinQuery": bad}, headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 400
    page.eval("document.getElementById('query-input').value = %s; document.getElementById('query-run').click()" % js(bad))
    page.wait_for("!document.getElementById('query-error').hidden", message="query error")
    err = page.eval("document.getElementById('query-error').textContent")
    assert err == "HTTP 400: " + r.text.strip()
    assert page.eval("document.getElementById('query-result').textContent") == ""
    assert not page.eval("document.getElementById('graph').classList.contains('dimmed')")

    # Count() is a bare number, an empty query is a 204
    page.eval("document.getElementById('query-input').value = 'G.V().Count()'; document.getElementById('query-run').click()")
    page.wait_for("document.getElementById('query-result').textContent === %s" % js(str(len(api_nodes(base)))))
    page.eval("document.getElementById('query-input').value = ''; document.getElementById('query-run').click()")
    page.wait_for("document.getElementById('query-meta').textContent.startsWith('empty result')")


def test_captures_panel(analyzer, topo, page):
    base = analyzer.url
    dev = topo["h2"]["eth0"]
    page.eval("window.skydive.tabs.show('tab-details')")
    _click_node(page, dev["ID"])
    page.wait_for("document.body.dataset.selected === %s" % js(dev["ID"]))
    page.eval("document.getElementById('tab-captures').click()")
    assert page.eval("document.getElementById('capture-query').value") == "G.V('%s')" % dev["ID"]
    assert dev["Host"] in page.eval("document.getElementById('capture-target').textContent")
    page.eval("document.getElementById('capture-name').value = 'ui-capture';"
              "document.getElementById('capture-bpf').value = 'tcp port 80';"
              "document.getElementById('capture-create').click()")
    page.wait_for("document.querySelectorAll('#capture-table tbody tr').length === 1", message="capture listed")
    caps = requests.get(base + "/api/capture", timeout=10).json()
    assert len(caps) == 1
    cid, cap = next(iter(caps.items()))
    assert cap["GremlinQuery"] == "G.V('%s')" % dev["ID"] and cap["BPFFilter"] == "tcp port 80"
    assert cap["Name"] == "ui-capture"
    row = page.eval("document.querySelector('#capture-table tbody tr').dataset.id")
    assert row == cid
    assert "tcp port 80" in page.eval("document.querySelector('#capture-table tbody tr').innerText")
    assert page.eval("document.getElementById('capture-count').textContent") == "1"

    # a capture the analyzer refuses: its message is shown
    body = {"GremlinQuery": "G.V('%s')" % dev["ID"], "BPFFilter": "tcp port"}
    r = requests.post(base + "/api/capture", json=body, timeout=10)
    assert r.status_code == 400
    page.eval("document.getElementById('capture-bpf').value = 'tcp port';"
              "document.getElementById('capture-create').click()")
    page.wait_for("!document.getElementById('capture-error').hidden", message="capture error")
    assert page.eval("document.getElementById('capture-error').textContent") == "Capture not created: HTTP 400: " + r.text.strip()
    assert len(requests.get(base + "/api/capture", timeout=10).json()) == 1

    # Show: the nodes matched by the capture's query are highlighted
    page.eval("[...document.querySelectorAll('#capture-table tbody tr button')].find(b => b.textContent === 'Show').click()")
    page.wait_for("document.getElementById('capture-note').textContent === '1 node highlighted'")
    assert page.eval("[...document.querySelectorAll('#layer-nodes .node.highlighted')].map(e => e.dataset.id)") == [dev["ID"]]
    page.eval("window.skydive.renderer.highlight([])")

    # delete through the row's button
    page.eval("document.querySelector('#capture-table tbody tr button.danger').click()")
    page.wait_for("document.querySelectorAll('#capture-table tbody tr').length === 0", message="capture deleted")
    assert requests.get(base + "/api/capture", timeout=10).json() == {}
    assert page.eval("document.getElementById('capture-empty').hidden") is False


class FakeAgent:
    """An agent connection on /ws/agent/topology (DeleteOnDisconnect), in its own thread."""

    def __init__(self, base, host_id):
        self.url = base.replace("http://", "ws://") + "/ws/agent/topology"
        self.host_id = host_id
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.session = self.ws = None

    def run(self, coro, timeout=20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _connect(self):
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, headers={
            "X-Host-ID": self.host_id, "X-Client-Type": "agent", "X-Client-Protocol": "json",
            "X-Persistence-Policy": "DeleteOnDisconnect"})

    async def _send(self, type_, obj):
        await self.ws.send_str(json.dumps({"Namespace": "Graph", "Type": type_, "UUID": uuid.uuid4().hex,
                                           "Status": 200, "Obj": obj}))

    async def _close(self):
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()

    def connect(self):
        self.run(self._connect())

    def send(self, type_, obj):
        self.run(self._send(type_, obj))

    def close(self):
        try:
            self.run(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def test_status_bar_and_agent_graph(analyzer, page):
    base = analyzer.url
    assert page.eval("document.getElementById('st-analyzer').textContent").startswith(
        "Analyzer %s" % requests.get(base + "/api", timeout=10).json()["Host"])
    page.wait_for("document.getElementById('st-agents').textContent.startsWith('Agents: 0 connected')")
    agent = FakeAgent(base, "ui-agent-1")
    nid = str(uuid.uuid4())
    try:
        agent.connect()
        agent.send("NodeAdded", {"ID": nid, "Metadata": {"Name": "ui-agent-1", "Type": "host"}, "Host": "ui-agent-1",
                                 "Origin": "agent.ui-agent-1", "CreatedAt": 0, "UpdatedAt": 0, "Revision": 1})
        page.wait_for(q_node(nid) + " !== null",
                      message="the agent's node")
        page.wait_for("document.getElementById('st-agents').textContent.startsWith('Agents: 1 connected')",
                      timeout=20, message="the status bar counting the agent")
        assert "ui-agent-1" in page.eval("document.getElementById('st-agents').title")
    finally:
        agent.close()
    # DeleteOnDisconnect: the agent's graph goes away, and so does the agent
    page.wait_for(q_node(nid) + " === null", timeout=20)
    page.wait_for("document.getElementById('st-agents').textContent.startsWith('Agents: 0 connected')", timeout=20)


def _png_info(path):
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(data), zlib.decompress(idat)


def test_screenshot(analyzer, page, tmp_path):
    page.eval("window.skydive.tabs.show('tab-details'); window.skydive.renderer.select(null);"
              "window.skydive.renderer.highlight([]); window.skydive.renderer.userView = false;"
              "window.skydive.renderer.fit(false)")
    page.wait_for("document.body.dataset.layout === 'stable'", timeout=60)
    path = page.screenshot(str(tmp_path / "skydive-ui.png"))
    width, height, size, raw = _png_info(path)
    assert (width, height) == WINDOW
    assert size > 20000
    # not a blank page: many distinct byte values in the (filtered) scanlines
    assert len(set(raw[::7])) > 100
    # every node of the topology is inside the visible graph area after a fit
    outside = page.eval("""(() => { const pane = document.getElementById('graph').getBoundingClientRect();
        return [...document.querySelectorAll('#layer-nodes .node .shape')].filter(e => {
          const r = e.getBoundingClientRect();
          return r.left < pane.left || r.right > pane.right || r.top < pane.top || r.bottom > pane.bottom; }).length; })()""")
    assert outside == 0
    assert not [c for c in page.console if c.startswith("exception")], page.console
    if os.environ.get("SKYDIVE_UI_SCREENSHOT"):
        import shutil
        shutil.copy(path, os.environ["SKYDIVE_UI_SCREENSHOT"])


def _trace_text_layouts(page, action):
    """Run action() under a Chromium trace: (SVG <text> layouts, page layouts) meanwhile."""
    with page._cond:
        page._events = [e for e in page._events if not e.get("method", "").startswith("Tracing.")]
    page.call("Tracing.start", categories="devtools.timeline,blink", transferMode="ReportEvents")
    try:
        action()
    finally:
        page.call("Tracing.end")
    wait_until(lambda: any(e.get("method") == "Tracing.tracingComplete" for e in list(page._events)),
               timeout=60, message="the trace")
    with page._cond:
        events = [ev for e in page._events if e.get("method") == "Tracing.dataCollected" for ev in e["params"]["value"]]
    return (sum(1 for e in events if e.get("name") == "SvgTextLayoutAlgorithm::Layout"),
            sum(1 for e in events if e.get("name") == "LocalFrameView::performLayout"))


def test_new_nodes_do_not_relayout_every_label(analyzer, topo, page):
    """A NodeAdded lays out the new node's <text>, not every label of the page again (the <svg>
    is sized in px: sized 100%, the status bar's count change made Chromium re-lay out all)."""
    host = topo["h2"]["host"]
    page.eval("window.skydive.renderer.userView = true")       # no re-fit: a zoom re-lays out all, rightly
    page.wait_for("document.body.dataset.layout === 'stable'", timeout=60)
    texts = page.eval("[...document.querySelectorAll('#graph text')].filter(t => t.getBoundingClientRect().width > 0).length")
    ids = [str(uuid.uuid4()) for _ in range(3)]

    def add():
        for i, nid in enumerate(ids):
            post_node(analyzer.url, nid, host["Host"], {"Name": "relayout-%d" % i, "Type": "tuntap"})
            page.wait_for(q_node(nid) + " !== null && document.body.dataset.layout === 'stable'", timeout=30)
    try:
        laid, layouts = _trace_text_layouts(page, add)
    finally:
        for nid in ids:
            requests.delete(analyzer.url + "/api/node/" + nid, timeout=10, headers={"Content-Type": "application/json"})
        page.eval("window.skydive.renderer.userView = false; window.skydive.renderer.fit(false)")
    assert texts > 20 and layouts >= 3 and laid >= 3, (texts, laid, layouts)
    assert laid < texts, (texts, laid, layouts)


def publish(base, msgs, host_id):
    """Graph messages through /ws/publisher, in order."""
    async def run():
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(base.replace("http://", "ws://") + "/ws/publisher", headers={
                "X-Host-ID": host_id, "X-Client-Type": "ui-test", "X-Client-Protocol": "json"})
            for t, obj in msgs:
                await ws.send_str(json.dumps({"Namespace": "Graph", "Type": t, "UUID": uuid.uuid4().hex,
                                              "Status": 200, "Obj": obj}))
            await ws.close()
    asyncio.run(run())


def label_overlaps(page):
    """Pairs of visible labels whose boxes overlap on screen (and how many labels are visible)."""
    return page.eval("""(() => {
      const labels = [...document.querySelectorAll('#layer-nodes .node:not([display=none]) .label, #layer-nodes .bundle .label')]
        .filter(l => getComputedStyle(l).display !== 'none' && getComputedStyle(l).visibility !== 'hidden' && l.textContent && l.getBoundingClientRect().width > 0);
      const boxes = labels.map(l => l.getBoundingClientRect());
      let n = 0;
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) { n++; console.log('OVERLAP', JSON.stringify([a, b, labels[i].textContent, labels[j].textContent, getComputedStyle(labels[i]).fontSize, getComputedStyle(labels[j]).fontSize])); }
      }
      return [n, boxes.length];
    })()""")


def test_labels_do_not_overlap_at_500_nodes(analyzer, page):
    base = analyzer.url
    ids, msgs = [], []
    for h in range(20):
        hid = "lbl-%s-%d" % (uuid.uuid4().hex[:4], h)
        root = str(uuid.uuid4())
        msgs.append(("NodeAdded", {"ID": root, "Metadata": {"Name": hid, "Type": "host"}, "Host": hid, "Revision": 1}))
        ids.append(root)
        for i in range(24):
            nid = str(uuid.uuid4())
            msgs.append(("NodeAdded", {"ID": nid, "Host": hid, "Revision": 1,
                                       "Metadata": {"Name": "tap%02d-%s" % (i, hid[-4:]), "Type": ("veth", "device", "tuntap")[i % 3]}}))
            msgs.append(("EdgeAdded", {"ID": str(uuid.uuid4()), "Parent": root, "Child": nid, "Host": hid, "Revision": 1,
                                       "Metadata": {"RelationType": "ownership"}}))
            ids.append(nid)
    publish(base, msgs, "ui-labels")
    page.wait_for("document.querySelectorAll('#layer-nodes .node:not([display=none])').length >= 500", timeout=60)
    page.eval("window.skydive.renderer.userView = false; window.skydive.renderer.fit(false)")
    settled = "!window.skydive.layout.running && document.body.dataset.layout === 'stable' && !window.skydive.renderer.labelsDirty"
    page.wait_for(settled, timeout=90, message="layout and labels settled")
    # the agent's live nodes of the machine may still arrive and move a neighbour: the labels are
    # re-placed once it settles again, so the check is on the settled picture, within 20 s
    deadline = time.time() + 20
    while True:
        n, shown = label_overlaps(page)
        if n == 0 or time.time() > deadline:
            break
        time.sleep(0.5)
        page.wait_for(settled, timeout=30, message="layout and labels settled again")
    assert n == 0 and shown > 0, (n, shown, [c for c in page.console if "OVERLAP" in c])
    # zoomed in (every node's label is a candidate): still none overlaps, most are shown
    page.eval("window.skydive.renderer.zoom(1 / window.skydive.renderer.view.k)")
    page.wait_for("!window.skydive.renderer.labelsDirty", timeout=20)
    n, shown = label_overlaps(page)
    assert n == 0 and shown > 20, (n, shown)
    page.eval("window.skydive.renderer.userView = false; window.skydive.renderer.fit(false)")
    publish(base, [("NodeDeleted", {"ID": nid, "Host": "", "Metadata": {}}) for nid in ids], "ui-labels-del")
    page.wait_for("document.body.dataset.nodes === '%d'" % len(api_nodes(base)), timeout=30)


def test_openstack_mark(analyzer, topo, page):
    """Interfaces the Neutron probe tags `Manager: neutron` carry the OpenStack mark."""
    eth0 = topo["h2"]["eth0"]
    patch = [{"op": "add", "path": "/Metadata/Manager", "value": "neutron"}]
    assert requests.patch(analyzer.url + "/api/node/" + eth0["ID"], json=patch, timeout=10).status_code == 200
    page.wait_for(q_node(eth0["ID"]) + ".classList.contains('openstack') && " + q_node(eth0["ID"]) + ".querySelector('use.os-mark') !== null")
    assert page.eval("document.querySelector('#legend [data-legend=openstack]').textContent") == "OpenStack-managed"
    patch = [{"op": "remove", "path": "/Metadata/Manager"}]
    assert requests.patch(analyzer.url + "/api/node/" + eth0["ID"], json=patch, timeout=10).status_code == 200
    page.wait_for(q_node(eth0["ID"]) + ".querySelector('use.os-mark') === null")


def test_thousands_of_nodes(analyzer, page):
    """2000 nodes (100 hosts × 19) pushed by one publisher: the page keeps up and settles."""
    base = analyzer.url
    hosts, per_host = 100, 19
    msgs, ids = [], []
    for h in range(hosts):
        hid = "bulk-%s-%d" % (uuid.uuid4().hex[:4], h)
        root = str(uuid.uuid4())
        ids.append(root)
        msgs.append(("NodeAdded", {"ID": root, "Metadata": {"Name": hid, "Type": "host"}, "Host": hid, "Revision": 1}))
        for i in range(per_host - 1):
            nid = str(uuid.uuid4())
            ids.append(nid)
            msgs.append(("NodeAdded", {"ID": nid, "Metadata": {"Name": "eth%d" % i, "Type": "veth"}, "Host": hid, "Revision": 1}))
            msgs.append(("EdgeAdded", {"ID": str(uuid.uuid4()), "Parent": root, "Child": nid, "Host": hid, "Revision": 1,
                                       "Metadata": {"RelationType": "ownership"}}))
    before = int(page.eval("document.body.dataset.nodes"))

    async def publish():
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(base.replace("http://", "ws://") + "/ws/publisher", headers={
                "X-Host-ID": "ui-bulk", "X-Client-Type": "ui-test", "X-Client-Protocol": "json"})
            for t, obj in msgs:
                await ws.send_str(json.dumps({"Namespace": "Graph", "Type": t, "UUID": uuid.uuid4().hex,
                                              "Status": 200, "Obj": obj}))
            await ws.close()

    asyncio.run(publish())
    total = before + len(ids)
    wait_until(lambda: len(api_nodes(base)) == total, timeout=60, message="the analyzer holding every published node")
    page.wait_for("document.body.dataset.nodes === '%d'" % total, timeout=60, message="all nodes in the page")
    assert dom_node_ids(page) >= set(ids)
    # the layout is bounded: it settles, and frames stay short once it has
    page.wait_for("document.body.dataset.layout === 'stable'", timeout=90, message="the layout settling")
    assert page.eval("window.skydive.layout.ticks") <= 400
    gaps = page.eval("""new Promise(res => { const ts = []; let last = performance.now();
        function f(now) { ts.push(now - last); last = now; if (ts.length < 20) requestAnimationFrame(f); else res(ts); }
        requestAnimationFrame(f); })""")
    assert sorted(gaps)[len(gaps) // 2] < 250, gaps
    # a live change on a big graph touches that node only
    nid = str(uuid.uuid4())
    post_node(base, nid, "late", {"Name": "late-node", "Type": "device"})
    page.wait_for(q_node(nid) + " !== null", timeout=20)


def test_reconnects_after_analyzer_restart(analyzer, page):
    if analyzer.proc is None and EXTERNAL:
        pytest.skip("external analyzer: cannot restart it")
    analyzer.stop()
    page.wait_for("document.body.dataset.wsState === 'disconnected' && "
                  "document.getElementById('conn-state').textContent.startsWith('Disconnected — retrying in')",
                  timeout=20, interval=0.05, message="the disconnection shown")
    analyzer.start()
    nid = str(uuid.uuid4())
    post_node(analyzer.url, nid, "after-restart", {"Name": "after-restart", "Type": "device"})
    page.wait_for("document.body.dataset.wsState === 'connected'", timeout=40, message="reconnection")
    page.wait_for(q_node(nid) + " !== null", timeout=20,
                  message="the node created after the restart")
    page.wait_for("document.body.dataset.nodes === '%d'" % len(api_nodes(analyzer.url)), timeout=20)
    assert dom_node_ids(page) == set(api_nodes(analyzer.url))
    assert page.eval("document.getElementById('conn-state').textContent") == "Live"


class SecuredAnalyzer(SkydiveProcess):
    """SkydiveProcess waits for GET /api == 200; behind auth it answers 401 until logged in."""

    def start(self, timeout=30):
        with open(self.conf_path, "w") as fh:
            yaml.safe_dump(self.config, fh)
        cmd = SKYDIVE + ["-c", self.conf_path, self.command, "--listen", self.address] + self.extra_args
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ, PYTHONPATH=REPO), cwd=self.workdir)
        try:
            wait_until(lambda: self.proc.poll() is None and
                       requests.get(self.url + "/api", timeout=1).status_code == 401,
                       timeout=timeout, message="the secured analyzer answering 401")
        except AssertionError:
            self.stop()
            raise AssertionError("secured analyzer did not start:\n" + self.log_tail())
        return self


def test_login_dialog_with_basic_auth(analyzer, page, tmp_path):
    """An analyzer with a basic auth backend: the page asks for credentials, then goes live."""
    if EXTERNAL:
        pytest.skip("external analyzer: cannot start a second one with an auth backend")
    cfg = analyzer_config(tmp_path, auth={"ui-basic": {"type": "basic", "users": {"admin": "s3cret"}}})
    cfg["analyzer"]["auth"] = {"api": {"backend": "ui-basic"}}
    secured = SecuredAnalyzer("analyzer", tmp_path, cfg)
    secured.start()
    try:
        base = secured.url
        assert requests.get(base + "/api/status", timeout=10).status_code == 401
        nid = str(uuid.uuid4())
        r = requests.post(base + "/api/node", auth=("admin", "s3cret"), timeout=10,
                          json={"ID": nid, "Metadata": {"Name": "behind-auth", "Type": "host"}})
        assert r.status_code == 201, r.text
        # the page is public, the API is not: the dialog opens, the websocket cannot connect
        page.navigate(base + "/")
        page.wait_for("document.getElementById('login-dialog').open", timeout=45, message="the login dialog")
        assert page.eval("document.body.dataset.wsState") != "connected"
        page.eval("document.getElementById('login-user').value = 'admin';"
                  "document.getElementById('login-password').value = 'wrong';"
                  "document.querySelector('#login-form button[type=submit]').click()")
        page.wait_for("!document.getElementById('login-error').hidden", message="the refusal")
        assert page.eval("document.getElementById('login-error').textContent") == \
            requests.post(base + "/login", data={"username": "admin", "password": "wrong"}, timeout=10).text.strip()
        assert page.eval("document.getElementById('login-dialog').open")
        page.eval("document.getElementById('login-password').value = 's3cret';"
                  "document.querySelector('#login-form button[type=submit]').click()")
        page.wait_for("!document.getElementById('login-dialog').open", message="the dialog closed")
        page.wait_for("document.body.dataset.wsState === 'connected' && document.body.dataset.nodes === '1'",
                      timeout=30, message="the live graph behind auth")
        assert dom_node_ids(page) == {nid}
        page.wait_for("document.getElementById('st-agents').textContent.startsWith('Agents: 0 connected')")
    finally:
        secured.stop()
