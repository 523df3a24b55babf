"""Alert evaluation (spec §7.1-7.2, upstream tests/alert_test.go) against a real Analyzer on a TCP
port: a real webhook receiver (aiohttp on 127.0.0.1), a real script, a real /ws/subscriber client
sending only X-Host-ID and X-Client-Type."""

import asyncio
import datetime
import json
import os
import stat

import aiohttp
import pytest
from aiohttp import web

from skydive_runtime.analyzer.service import Analyzer
from tests.runtime.test_api_support import Client, analyzer_config, edge, node, run_with_analyzer

pytestmark = pytest.mark.timeout(60)

QUIET = 0.6         # long enough for several debounce windows / duration ticks: "nothing more came"


def alert_config(tmp_path, **alert):
    cfg = {"debounce": 0.05, "action_timeout": 1.0, "min_period": 0.05}
    cfg.update(alert)
    return analyzer_config(tmp_path, analyzer={"alert": cfg})


class Receiver:
    """A webhook endpoint: every POST body lands in `self.posts` (a queue)."""

    def __init__(self, delay=0.0):
        self.posts = asyncio.Queue()
        self.delay = delay
        self.runner = None
        self.url = None

    async def _hook(self, request):
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        await self.posts.put((request.path, body))
        return web.Response(text="ok")

    async def __aenter__(self):
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = "http://127.0.0.1:%d" % site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


class Subscriber:
    """/ws/subscriber with only X-Host-ID and X-Client-Type (as upstream's alert test)."""

    def __init__(self, client, session, host_id="alert-sub"):
        self.client = client
        self.session = session
        self.host_id = host_id
        self.ws = None

    async def __aenter__(self):
        self.ws = await self.session.ws_connect(self.client.ws_url("/ws/subscriber"),
                                                headers={"X-Host-ID": self.host_id, "X-Client-Type": "webui"})
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def alert(self, timeout=5.0):
        """The next Alert message's Obj (Graph messages are skipped); None on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                msg = await self.ws.receive(timeout=left)
            except asyncio.TimeoutError:
                return None
            if msg.type != aiohttp.WSMsgType.TEXT:
                assert msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
                continue
            m = json.loads(msg.data)
            if m.get("Namespace") == "Alert":
                assert m["Type"] == "Alert"
                return m["Obj"]


async def next_post(receiver, timeout=5.0):
    try:
        path, body = await asyncio.wait_for(receiver.posts.get(), timeout)
    except asyncio.TimeoutError:
        return None
    return json.loads(body)


async def no_post(receiver, wait=QUIET):
    await asyncio.sleep(wait)
    return receiver.posts.empty()


def check_payload(p, uuid):
    assert set(p) == {"UUID", "Timestamp", "ReasonData"}
    assert p["UUID"] == uuid
    ts = datetime.datetime.strptime(p["Timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    now = datetime.datetime.utcnow()
    assert abs((now - ts).total_seconds()) < 30


async def create_alert(c, **fields):
    return await c.json("POST", "/api/alert", fields, expect=201)


async def alert_state(c, uuid):
    status = await c.json("GET", "/api/status")
    assert status["Alerts"]["IsMaster"] is True
    return status["Alerts"].get("States", {}).get(uuid)


def netns_node(nid, name):
    return node(nid, name, "netns", Path="/var/run/netns/" + name)


# ---- webhook + websocket ----------------------------------------------------------------------------

def test_webhook_and_websocket_notification(tmp_path):
    async def body(c):
        async with Receiver() as rx, aiohttp.ClientSession() as s, Subscriber(c, s) as sub:
            a = await create_alert(c, Name="ns", Expression="G.V().Has('Name','alert-ns-webhook','Type','netns')",
                                   Action=rx.url + "/hook")
            assert await no_post(rx, 0.3)                     # evaluated at registration: empty → no firing
            st = await alert_state(c, a["UUID"])
            assert st["Evaluations"] >= 1 and st["Firings"] == 0 and st["Firing"] is False

            await c.json("POST", "/api/node", netns_node("ns-1", "alert-ns-webhook"), expect=201)
            p = await next_post(rx)
            assert p is not None, "webhook not called"
            check_payload(p, a["UUID"])
            assert [n["ID"] for n in p["ReasonData"]] == ["ns-1"]
            assert p["ReasonData"][0]["Metadata"]["Name"] == "alert-ns-webhook"
            w = await sub.alert()
            assert w == p                                   # same notification on /ws/subscriber

            # unrelated changes: the result is unchanged → no second firing
            await c.json("POST", "/api/node", node("other", "other"), expect=201)
            await c.json("PATCH", "/api/node/other", [{"op": "add", "path": "/Metadata/X", "value": 1}])
            assert await no_post(rx)
            assert await sub.alert(0.1) is None

            # the matched node changes → the result differs → fires again
            await c.json("PATCH", "/api/node/ns-1", [{"op": "add", "path": "/Metadata/Color", "value": "red"}])
            p = await next_post(rx)
            assert p is not None and p["ReasonData"][0]["Metadata"]["Color"] == "red"
            assert (await sub.alert())["ReasonData"] == p["ReasonData"]

            # gone (reset), then back with the same content → fires again
            await c.req("DELETE", "/api/node/ns-1")
            assert await no_post(rx)
            await c.json("POST", "/api/node", netns_node("ns-1", "alert-ns-webhook"), expect=201)
            p = await next_post(rx)
            assert p is not None and [n["ID"] for n in p["ReasonData"]] == ["ns-1"]
            st = await alert_state(c, a["UUID"])
            assert st["Firings"] == 3 and st["Firing"] is True and "ActionError" not in st
    run_with_analyzer(alert_config(tmp_path), body)


def test_fires_at_registration_and_count(tmp_path):
    """A condition already true fires when the alert is created; Count() always has a value."""
    async def body(c):
        async with Receiver() as rx:
            await c.json("POST", "/api/node", node("n1", "present"), expect=201)
            a = await create_alert(c, Expression="G.V().Has('Name','present')", Action=rx.url)
            p = await next_post(rx)
            assert p is not None and p["UUID"] == a["UUID"] and p["ReasonData"][0]["ID"] == "n1"
            b = await create_alert(c, Expression="G.V().Has('Name','absent').Count()", Action=rx.url)
            p = await next_post(rx)
            assert p is not None and p["UUID"] == b["UUID"] and p["ReasonData"] == 0
            assert await no_post(rx)
    run_with_analyzer(alert_config(tmp_path), body)


# ---- script -----------------------------------------------------------------------------------------

def test_script_receives_payload(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "alert.sh"
    script.write_text("#!/bin/sh\nn=$(ls %s | wc -l)\ncat > %s/payload.$n.json\n" % (out, out))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)

    async def body(c):
        a = await create_alert(c, Expression="G.V().Has('Name','scripted')", Action="file://" + str(script))
        await c.json("POST", "/api/node", node("s1", "scripted"), expect=201)
        for _ in range(100):
            files = sorted(os.listdir(out))
            if files and os.path.getsize(out / files[0]) > 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        files = sorted(os.listdir(out))
        assert files == ["payload.0.json"], files
        p = json.loads((out / files[0]).read_text())
        check_payload(p, a["UUID"])
        assert [n["ID"] for n in p["ReasonData"]] == ["s1"]
        st = await alert_state(c, a["UUID"])
        assert "ActionError" not in st
    run_with_analyzer(alert_config(tmp_path, scripts_dirs=[str(tmp_path / "scripts")]), body)


def test_failing_script_is_reported(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    script = scripts / "fail.sh"
    script.write_text("#!/bin/sh\ncat >/dev/null\necho boom >&2\nexit 3\n")
    script.chmod(0o755)
    gone = scripts / "gone.sh"
    gone.write_text("#!/bin/sh\nexit 0\n")
    gone.chmod(0o755)

    async def body(c):
        a = await create_alert(c, Expression="G.V().Has('Name','x')", Action="file://" + str(script))
        b = await create_alert(c, Expression="G.V().Has('Name','x')", Action="file://" + str(gone))
        gone.unlink()     # removed after the alert was accepted: reported when it fires
        await c.json("POST", "/api/node", node("x1", "x"), expect=201)
        for _ in range(100):
            sa, sb = await alert_state(c, a["UUID"]), await alert_state(c, b["UUID"])
            if sa.get("ActionError") and sb.get("ActionError"):
                break
            await asyncio.sleep(0.05)
        assert sa["ActionError"].endswith("exit status 3") and sa["Firings"] == 1
        assert "No such file" in sb["ActionError"] and sb["Firings"] == 1
    run_with_analyzer(alert_config(tmp_path, scripts_dirs=[str(scripts)]), body)


# ---- duration trigger --------------------------------------------------------------------------------

def test_duration_trigger(tmp_path):
    async def body(c):
        async with Receiver() as rx:
            a = await create_alert(c, Expression="G.V().Has('Name','dur').Values('State')",
                                   Trigger="duration:200ms", Action=rx.url)
            st0 = await alert_state(c, a["UUID"])
            await asyncio.sleep(0.7)
            st1 = await alert_state(c, a["UUID"])
            # periodic evaluations without any graph change, no firing while the condition is false
            assert st1["Evaluations"] - st0["Evaluations"] >= 2 and st1["Firings"] == 0

            await c.json("POST", "/api/node", node("d1", "dur", State="UP"), expect=201)
            p = await next_post(rx, 2)
            assert p is not None and p["ReasonData"] == ["UP"]
            assert await no_post(rx, 0.8)                   # unchanged for 4 ticks: nothing more
            await c.json("PATCH", "/api/node/d1", [{"op": "replace", "path": "/Metadata/State", "value": "DOWN"}])
            p = await next_post(rx, 2)
            assert p is not None and p["ReasonData"] == ["DOWN"]
            await c.req("DELETE", "/api/node/d1")
            assert await no_post(rx, 0.6)
            await c.json("POST", "/api/node", node("d1", "dur", State="DOWN"), expect=201)
            p = await next_post(rx, 2)                      # reset by the non-firing ticks: fires again
            assert p is not None and p["ReasonData"] == ["DOWN"]

            # upstream's form: duration:+1s
            b = await create_alert(c, Expression="G.V().Has('Name','dur')", Trigger="duration:+1s")
            assert (await alert_state(c, b["UUID"]))["Firings"] == 1      # at registration
            assert (await alert_state(c, b["UUID"]))["Trigger"] == "duration:+1s"
    run_with_analyzer(alert_config(tmp_path), body)


def test_duration_alert_ignores_graph_events(tmp_path):
    async def body(c):
        a = await create_alert(c, Expression="G.V().Has('Name','slow')", Trigger="duration:1h")
        for i in range(20):
            await c.json("POST", "/api/node", node("g%d" % i, "slow"), expect=201)
        await asyncio.sleep(0.3)
        st = await alert_state(c, a["UUID"])
        assert st["Evaluations"] == 1 and st["Firings"] == 0       # only the registration evaluation
    run_with_analyzer(alert_config(tmp_path), body)


# ---- graph trigger: coalescing, final state kept -------------------------------------------------------

def test_graph_burst_is_coalesced(tmp_path):
    async def body(c):
        g = c.analyzer.graph
        async with Receiver() as rx:
            a = await create_alert(c, Expression="G.V().Has('Type','burst')", Trigger="graph", Action=rx.url)
            base = (await alert_state(c, a["UUID"]))["Evaluations"]
            for i in range(1000):                           # one loop iteration: one evaluation
                g.new_node(metadata={"Name": "b%d" % i, "Type": "burst"})
            p = await next_post(rx)
            assert p is not None and len(p["ReasonData"]) == 1000
            st = await alert_state(c, a["UUID"])
            assert st["Evaluations"] - base == 1, st
            # 1000 events spread over many loop iterations: a few evaluations, and the final state
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for i in range(1000):
                n = g.new_node(metadata={"Name": "c%d" % i, "Type": "other"})
                g.add_metadata(n, "Type", "burst")
                if i % 10 == 0:
                    await asyncio.sleep(0.005)
            elapsed = loop.time() - t0
            await asyncio.sleep(0.3)
            st2 = await alert_state(c, a["UUID"])
            evals = st2["Evaluations"] - st["Evaluations"]
            assert 1 <= evals <= elapsed / 0.05 + 3, (evals, elapsed)
            posts = []
            while not rx.posts.empty():
                posts.append(json.loads((await rx.posts.get())[1]))
            assert posts and len(posts[-1]["ReasonData"]) == 2000      # the last state was seen
    run_with_analyzer(alert_config(tmp_path), body)


def test_lo_up_down_fires_twice(tmp_path):
    """upstream alert_test 'multiple triggering', with REST-published nodes."""
    async def body(c):
        async with Receiver() as rx, aiohttp.ClientSession() as s, Subscriber(c, s) as sub:
            a = await create_alert(c, Expression="G.V().Has('Name','alert-lo-down','Type','netns')"
                                                 ".Out('Name','lo').Values('State')", Action=rx.url)
            await c.json("POST", "/api/node", netns_node("ns", "alert-lo-down"), expect=201)
            await c.json("POST", "/api/node", node("lo", "lo", "device", State="DOWN"), expect=201)
            await c.json("POST", "/api/edge", edge("own", "ns", "lo", "ownership"), expect=201)
            p = await next_post(rx)
            assert p is not None and p["ReasonData"] == ["DOWN"]
            await c.json("PATCH", "/api/node/lo", [{"op": "replace", "path": "/Metadata/State", "value": "UP"}])
            p2 = await next_post(rx)
            assert p2 is not None and p2["ReasonData"] == ["UP"]
            assert [(await sub.alert())["ReasonData"], (await sub.alert())["ReasonData"]] == [["DOWN"], ["UP"]]
            # metric-like updates that leave the State alone: no third firing
            await c.json("PATCH", "/api/node/lo", [{"op": "add", "path": "/Metadata/MTU", "value": 65536}])
            assert await no_post(rx)
            assert (await alert_state(c, a["UUID"]))["Firings"] == 2
    run_with_analyzer(alert_config(tmp_path), body)


# ---- bad bodies, failures, lifecycle -------------------------------------------------------------------

@pytest.mark.parametrize("fields,needle", [
    ({"Expression": "Gremlin('G.V()').length > 0"}, b"Expression must be a Gremlin query; JavaScript alerts"),
    ({"Expression": "true"}, b"JavaScript alerts are not supported"),
    ({"Expression": "G.V().Nope()"}, b"JavaScript alerts are not supported"),
    ({}, b"Expression"),
    ({"Expression": "G.V()", "Trigger": "duration:abc"}, b"Trigger"),
    ({"Expression": "G.V()", "Trigger": "duration:-1s"}, b"Trigger"),
    ({"Expression": "G.V()", "Trigger": "duration:"}, b"Trigger"),
    ({"Expression": "G.V()", "Trigger": "every 5s"}, b"Trigger"),
    ({"Expression": "G.V()", "Action": "ftp://example.com/x"}, b"Action"),
    ({"Expression": "G.V()", "Action": "file://relative/script"}, b"Action"),
    ({"Expression": "G.V()", "Action": 42}, b"Action"),
])
def test_bad_alert_bodies(tmp_path, fields, needle):
    async def body(c):
        status, _, data = await c.req("POST", "/api/alert", fields)
        assert status == 400 and needle in data, (status, data)
        assert await c.json("GET", "/api/alert") == {}
        assert (await c.json("GET", "/api/status"))["Alerts"] == {"IsMaster": True}
    run_with_analyzer(alert_config(tmp_path), body)


def test_unreachable_or_slow_webhook_breaks_nothing(tmp_path):
    from tests.fixtures.processes import free_port

    async def body(c):
        async with Receiver() as good, Receiver(delay=5) as slow:
            dead = await create_alert(c, Expression="G.V().Has('Name','w')",
                                      Action="http://127.0.0.1:%d/nobody" % free_port())
            hang = await create_alert(c, Expression="G.V().Has('Name','w')", Action=slow.url)
            ok = await create_alert(c, Expression="G.V().Has('Name','w')", Action=good.url)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await c.json("POST", "/api/node", node("w1", "w"), expect=201)
            p = await next_post(good)
            assert p is not None and p["UUID"] == ok["UUID"]
            assert loop.time() - t0 < 1.0                  # not delayed by the dead/slow hooks
            assert await c.json("GET", "/api") is not None
            for _ in range(60):
                sd, sh = await alert_state(c, dead["UUID"]), await alert_state(c, hang["UUID"])
                if sd.get("ActionError") and sh.get("ActionError"):
                    break
                await asyncio.sleep(0.05)
            assert sd["ActionError"].startswith("POST http://127.0.0.1") and sd["Firings"] == 1
            assert "timeout" in sh["ActionError"] and sh["Firings"] == 1
            # still evaluating and firing after the failures
            await c.json("PATCH", "/api/node/w1", [{"op": "add", "path": "/Metadata/K", "value": "v"}])
            p = await next_post(good)
            assert p is not None and p["ReasonData"][0]["Metadata"]["K"] == "v"
            assert (await alert_state(c, dead["UUID"]))["Firings"] == 2
    run_with_analyzer(alert_config(tmp_path), body)


def test_deleted_alert_stops(tmp_path):
    async def body(c):
        async with Receiver() as rx:
            g = await create_alert(c, Expression="G.V().Has('Name','del')", Action=rx.url)
            d = await create_alert(c, Expression="G.V().Has('Name','del')", Trigger="duration:100ms", Action=rx.url)
            await c.req("DELETE", "/api/alert/" + g["UUID"])
            await c.req("DELETE", "/api/alert/" + d["UUID"])
            await c.json("POST", "/api/node", node("d1", "del"), expect=201)
            assert await no_post(rx)
            assert (await c.json("GET", "/api/status"))["Alerts"] == {"IsMaster": True}
            # an alert with a TTL stops when it expires
            status, _, data = await c.req("POST", "/api/alert", {"Expression": "G.V().Has('Name','ttl')",
                                                                 "Trigger": "duration:100ms", "Action": rx.url},
                                          headers={"X-Resource-TTL": "1s"})
            assert status == 201
            await asyncio.sleep(2.3)
            await c.json("POST", "/api/node", node("t1", "ttl"), expect=201)
            assert await no_post(rx)
    run_with_analyzer(alert_config(tmp_path), body)


def test_alerts_resume_after_restart(tmp_path):
    cfg = alert_config(tmp_path)

    async def main():
        async with Receiver() as rx, aiohttp.ClientSession() as s:
            first = Analyzer(cfg)
            await first.start()
            try:
                c = Client(first, s)
                a = await create_alert(c, Expression="G.V().Has('Name','again')", Action=rx.url)
                gone = await create_alert(c, Expression="G.V().Has('Name','again')", Action=rx.url + "/gone")
                await c.req("DELETE", "/api/alert/" + gone["UUID"])
            finally:
                await first.stop()
            second = Analyzer(cfg)
            await second.start()
            try:
                c = Client(second, s)
                st = await alert_state(c, a["UUID"])
                assert st is not None and st["Evaluations"] == 1
                await c.json("POST", "/api/node", node("r1", "again"), expect=201)
                p = await next_post(rx)
                assert p is not None and p["UUID"] == a["UUID"]
                assert await no_post(rx)                  # the deleted one stayed deleted
            finally:
                await second.stop()
    asyncio.run(main())


# ---- the same through a real agent and a real namespace -------------------------------------------------

@pytest.mark.needs_root
def test_lo_up_down_with_agent_netns(tmp_path):
    import shutil

    from tests.fixtures.processes import SkydiveProcess
    from tests.fixtures.topology import Names, NetEnv

    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    ns = Names("al")("lo")
    query = "G.V().Has('Name','%s','Type','netns').Out('Name','lo').Values('State')" % ns
    env = NetEnv()

    async def body(c):
        agent = None
        loop = asyncio.get_running_loop()
        try:
            async with Receiver() as rx:
                a = await create_alert(c, Expression=query, Action=rx.url)
                cfg = {"host_id": "alert-agent-" + ns, "analyzers": ["127.0.0.1:%d" % c.analyzer.port],
                       "agent": {"topology": {"probes": [], "netlink": {"metrics_update": 1}}},
                       "ovs": {"ovsdb": "unix:///nonexistent/db.sock"}, "logging": {"level": "INFO"}}
                agent = SkydiveProcess("agent", str(tmp_path / "agent"), cfg)
                await loop.run_in_executor(None, agent.start)
                for _ in range(150):
                    if c.analyzer.engine.run("G.V().Has('Type','host','Name','%s').Count()"
                                             % cfg["host_id"]).to_json_value() == 1:
                        break
                    await asyncio.sleep(0.1)
                await loop.run_in_executor(None, env.add_netns, ns)
                p = await next_post(rx, 15)
                assert p is not None and p["UUID"] == a["UUID"] and p["ReasonData"] == ["DOWN"], p
                await loop.run_in_executor(None, lambda: env.ip("link", "set", "lo", "up", netns=ns))
                p = await next_post(rx, 15)
                # State is the operstate, as upstream: a loopback that is up reports UNKNOWN
                assert p is not None and p["ReasonData"] in (["UP"], ["UNKNOWN"]), p
                assert await no_post(rx, 2.5)          # metric refreshes every second: no third firing
                await loop.run_in_executor(None, lambda: env.ip("link", "set", "lo", "down", netns=ns))
                p = await next_post(rx, 15)
                assert p is not None and p["ReasonData"] == ["DOWN"], p
        finally:
            if agent is not None:
                await loop.run_in_executor(None, agent.stop)
    try:
        run_with_analyzer(alert_config(tmp_path), body)
    finally:
        env.cleanup()
