"""The Red Hat OSP guide's chapter 5 in headless Chromium, against a real analyzer and a real agent:
a capture created from a Gremlin expression in the UI, 20 pings between two namespaces, the Flows
tab's ICMPv4 row refreshing by itself; the hosts-first view (expand/collapse a namespace), a veth set
DOWN turning red, positions kept across a reload, and every other tab creating, listing and deleting
its resource.

One stack (analyzer + agent, flow.update 1 s), one set of namespaces and one browser for the module.
Screenshots go to $SKYDIVE_UI_ARTIFACTS (default: a temp dir), printed by the tests.
"""

import json
import os
import re
import shutil
import tempfile
import time
import uuid

import pytest
import requests

from tests.fixtures.processes import analyzer_config
from tests.fixtures.stack import Stack
from tests.fixtures.topology import NetEnv, Names, run
from tests.ui.browser import Browser, chromium_binary
from tests.ui.test_ui import js, q_node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RED = "rgb(207, 34, 46)"


@pytest.fixture(scope="module")
def artifacts():
    path = os.environ.get("SKYDIVE_UI_ARTIFACTS") or tempfile.mkdtemp(prefix="skydive-ui-artifacts-")
    os.makedirs(path, exist_ok=True)
    print("\nUI screenshots in %s" % path)
    return path


@pytest.fixture(scope="module")
def net():
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "ping")):
        pytest.skip("needs root, iproute2 and ping")
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    n = Names("ug")
    env = NetEnv()
    try:
        prefix = "10.%d.%d" % (uuid.uuid4().int % 150 + 100, uuid.uuid4().int % 250 + 1)
        pair = {"ns_a": env.add_netns(n("na")), "ns_b": env.add_netns(n("nb")), "a": n("a"), "b": n("b"),
                "ip_a": prefix + ".1", "ip_b": prefix + ".2", "root0": n("r"), "root1": n("r")}
        env.add_veth(pair["a"], pair["b"], netns_a=pair["ns_a"], netns_b=pair["ns_b"])
        for ns, ifname, ip in ((pair["ns_a"], pair["a"], pair["ip_a"]), (pair["ns_b"], pair["b"], pair["ip_b"])):
            env.ip("addr", "add", ip + "/24", "dev", ifname, netns=ns)
            env.ip("link", "set", ifname, "up", netns=ns)
            env.ip("link", "set", "lo", "up", netns=ns)
        env.add_veth(pair["root0"], pair["root1"])          # in the root namespace: set DOWN by a test
        env.ip("link", "set", pair["root0"], "up")
        env.ip("link", "set", pair["root1"], "up")
        yield pair
    finally:
        env.cleanup()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, net):
    workdir = tmp_path_factory.mktemp("ui-guide")
    cfg = analyzer_config(str(workdir))
    cfg["flow"] = {"update": 1, "expire": 600}
    cfg["analyzer"]["capture"] = {"debounce": 0.1}
    s = Stack(workdir, {"host_id": "uiguide-%s" % os.urandom(3).hex(),
                        "agent": {"topology": {"probes": [], "netlink": {"metrics_update": 1}}, "capture": {"stats_update": 1},
                                  "injection": {"stats_update": 0.5}},
                        "flow": {"update": 1, "expire": 600}}, cfg)
    try:
        s.start()
        s.wait_count("G.V().Has('Name','%s')" % net["a"], 1, timeout=20)
        s.wait_count("G.V().Has('Name','%s')" % net["root0"], 1, timeout=20)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def page(stack):
    b = Browser().start()
    try:
        # Browser.start() turns Chromium's HTTP cache off (its lock held a reload up to 20 s)
        b.navigate(stack.url + "/")
        b.wait_for("document.body.dataset.wsState === 'connected' && Number(document.body.dataset.syncs) >= 1",
                   message="the first SyncReply")
        yield b
    finally:
        b.close()


def settle(page):
    """The layout has stopped (live state, not the attribute a frame may not have refreshed yet)."""
    page.wait_for("!window.skydive.layout.running && document.body.dataset.layout === 'stable' && !window.skydive.renderer.labelsDirty",
                  timeout=60, message="the layout settled")


def shot(page, artifacts, name):
    path = page.screenshot(os.path.join(artifacts, name + ".png"))
    print("screenshot: %s" % path)
    return path


def shown(nid):
    """JS: the node is drawn (its element exists, not folded away)."""
    return "(() => { const e = %s; return !!e && e.getAttribute('display') === null; })()" % q_node(nid)


def hidden(nid):
    """JS: the node is not drawn (never shown yet: no element; or folded: display none)."""
    return "(() => { const e = %s; return !e || e.getAttribute('display') === 'none'; })()" % q_node(nid)


def visible_ids(page):
    return set(page.eval("[...document.querySelectorAll('#layer-nodes .node:not([display=none])')].map(e => e.dataset.id)"))


def click_el(page, selector_js):
    """A real mouse click in the middle of an element (after centring its node in view)."""
    x, y = page.eval("(() => { const r = (%s).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()" % selector_js)
    page.click(x, y)


def expander(page, nid):
    """A real click on a node's Expand/Collapse button, once the picture is still."""
    settle(page)
    page.eval("window.skydive.renderer.centerOn(%s)" % js(nid))
    sel = q_node(nid) + ".querySelector('.expander')"
    page.wait_for("""(() => { const e = %s; if (!e) return false; const r = e.getBoundingClientRect();
        const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        return !!hit && hit.closest('.expander') === e; })()""" % sel, message="the expander of %s clickable" % nid)
    click_el(page, sel)


def node_id(stack, name):
    return stack.node(name)["ID"]


def host_id(stack):
    return stack.q("G.V().Has('Type','host','Name','%s')" % stack.agent_host_id)[0]["ID"]


# ------------------------------------------------------------------------------ hosts first
def test_hosts_first_expand_collapse(stack, net, page, artifacts):
    host = host_id(stack)
    ns_a = node_id(stack, net["ns_a"])
    a = stack.node(net["a"], ",'Type','veth'")["ID"]
    settle(page)
    # the hosts only: every node of the graph is there, folded into its host
    assert visible_ids(page) == {host}
    assert page.eval(q_node(host) + ".classList.contains('collapsed')")
    count = int(page.eval(q_node(host) + ".querySelector('.fold-count').textContent"))
    assert count == len(stack.q("G.V()")) - 1
    shot(page, artifacts, "01-hosts-first")
    # first expand: namespaces, NICs; the interfaces inside a namespace stay folded
    expander(page, host)
    page.wait_for(shown(ns_a), message="the namespace shown")
    assert page.eval(hidden(a))
    assert page.eval(q_node(ns_a) + ".classList.contains('collapsed')")
    # second expand: the namespace's interfaces
    expander(page, ns_a)
    page.wait_for(shown(a), message="the interface in the namespace shown")
    settle(page)
    pos = page.eval("window.skydive.layout.point(%s).x" % js(a))
    shot(page, artifacts, "02-namespace-expanded")
    # collapse hides it again, expand brings it back where it was
    expander(page, ns_a)
    page.wait_for(hidden(a), message="collapsed again")
    expander(page, ns_a)
    page.wait_for(shown(a))
    settle(page)
    assert abs(page.eval("window.skydive.layout.point(%s).x" % js(a)) - pos) < 30


def test_reload_keeps_positions(stack, net, page):
    settle(page)
    get = """(() => { const out = {}; for (const p of window.skydive.layout.list) out[p.id] = [p.x, p.y]; return out; })()"""
    before = page.eval(get)
    assert len(before) > 3
    page.eval("window.skydive.layout.save()")
    page.navigate(stack.url + "/")
    page.wait_for("document.body.dataset.wsState === 'connected' && Number(document.body.dataset.syncs) >= 1")
    settle(page)
    after = page.eval(get)
    # this test's nodes (other helpers' namespaces on this machine come and go meanwhile)
    names = ("ns_a", "ns_b", "a", "b", "root0", "root1")
    ours = {host_id(stack)} | {n["ID"] for name in names for n in stack.q("G.V().Has('Name','%s')" % net[name])}
    ours &= set(before)
    assert len(ours) >= 3 and ours <= set(after)
    for nid, (x, y) in before.items():
        if nid not in ours:
            continue
        assert abs(after[nid][0] - x) < 1 and abs(after[nid][1] - y) < 1, (nid, before[nid], after[nid], page.eval(
            "(() => { const l = window.skydive.layout, n = window.skydive.store.node(%s); return [n.Metadata.Name, n.Metadata.Type,"
            " l.movable && [...l.movable].map(i => window.skydive.store.node(i) && window.skydive.store.node(i).Metadata.Name),"
            " l.saved.get(%s), window.skydive.store.events, l.ticks]; })()" % (js(nid), js(nid))))


def test_new_node_appears_without_moving_the_rest(stack, net, page):
    host = host_id(stack)
    settle(page)
    get = """(() => { const out = {}; for (const p of window.skydive.layout.list) out[p.id] = [p.x, p.y]; return out; })()"""
    before = page.eval(get)
    nid = str(uuid.uuid4())
    requests.post(stack.url + "/api/node", timeout=10, json={"ID": nid, "Host": "", "Metadata": {"Name": "ui-late", "Type": "device"}})
    link = {"ID": str(uuid.uuid4()), "Parent": host, "Child": nid, "Metadata": {"RelationType": "ownership"}}
    requests.post(stack.url + "/api/edge", timeout=10, json=link)
    page.wait_for(shown(nid))
    settle(page)
    after = page.eval(get)
    ours = {n["ID"] for name in ("ns_a", "ns_b", "root0", "root1") for n in stack.q("G.V().Has('Name','%s')" % net[name])} | {host}
    moved = [k for k, (x, y) in before.items() if k in ours and k in after and (abs(after[k][0] - x) > 0.5 or abs(after[k][1] - y) > 0.5)]
    assert moved == []
    hp, np_ = after[host], after[nid]
    assert ((hp[0] - np_[0]) ** 2 + (hp[1] - np_[1]) ** 2) ** 0.5 < 200     # near its owner
    requests.delete(stack.url + "/api/node/" + nid, timeout=10, headers={"Content-Type": "application/json"})
    page.wait_for(q_node(nid) + " === null")


def test_veth_down_turns_red_without_reload(stack, net, page, artifacts):
    rid = stack.node(net["root0"])["ID"]
    page.eval("window.skydive.renderer.reveal(%s)" % js(rid))
    page.wait_for(shown(rid))
    fill = "getComputedStyle(%s.querySelector('.shape')).fill" % q_node(rid)
    assert page.eval(fill) != RED
    run(["ip", "link", "set", net["root0"], "down"])
    page.wait_for(q_node(rid) + ".classList.contains('state-down')", timeout=20, message="DOWN shown")
    assert page.eval(fill) == RED
    # red for nothing else: no other node of the page is red
    others = page.eval("[...document.querySelectorAll('#layer-nodes .node:not(.state-down) .shape')]"
                       ".filter(e => getComputedStyle(e).fill === %s).length" % js(RED))
    assert others == 0
    shot(page, artifacts, "03-veth-down")
    run(["ip", "link", "set", net["root0"], "up"])
    page.wait_for("!" + q_node(rid) + ".classList.contains('state-down')", timeout=20, message="UP again")


# ------------------------------------------------------------------------------ chapter 5
def test_chapter5_capture_ping_flows(stack, net, page, artifacts):
    a = stack.node(net["a"], ",'Type','veth'")
    page.eval("window.skydive.tabs.show('tab-details'); window.skydive.renderer.reveal(%s);"
              "window.skydive.renderer.select({kind: 'node', id: %s})" % (js(a["ID"]), js(a["ID"])))
    page.eval("document.getElementById('tab-captures').click()")
    # only the types this node's agent runs
    host = stack.q("G.V().Has('Type','host','Name','%s')" % stack.agent_host_id)[0]
    offered = page.eval("document.getElementById('capture-type').dataset.types").split()
    assert offered and set(offered) <= set(host["Metadata"]["CaptureTypes"]) and "ovssflow" not in offered
    # the guide: a capture from a Gremlin expression
    query = "G.V().Has('Name', '%s', 'Type', 'veth')" % net["a"]
    page.eval("document.getElementById('capture-query').value = %s;"
              "document.getElementById('capture-name').value = 'guide-ch5';"
              "document.getElementById('capture-create').click()" % js(query))
    page.wait_for("document.querySelectorAll('#capture-table tbody tr').length === 1", message="capture listed")
    cid = page.eval("document.querySelector('#capture-table tbody tr').dataset.id")
    assert requests.get(stack.url + "/api/capture/" + cid, timeout=10).json()["GremlinQuery"] == query
    page.wait_for("document.querySelector('#capture-table tbody tr').children[3].textContent === 'active on 1'",
                  timeout=30, message="capture active in the table")
    run(["ip", "netns", "exec", net["ns_a"], "ping", "-c", "20", "-i", "0.2", "-W", "2", net["ip_b"]], timeout=60)
    page.wait_for("Number(document.querySelector('#capture-table tbody tr').children[4].textContent.replace(/,/g, '')) >= 40",
                  timeout=20, message="packet counter in the captures table")
    # the Flows tab, default query, refreshing by itself (no click after opening it)
    page.eval("document.getElementById('tab-flows').click()")
    assert page.eval("document.getElementById('flows-query').value") == "G.Flows().Sort()"
    row = "[...document.querySelectorAll('#flows-table tbody tr')].filter(r => r.children[0].textContent === 'ICMPv4')"
    page.wait_for(row + ".length === 1 && " + row + "[0].children[3].textContent === '20' && " + row + "[0].children[4].textContent === '20'",
                  timeout=30, message="one ICMPv4 row with 20 packets each way")
    cells = page.eval("[...%s[0].children].map(c => c.textContent)" % row)
    assert cells[1] == net["ip_a"] and cells[2] == net["ip_b"]
    assert cells[5] == "1,960" and cells[6] == "1,960", cells
    assert re.fullmatch(r"\d+(\.\d+)?", cells[7]) and 0 < float(cells[7]) < 1000, cells   # ms
    n0 = int(page.eval("document.body.dataset.flowRefreshes"))
    time.sleep(2.5)
    assert int(page.eval("document.body.dataset.flowRefreshes")) >= n0 + 2      # every 1 s by default
    # sort by a column
    page.eval("document.querySelector('#flows-table th[data-key=abp] button').click()")
    assert page.eval("document.querySelector('#flows-table th[data-key=abp]').getAttribute('aria-sort')") == "descending"
    # a row click: the capture node highlighted, the flow's details
    page.eval(row + "[0].click()")
    page.wait_for("document.querySelector('#flow-kv [data-key=TrackingID]') !== null")
    flow = stack.q("G.Flows().Has('CaptureID', '%s', 'Application', 'ICMPv4')" % cid)[0]
    assert flow["TrackingID"] in page.eval("document.getElementById('flow-details').innerText")
    page.wait_for("document.body.dataset.flowHighlight && document.body.dataset.flowHighlight.split(' ').includes(%s)" % js(a["ID"]))
    assert page.eval(q_node(a["ID"]) + ".classList.contains('highlighted')")
    shot(page, artifacts, "04-flows-tab")
    # a node's own flows from its details panel
    page.eval("window.skydive.tabs.show('tab-details'); window.skydive.renderer.select({kind: 'node', id: %s})" % js(a["ID"]))
    page.wait_for("document.getElementById('details-flows') !== null")
    page.eval("document.getElementById('details-flows').click()")
    assert page.eval("document.getElementById('flows-query').value") == "G.V().Has('TID', '%s').Flows().Sort()" % a["Metadata"]["TID"]
    page.wait_for(row + ".length === 1")
    # interface metrics as charts in the details (the agent sends them every second here)
    page.eval("window.skydive.tabs.show('tab-details')")
    page.wait_for("document.querySelector('#metrics-charts svg.chart polyline.rx') !== null", timeout=30,
                  message="the traffic charts")
    shot(page, artifacts, "05-metrics")
    page.eval("window.skydive.renderer.highlight([])")
    requests.delete(stack.url + "/api/capture/" + cid, timeout=10, headers={"Content-Type": "application/json"})


# ------------------------------------------------------------------------------ the other tabs
def select_node(page, nid):
    page.eval("window.skydive.renderer.reveal(%s); window.skydive.renderer.select({kind: 'node', id: %s})" % (js(nid), js(nid)))
    page.wait_for("document.body.dataset.selected === %s" % js(nid))


def test_generator_tab(stack, net, page, artifacts):
    a, b = stack.node(net["a"], ",'Type','veth'"), stack.node(net["b"], ",'Type','veth'")
    page.eval("document.getElementById('tab-generator').click()")
    select_node(page, a["ID"])
    page.eval("document.getElementById('gen-src-pick').click()")
    select_node(page, b["ID"])
    page.eval("document.getElementById('gen-dst-pick').click()")
    assert page.eval("document.getElementById('gen-src').value") == "G.V().Has('TID', '%s')" % a["Metadata"]["TID"]
    page.eval("document.getElementById('gen-count').value = '20'; document.getElementById('gen-interval').value = '200';"
              "document.getElementById('gen-ttl').value = '32'; document.getElementById('gen-start').click()")
    page.wait_for("document.querySelectorAll('#gen-table tbody tr').length === 1", message="injection listed")
    iid = page.eval("document.querySelector('#gen-table tbody tr').dataset.id")
    inj = requests.get(stack.url + "/api/injectpacket/" + iid, timeout=10).json()
    assert inj["Count"] == 20 and inj["Interval"] == 200 and inj["TTL"] == 32 and inj["Type"] == "icmp4"
    page.wait_for("/^sending: [1-9]\\d* \\/ 20$/.test(document.querySelector('#gen-table .progress').textContent)",
                  timeout=20, message="progress while it runs")
    shot(page, artifacts, "06-generator")
    page.eval("document.querySelector('#gen-table tbody tr button.danger').click()")
    page.wait_for("document.querySelectorAll('#gen-table tbody tr').length === 0", message="injection deleted")
    assert requests.get(stack.url + "/api/injectpacket", timeout=10).json() == {}


def test_alerts_tab(stack, net, page, artifacts):
    rid = stack.node(net["root1"])["ID"]
    page.eval("document.getElementById('tab-alerts').click()")
    expr = "G.V().Has('Name', '%s')" % net["root1"]
    page.eval("document.getElementById('alert-name').value = 'ui-alert';"
              "document.getElementById('alert-expression').value = %s;"
              "document.getElementById('alert-create').click()" % js(expr))
    page.wait_for("document.querySelectorAll('#alert-table tbody tr').length === 1", message="alert listed")
    aid = page.eval("document.querySelector('#alert-table tbody tr').dataset.id")
    assert requests.get(stack.url + "/api/alert/" + aid, timeout=10).json()["Expression"] == expr
    # evaluated at registration: it fires, the feed shows when and on which node
    page.wait_for("document.querySelector('#alert-feed li[data-alert=%s]') !== null" % js(aid), timeout=20, message="alert fired")
    li = "document.querySelector('#alert-feed li[data-alert=%s]')" % js(aid)
    assert page.eval(li + ".querySelector('time').getAttribute('datetime')")
    # fired at registration, maybe before the list knew it: the name replaces the UUID once it does
    page.wait_for("%s.innerText.includes('ui-alert')" % li, timeout=10, message="the fired alert named in the feed")
    assert net["root1"] in page.eval(li + ".innerText")
    page.eval(li + ".querySelector('button').click()")
    assert page.eval(q_node(rid) + ".classList.contains('highlighted')")
    page.eval("window.skydive.renderer.highlight([])")
    # a refused alert shows the analyzer's reason
    page.eval("document.getElementById('alert-expression').value = 'G.V().Foo('; document.getElementById('alert-create').click()")
    page.wait_for("!document.getElementById('alert-error').hidden")
    assert page.eval("document.getElementById('alert-error').textContent").startswith("Alert not created: HTTP 400: ")
    shot(page, artifacts, "07-alerts")
    page.eval("document.querySelector('#alert-table tbody tr button.danger').click()")
    page.wait_for("document.querySelectorAll('#alert-table tbody tr').length === 0", message="alert deleted")
    assert requests.get(stack.url + "/api/alert", timeout=10).json() == {}


def test_topology_rules_tab(stack, net, page, artifacts):
    """The operator adds a ToR switch (node rule) and links the host's NIC to it (edge rule)."""
    tor = "ui-tor-%s" % uuid.uuid4().hex[:4]
    nic = stack.node(net["root0"])
    page.eval("document.getElementById('tab-rules').click()")
    page.eval("document.getElementById('noderule-name').value = 'tor';"
              "document.getElementById('noderule-metadata').value = 'Name=%s\\nType=fabric';"
              "document.getElementById('noderule-create').click()" % tor)
    page.wait_for("document.querySelectorAll('#noderule-table tbody tr').length === 1", message="node rule listed")
    tor_q = "G.V().Has('Name', '%s', 'Type', 'fabric')" % tor
    tor_node = stack.wait_q(tor_q, lambda v: v and len(v) == 1)[0]
    page.wait_for(shown(tor_node["ID"]),
                  message="the ToR in the graph (a fabric node: shown in the hosts-first view)")
    page.eval("document.getElementById('edgerule-name').value = 'tor-link';"
              "document.getElementById('edgerule-src').value = %s;" % js(tor_q))
    select_node(page, nic["ID"])
    page.eval("document.getElementById('edgerule-dst-pick').click(); document.getElementById('edgerule-create').click()")
    page.wait_for("document.querySelectorAll('#edgerule-table tbody tr').length === 1", message="edge rule listed")
    link = "[...window.skydive.store.edgesOf(%s)].map(e => window.skydive.store.edge(e)).filter(e => e.Child === %s || e.Parent === %s).length" % (
        js(tor_node["ID"]), js(nic["ID"]), js(nic["ID"]))
    page.wait_for(link + " === 1", timeout=20, message="the link in the page")
    shot(page, artifacts, "08-rules")
    page.eval("document.querySelector('#edgerule-table tbody tr button.danger').click()")
    page.wait_for("document.querySelectorAll('#edgerule-table tbody tr').length === 0")
    page.wait_for(link + " === 0", timeout=20, message="the link removed")
    page.eval("document.querySelector('#noderule-table tbody tr button.danger').click()")
    page.wait_for("document.querySelectorAll('#noderule-table tbody tr').length === 0")
    page.wait_for(q_node(tor_node["ID"]) + " === null", timeout=20, message="the ToR removed")
    assert requests.get(stack.url + "/api/noderule", timeout=10).json() == {}
    assert requests.get(stack.url + "/api/edgerule", timeout=10).json() == {}


def test_workflows_tab(stack, net, page, artifacts):
    a, b = stack.node(net["a"], ",'Type','veth'"), stack.node(net["b"], ",'Type','veth'")
    page.eval("document.getElementById('tab-workflows').click()")
    page.wait_for("document.querySelectorAll('#wf-select option').length >= 4", message="the built-in workflows")
    names = page.eval("[...document.querySelectorAll('#wf-select option')].map(o => o.textContent)")
    assert any(n.startswith("CheckConnectivity") for n in names), names
    page.eval("{ const s = document.getElementById('wf-select'); s.value = [...s.options].find(o => o.textContent.startsWith('CheckConnectivity')).value;"
              "s.dispatchEvent(new Event('change')); }")
    assert page.eval("document.querySelectorAll('#wf-params [data-type=node]').length") == 2
    select_node(page, a["ID"])
    page.eval("document.getElementById('wf-param-0-pick').click()")
    select_node(page, b["ID"])
    page.eval("document.getElementById('wf-param-1-pick').click()")
    assert page.eval("document.getElementById('wf-param-0').value") == a["Metadata"]["TID"]
    page.eval("document.getElementById('wf-call').click()")
    page.wait_for("document.getElementById('wf-meta').textContent.startsWith('done') || !document.getElementById('wf-error').hidden",
                  timeout=60, message="the workflow's answer")
    assert page.eval("document.getElementById('wf-error').hidden"), page.eval("document.getElementById('wf-error').textContent")
    result = json.loads(page.eval("document.getElementById('wf-result').textContent"))
    assert result["Connectivity"] is True and result["Flows"]
    assert page.eval("document.querySelectorAll('#wf-flows tbody tr').length") == len(result["Flows"])
    shot(page, artifacts, "09-workflows")
    # a wrong parameter: the analyzer's reason
    page.eval("document.getElementById('wf-param-0').value = ''; document.getElementById('wf-call').click()")
    page.wait_for("!document.getElementById('wf-error').hidden", timeout=30)
    assert "HTTP 400" in page.eval("document.getElementById('wf-error').textContent")


def test_time_slider_and_changes_since(stack, net, page, artifacts):
    base = stack.url
    gone, kept = str(uuid.uuid4()), str(uuid.uuid4())
    requests.post(base + "/api/node", timeout=10, json={"ID": gone, "Host": "", "Metadata": {"Name": "ui-gone", "Type": "fabric"}})
    page.wait_for(q_node(gone) + " !== null")
    time.sleep(1.0)
    mid = int(time.time() * 1000)
    time.sleep(1.0)
    assert requests.delete(base + "/api/node/" + gone, timeout=10, headers={"Content-Type": "application/json"}).status_code == 200
    requests.post(base + "/api/node", timeout=10, json={"ID": kept, "Host": "", "Metadata": {"Name": "ui-kept", "Type": "fabric"}})
    page.wait_for(q_node(gone) + " === null && " + q_node(kept) + " !== null")
    # At: the graph as it was, live events held
    page.eval("window.skydive.timebar.goAt(%d)" % mid)
    page.wait_for("document.body.dataset.history === '1' && %s !== null && %s === null" % (q_node(gone), q_node(kept)),
                  message="the past graph")
    shot(page, artifacts, "10-at")
    page.eval("document.getElementById('time-live').click()")
    page.wait_for("document.body.dataset.history === undefined && %s === null && %s !== null" % (q_node(gone), q_node(kept)),
                  timeout=20, message="back to live")
    # what changed since 1 min: the new node marked, the removed one named
    page.eval("{ const s = document.getElementById('time-diff'); s.value = '60'; s.dispatchEvent(new Event('change')); }")
    page.wait_for(q_node(kept) + ".classList.contains('diff-added')", timeout=20, message="added node marked")
    shot(page, artifacts, "11-changes-since")
    # since a time the removed node existed: it is named as removed
    page.eval("window.skydive.timebar.diffFrom(%d)" % mid)
    page.wait_for("document.querySelector('#time-removed li[data-id=\"%s\"]') !== null" % gone, message="the removed node listed")
    assert page.eval("document.querySelector('#time-removed li[data-id=\"%s\"]').textContent" % gone) == "ui-gone (fabric)"
    assert page.eval(q_node(kept) + ".classList.contains('diff-added')")
    page.eval("{ const s = document.getElementById('time-diff'); s.value = ''; s.dispatchEvent(new Event('change')); }")
    page.wait_for("!" + q_node(kept) + ".classList.contains('diff-added')")
    requests.delete(base + "/api/node/" + kept, timeout=10, headers={"Content-Type": "application/json"})


def test_many_similar_interfaces_fold_into_a_bundle(stack, net, page, artifacts):
    """50 veths of one host: one bundle node with their count until it is opened."""
    host = host_id(stack)
    # collapse and expand the host: bundles opened by earlier tests fold again
    page.eval("window.skydive.renderer.reveal(%s); window.skydive.renderer.setCollapsed(%s, true);"
              "window.skydive.renderer.setCollapsed(%s, false)" % (js(host), js(host), js(host)))
    ids = [str(uuid.uuid4()) for _ in range(50)]
    try:
        for i, nid in enumerate(ids):
            body = {"ID": nid, "Host": "", "Metadata": {"Name": "uib%d" % i, "Type": "veth", "State": "UP"}}
            r = requests.post(stack.url + "/api/node", timeout=10, json=body)
            assert r.status_code == 201, r.text
            link = {"ID": str(uuid.uuid4()), "Parent": host, "Child": nid, "Metadata": {"RelationType": "ownership"}}
            r = requests.post(stack.url + "/api/edge", timeout=10, json=link)
            assert r.status_code == 201, r.text
        bundle = "document.querySelector(%s)" % js('#layer-nodes .bundle[data-owner="%s"][data-type="veth"]' % host)
        all_hidden = "%s.every(id => { const e = document.querySelector('#layer-nodes [data-id=\"' + id + '\"]');" \
                     " return !e || e.getAttribute('display') === 'none'; })" % js(ids)
        page.wait_for("%s !== null && Number(%s.dataset.count) >= 50 && %s" % (bundle, bundle, all_hidden), timeout=30,
                      message="the 50 veths in one bundle")
        # count and label read in one go: the host's other veths (the machine's) may come and go
        count, label = page.eval("(() => { const b = %s; return [Number(b.dataset.count), "
                                 "b.querySelector('.label').textContent]; })()" % bundle)
        assert label == "%d veth" % count, (label, count)
        settle(page)
        shot(page, artifacts, "12-bundle")
        page.eval("window.skydive.renderer.centerOn(%s)" % js("bundle:%s:veth" % host))
        page.wait_for("""(() => { const e = %s; const r = e.querySelector('.shape').getBoundingClientRect();
            const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
            return !!hit && hit.closest('.bundle') === e; })()""" % bundle, message="the bundle clickable")
        click_el(page, bundle + ".querySelector('.shape')")
        page.wait_for(bundle + " === null", message="the bundle opened")
        n_shown = page.eval("%s.filter(id => { const e = document.querySelector('#layer-nodes [data-id=\"' + id + '\"]');"
                            " return e && e.getAttribute('display') === null; }).length" % js(ids))
        assert n_shown == 50
        settle(page)
        shot(page, artifacts, "13-bundle-opened")
    finally:
        for nid in ids:
            requests.delete(stack.url + "/api/node/" + nid, timeout=10, headers={"Content-Type": "application/json"})
