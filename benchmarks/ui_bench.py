#!/usr/bin/env python3
"""The web UI in headless Chromium against a real `skydive analyzer` (memory backend):

1. first render of a 5,000-node graph, hosts first: from the navigation start to the first
   frame painted after the SyncReply was applied and drawn (target < 2 s); also until the
   layout is still;
2. 100 graph events per second for 30 s (metric updates of visible interfaces, interfaces
   added and deleted under expanded hosts) while the page is live: the duration of every
   animation frame (requestAnimationFrame intervals) and the page's own work per frame,
   p50/p95/max (target p95 <= 50 ms).

    .venv/bin/python benchmarks/ui_bench.py [--hosts 250] [--per-host 20] [--rate 100] [--seconds 30]
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import aiohttp  # noqa: E402

from tests.fixtures.processes import SkydiveProcess, analyzer_config  # noqa: E402
from tests.ui.browser import Browser, chromium_binary  # noqa: E402


def msg(kind, obj):
    return json.dumps({"Namespace": "Graph", "Type": kind, "UUID": uuid.uuid4().hex, "Status": 200, "Obj": obj})


def node(nid, host, **md):
    return {"ID": nid, "Host": host, "Metadata": md, "Revision": 1, "CreatedAt": 0, "UpdatedAt": 0}


def edge(parent, child, host, relation, **md):
    return {"ID": str(uuid.uuid4()), "Parent": parent, "Child": child, "Host": host, "Revision": 1,
            "Metadata": dict(md, RelationType=relation)}


META = {}          # interface id -> its metadata (updates keep it, change the counters and State)


def build(hosts, per_host):
    """Hosts like compute nodes: br-int with ports, namespaces with a veth, NICs; per_host nodes each."""
    msgs, interfaces = [], {}
    META.clear()
    for h in range(hosts):
        name = "compute-%03d" % h
        hid = str(uuid.uuid4())
        msgs.append(("NodeAdded", node(hid, name, Name=name, Type="host")))
        br = str(uuid.uuid4())
        msgs.append(("NodeAdded", node(br, name, Name="br-int", Type="ovsbridge", UUID=str(uuid.uuid4()))))
        msgs.append(("EdgeAdded", edge(hid, br, name, "ownership")))
        left = per_host - 2
        ifs = []
        i = 0
        while left > 0:
            kind = ("netns", "device", "tap")[i % 3]
            if kind == "netns" and left >= 3:
                ns, inner, port = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
                msgs += [("NodeAdded", node(ns, name, Name="qrouter-%d" % i, Type="netns", Path="/var/run/netns/qrouter-%d" % i)),
                         ("EdgeAdded", edge(hid, ns, name, "ownership")),
                         ("NodeAdded", node(inner, name, **META.setdefault(inner, {"Name": "qr-%d" % i, "Type": "veth", "State": "UP", "MTU": 1450}))),
                         ("EdgeAdded", edge(ns, inner, name, "ownership")),
                         ("NodeAdded", node(port, name, Name="qr-%d" % i, Type="ovsport", UUID=str(uuid.uuid4()))),
                         ("EdgeAdded", edge(br, port, name, "ownership")),
                         ("EdgeAdded", edge(port, inner, name, "layer2"))]
                ifs.append(inner)
                left -= 3
            else:
                nid = str(uuid.uuid4())
                md = {"Name": ("eth%d" % i) if kind == "device" else "tap%d" % i, "Type": "device" if kind == "device" else "tuntap",
                      "State": "UP", "MTU": 1500}
                META[nid] = md
                msgs += [("NodeAdded", node(nid, name, **md)), ("EdgeAdded", edge(hid, nid, name, "ownership"))]
                ifs.append(nid)
                left -= 1
            i += 1
        interfaces[hid] = (name, ifs)
    return msgs, interfaces


async def publish(url, msgs, rate=None, seconds=None, gen=None):
    """All of `msgs` at once, or `gen()` messages at `rate` per second for `seconds`."""
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(url.replace("http://", "ws://") + "/ws/publisher", headers={
            "X-Host-ID": "ui-bench-%s" % uuid.uuid4().hex[:6], "X-Client-Type": "bench", "X-Client-Protocol": "json"})
        sent = 0
        if msgs:
            for kind, obj in msgs:
                await ws.send_str(msg(kind, obj))
                sent += 1
        if gen:
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                due = int((time.monotonic() - t0) * rate)
                while sent < due:
                    kind, obj = gen()
                    await ws.send_str(msg(kind, obj))
                    sent += 1
                await asyncio.sleep(0.005)
        await ws.close()
        return sent


def print_trace(browser):
    """Self time of the renderer main thread's trace events, by name (the top 20)."""
    browser.call("Tracing.end")
    deadline = time.time() + 120
    while time.time() < deadline:
        with browser._cond:
            if any(e.get("method") == "Tracing.tracingComplete" for e in browser._events):
                break
        time.sleep(0.2)
    with browser._cond:
        events = [ev for e in browser._events if e.get("method") == "Tracing.dataCollected" for ev in e["params"]["value"]]
    names = {(ev["pid"], ev["tid"]): ev["args"]["name"] for ev in events if ev.get("ph") == "M" and ev.get("name") == "thread_name"}
    main = {k for k, v in names.items() if v == "CrRendererMain"}
    spans = sorted((ev["ts"], ev["ts"] + ev.get("dur", 0), ev["name"]) for ev in events
                   if ev.get("ph") == "X" and (ev["pid"], ev["tid"]) in main and ev.get("dur"))
    self_us, count, stack = {}, {}, []
    for t0, t1, name in spans:                   # nested spans: a child's time is not its parent's
        while stack and stack[-1][1] <= t0:
            stack.pop()
        if stack:
            self_us[stack[-1][2]] = self_us.get(stack[-1][2], 0) - (t1 - t0)
        self_us[name] = self_us.get(name, 0) + (t1 - t0)
        count[name] = count.get(name, 0) + 1
        stack.append((t0, t1, name))
    layouts = [(t0, t1) for t0, t1, name in spans if name == "LocalFrameView::performLayout"]
    texts = [t0 for t0, t1, name in spans if name == "SvgTextLayoutAlgorithm::Layout"]
    per = sorted(sum(1 for t in texts if a <= t < b) for a, b in layouts)
    print("layouts: %d, SVG texts laid out per layout p50 %d, p95 %d, max %d; %d layouts with more than 100" % (
        len(per), pct(per, 50), pct(per, 95), per[-1] if per else 0, sum(1 for n in per if n > 100)))
    for k, v in sorted(self_us.items(), key=lambda kv: -kv[1])[:20]:
        print("  %8.0f ms  %6d x  %s" % (v / 1000, count[k], k))


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=250)
    ap.add_argument("--per-host", type=int, default=20)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--expand", type=int, default=10, help="hosts expanded during the event phase")
    ap.add_argument("--runs", type=int, default=3, help="first-render measurements")
    ap.add_argument("--profile", action="store_true", help="print the page's hottest functions during the event phase")
    ap.add_argument("--trace", action="store_true", help="print where the renderer's main thread spends the event phase (style, layout, paint...)")
    args = ap.parse_args()
    if chromium_binary() is None:
        raise SystemExit("chromium is not installed")
    workdir = tempfile.mkdtemp(prefix="ui-bench-")
    cfg = analyzer_config(workdir)
    cfg["analyzer"]["topology"]["backend"] = "memory"
    cfg["analyzer"]["flow"]["backend"] = "memory"
    cfg["logging"] = {"level": "WARNING"}
    cfg["http"] = {"ws": {"queue_size": 100000}}         # the 10,000-message initial burst is not dropped
    analyzer = SkydiveProcess("analyzer", workdir, cfg)
    analyzer.start()
    browser = None
    try:
        msgs, interfaces = build(args.hosts, args.per_host)
        asyncio.run(publish(analyzer.url, msgs))
        total = sum(1 for k, _ in msgs if k == "NodeAdded")
        deadline = time.time() + 120
        while len(analyzer.query("G.V()") or []) < total and time.time() < deadline:
            time.sleep(0.5)
        print("graph: %d nodes, %d edges; load average %s" % (
            total, sum(1 for k, _ in msgs if k == "EdgeAdded"), " ".join("%.1f" % x for x in os.getloadavg())))
        browser = Browser().start()
        browser.page("Network.enable")
        browser.page("Network.setCacheDisabled", cacheDisabled=True)
        firsts, stables = [], []
        for run in range(args.runs):
            browser.navigate(analyzer.url + "/statics/css/skydive.css")     # same origin: forget the saved layout
            browser.eval("localStorage.clear(); 1")
            browser.navigate(analyzer.url + "/")
            browser.wait_for("window.skydive && window.skydive.perf.firstPainted > 0", timeout=120)
            first = browser.eval("window.skydive.perf.firstPainted")
            browser.wait_for("!window.skydive.layout.running && document.body.dataset.layout === 'stable'", timeout=300)
            stable = browser.eval("performance.now()")
            visible = browser.eval("document.querySelectorAll('#layer-nodes .node:not([display=none])').length")
            nodes = int(browser.eval("document.body.dataset.nodes"))
            firsts.append(first)
            stables.append(stable)
            print("run %d: %d nodes in the page, %d visible (hosts first); first render %.0f ms, layout still at %.0f ms" % (
                run + 1, nodes, visible, first, stable))
        # event phase: some hosts expanded, the page live
        hosts = list(interfaces)
        random.seed(1)
        expanded = hosts[:args.expand]
        browser.eval("(() => { for (const id of %s) window.skydive.renderer.setCollapsed(id, false); return 1; })()" % json.dumps(expanded))
        browser.wait_for("!window.skydive.layout.running", timeout=120)
        added = []
        counter = [0]

        def gen():
            counter[0] += 1
            r = random.random()
            hid = random.choice(expanded)
            hname, ifs = interfaces[hid]
            if r < 0.15 or (r < 0.3 and not added):
                nid = str(uuid.uuid4())
                added.append((nid, hname, hid))
                return "NodeAdded", node(nid, hname, Name="tapx%d" % counter[0], Type="tuntap", State="UP")
            if r < 0.22 and added:
                nid, hname2, hid2 = added[-1]
                if not getattr(gen, "linked", set()).__contains__(nid):
                    gen.linked = getattr(gen, "linked", set()) | {nid}
                    return "EdgeAdded", edge(hid2, nid, hname2, "ownership")
            if r < 0.3 and added:
                nid, hname2, _ = added.pop(0)
                return "NodeDeleted", {"ID": nid, "Host": hname2, "Metadata": {}}
            nid = random.choice(ifs)
            n = counter[0]
            metric = {"RxPackets": n * 10, "TxPackets": n * 9, "RxBytes": n * 1000, "TxBytes": n * 900, "Last": int(time.time() * 1000)}
            upd = node(nid, hname, **dict(META[nid], State="UP" if n % 7 else "DOWN", Metric=metric))
            upd.update(Revision=n + 1, UpdatedAt=int(time.time() * 1000))     # newer than what the analyzer holds
            return "NodeUpdated", upd

        browser.eval("""(() => { const s = window.__frames = []; let last = performance.now();
            window.__sampling = true;
            const f = (t) => { s.push(t - last); last = t; if (window.__sampling) requestAnimationFrame(f); };
            requestAnimationFrame(f); window.skydive.perf.frames.length = 0; return 1; })()""")
        events0 = int(browser.eval("document.body.dataset.events || '0'"))
        if args.profile:
            browser.page("Profiler.enable")
            browser.page("Profiler.start")
        if args.trace:
            browser.call("Tracing.start", categories="devtools.timeline,blink,cc", transferMode="ReportEvents")
        t0 = time.time()
        sent = asyncio.run(publish(analyzer.url, None, rate=args.rate, seconds=args.seconds, gen=gen))
        if args.profile:
            prof = browser.page("Profiler.stop", timeout=60)["profile"]
            self_ms = {}
            dt = (prof["endTime"] - prof["startTime"]) / 1000 / max(1, len(prof.get("samples", [])))
            by_id = {n["id"]: n for n in prof["nodes"]}
            counts = {}
            for sid in prof.get("samples", []):
                counts[sid] = counts.get(sid, 0) + 1
            for nid, c in counts.items():
                cf = by_id[nid]["callFrame"]
                key = "%s %s:%d" % (cf["functionName"] or "(anon)", cf["url"].rsplit("/", 1)[-1], cf["lineNumber"])
                self_ms[key] = self_ms.get(key, 0) + c * dt
            for k, v in sorted(self_ms.items(), key=lambda kv: -kv[1])[:25]:
                print("  %8.0f ms  %s" % (v, k))
        elapsed = time.time() - t0
        if args.trace:
            print_trace(browser)
        time.sleep(1)
        browser.eval("window.__sampling = false; 1")
        frames = browser.eval("window.__frames")
        work = browser.eval("window.skydive.perf.frames")
        events = int(browser.eval("String(window.skydive.store.events)")) - events0
        print("events: %d sent in %.1f s (%.0f/s), %d applied by the page; load average %s" % (
            sent, elapsed, sent / elapsed, events, " ".join("%.1f" % x for x in os.getloadavg())))
        print("frame intervals: %d frames, p50 %.1f ms, p95 %.1f ms, max %.1f ms" % (
            len(frames), pct(frames, 50), pct(frames, 95), max(frames)))
        print("page work per frame: p50 %.2f ms, p95 %.2f ms, max %.1f ms" % (pct(work, 50), pct(work, 95), max(work)))
        print("first render: median %.0f ms (%s); layout still: median %.0f ms" % (
            statistics.median(firsts), ", ".join("%.0f" % f for f in firsts), statistics.median(stables)))
    finally:
        if browser is not None:
            browser.close()
        analyzer.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
