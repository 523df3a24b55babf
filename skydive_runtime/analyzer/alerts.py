"""Alert evaluation in the analyzer (upstream graffiti/alert/server.go, spec §7.1-7.2).

Every alert resource (`/api/alert`) is a Gremlin expression evaluated

- once when it is registered (created through the API, or loaded from the store at start),
- after graph changes when its `Trigger` is `graph` or empty: changes are coalesced, the first
  change after a quiet period is evaluated on the next loop iteration and the following ones at
  most once per `analyzer.alert.debounce` seconds (default 0.1), so a burst of events costs a
  few evaluations, not one per event per alert,
- every `<d>` when its `Trigger` is `duration:<Go duration>` (at least `analyzer.alert.min_period`
  seconds, default 0.1).

It *fires* when the result has at least one value (a non-empty node list, any `Count()`, a graph,
a non-null `Values()`); firing is edge-triggered: a firing result equal (deep, as JSON) to the
previous firing's result does not fire again, an evaluation that does not fire forgets it.

Firing sends the notification `{"UUID", "Timestamp", "ReasonData"}` (ReasonData = the query result
as `/api/topology` returns it) to the `/ws/subscriber` clients (Namespace and Type `Alert`) and runs
the alert's `Action`: `http(s)://...` → POST of the JSON payload, `file:///path` → the program
run with the payload on stdin, within the limits of `actions.ActionPolicy` (scripts only from
`analyzer.alert.scripts_dirs`, webhooks only to `analyzer.alert.webhook_allowed`). Actions run
as tasks (in firing order for one alert), each bounded by `analyzer.alert.action_timeout` seconds
(default 10); their failures are logged, never raised, and never block the loop.
"""

import asyncio
import json
import logging
import os
import time

from ..api import graph_ws
from ..api.query import QueryError
from ..common.service import spawn
from ..common.timeutil import parse_duration_ms, rfc3339_now
from ..graph import GraphListener
from .actions import ActionPolicy, ActionRefused, parse_action

log = logging.getLogger(__name__)

NAMESPACE = "Alert"
MAX_PENDING_ACTIONS = 64        # actions running at once; beyond, new ones are dropped (logged)


def result_values(value):
    """Upstream's `Values()` of a result: a list as is, null as nothing, anything else as one."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def parse_trigger(trigger):
    """("graph", None) or ("duration", seconds); ValueError for anything else."""
    t = (trigger or "").strip()
    if t in ("", "graph"):
        return "graph", None
    if t.startswith("duration:"):
        ms = parse_duration_ms(t[len("duration:"):])
        if ms <= 0:
            raise ValueError("duration must be positive")
        return "duration", ms / 1000.0
    raise ValueError("unknown trigger %r" % trigger)


class AlertState:
    """One registered alert and what its evaluations gave."""

    __slots__ = ("uuid", "alert", "expression", "trigger", "period", "action_kind", "action_target",
                 "last", "timer", "next_at", "evaluations", "firings", "last_evaluation",
                 "last_firing", "error", "action_error", "action_task")

    def __init__(self, alert, trigger, period, action_kind, action_target):
        self.uuid = alert.get("UUID", "")
        self.alert = alert
        self.expression = alert.get("Expression", "")
        self.trigger = trigger
        self.period = period
        self.action_kind = action_kind
        self.action_target = action_target
        self.last = None             # canonical JSON of the last firing result; None: not firing
        self.timer = None
        self.next_at = 0.0           # loop time of the next duration tick
        self.evaluations = 0
        self.firings = 0
        self.last_evaluation = ""
        self.last_firing = ""
        self.error = ""
        self.action_error = ""
        self.action_task = None

    def status(self):
        d = {"Trigger": self.alert.get("Trigger", "") or "graph", "Firing": self.last is not None,
             "Evaluations": self.evaluations, "Firings": self.firings}
        for k, v in (("LastEvaluation", self.last_evaluation), ("LastFiring", self.last_firing),
                     ("Error", self.error), ("ActionError", self.action_error)):
            if v:
                d[k] = v
        return d


class AlertManager(GraphListener):
    def __init__(self, analyzer, debounce=None, action_timeout=None, min_period=None):
        cfg = analyzer.config
        self.analyzer = analyzer
        self.graph = analyzer.graph
        self.engine = analyzer.engine
        self.resources = analyzer.resources
        self.server = analyzer.ws.server
        self.debounce = debounce if debounce is not None else cfg.get_float("analyzer.alert.debounce", 0.1)
        self.action_timeout = action_timeout if action_timeout is not None else \
            cfg.get_float("analyzer.alert.action_timeout", 10.0)
        self.min_period = min_period if min_period is not None else \
            cfg.get_float("analyzer.alert.min_period", 0.1)
        self.policy = getattr(analyzer, "action_policy", None) or ActionPolicy.from_config(cfg)
        self.alerts = {}              # uuid -> AlertState
        self.graph_alerts = {}        # uuid -> AlertState, the `graph` triggered ones
        self.running = False
        self._dirty = False           # graph changed since the last graph evaluation was scheduled
        self._timer = None
        self._last_run = 0.0
        self._tasks = set()
        self._session = None
        self.graph_runs = 0           # graph-triggered evaluation passes (all graph alerts each)
        self.is_master = lambda: True  # in a cluster: master of the `alerts` duty (analyzer/cluster.py)

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self):
        self.running = True
        self.resources.watchers.append(self)
        self.graph.add_listener(self)
        for alert in list(self.resources.list("alert").values()):
            self.register(alert)

    async def stop(self):
        self.running = False
        if self in self.resources.watchers:
            self.resources.watchers.remove(self)
        self.graph.remove_listener(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for st in self.alerts.values():
            if st.timer is not None:
                st.timer.cancel()
                st.timer = None
        self.alerts.clear()
        self.graph_alerts.clear()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def status(self):
        d = {"IsMaster": self.running and self.is_master()}   # every analyzer evaluates, only the master fires
        if self.alerts:
            d["States"] = {uuid: st.status() for uuid, st in self.alerts.items()}
        return d

    # ---- registration ---------------------------------------------------------------------------
    def on_resource_created(self, kind, obj):
        if kind == "alert" and self.running:
            self.register(obj)

    def on_resource_deleted(self, kind, obj):
        if kind == "alert":
            self.unregister(obj.get("UUID", ""))

    def register(self, alert):
        uuid = alert.get("UUID", "")
        self.unregister(uuid)
        try:
            trigger, period = parse_trigger(alert.get("Trigger", ""))
            action_kind, target = parse_action(alert.get("Action", ""))
        except ValueError as exc:
            log.error("alert %s not registered: %s", uuid, exc)
            return None
        refusal = ""
        try:
            self.policy.check(alert.get("Action", ""))
        except ValueError as exc:   # a stored alert the configuration no longer allows: no action
            log.error("alert %s: its action will not run: %s", uuid, exc)
            action_kind, target, refusal = "", None, str(exc)
        st = AlertState(alert, trigger, period, action_kind, target)
        st.action_error = refusal
        self.alerts[uuid] = st
        self.evaluate(st)                           # once at registration, as upstream
        if trigger == "graph":
            self.graph_alerts[uuid] = st
        else:
            period = max(period, self.min_period)
            st.period = period
            loop = asyncio.get_event_loop()
            st.next_at = loop.time() + period
            st.timer = loop.call_at(st.next_at, self._tick, st)
        return st

    def unregister(self, uuid):
        st = self.alerts.pop(uuid, None)
        self.graph_alerts.pop(uuid, None)
        if st is not None and st.timer is not None:
            st.timer.cancel()
            st.timer = None

    # ---- triggers ---------------------------------------------------------------------------------
    def _tick(self, st):
        st.timer = None
        if not self.running or self.alerts.get(st.uuid) is not st:
            return
        self.evaluate(st)
        loop = asyncio.get_event_loop()
        now = loop.time()
        st.next_at += st.period
        if st.next_at <= now:                       # evaluation slower than the period: skip ticks
            st.next_at = now + st.period
        st.timer = loop.call_at(st.next_at, self._tick, st)

    def _graph_changed(self, *args):
        # hot path: one check per graph event once a pass is pending
        if self._dirty or not self.graph_alerts or not self.running:
            return
        self._dirty = True
        if self._timer is None:
            loop = asyncio.get_event_loop()
            wait = self._last_run + self.debounce - time.monotonic()
            if wait <= 0:
                self._timer = loop.call_soon(self._run_graph)    # leading edge: next iteration
            else:
                self._timer = loop.call_later(wait, self._run_graph)

    on_node_added = on_node_updated = on_node_deleted = _graph_changed
    on_edge_added = on_edge_updated = on_edge_deleted = _graph_changed

    def _run_graph(self):
        self._timer = None
        self._dirty = False
        self._last_run = time.monotonic()
        if not self.running:
            return
        self.graph_runs += 1
        for st in list(self.graph_alerts.values()):
            self.evaluate(st)

    # ---- evaluation -------------------------------------------------------------------------------
    def evaluate(self, st):
        """Run the alert's query now; fire when edge-triggered conditions hold. True if it fired."""
        st.evaluations += 1
        st.last_evaluation = rfc3339_now()
        try:
            value = self.engine.run(st.expression).to_json_value()
            # serialise at once: results reference live metadata
            canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        except QueryError as exc:
            if st.error != str(exc):
                log.warning("alert %s: %s", st.uuid, exc)
            st.error = str(exc)
            return False
        except Exception as exc:       # never let one alert break the loop or the others
            log.exception("alert %s: evaluation failed", st.uuid)
            st.error = "%s: %s" % (exc.__class__.__name__, exc)
            return False
        st.error = ""
        if not result_values(value):
            st.last = None                          # not firing: the next firing is new
            return False
        if canonical == st.last:
            return False
        st.last = canonical
        if not self.is_master():   # another analyzer of the cluster fires it (once for the cluster)
            return False
        self.fire(st, value, canonical)
        return True

    def fire(self, st, value, canonical):
        st.firings += 1
        st.last_firing = ts = rfc3339_now()
        payload = '{"UUID":%s,"Timestamp":%s,"ReasonData":%s}' % (json.dumps(st.uuid), json.dumps(ts), canonical)
        log.info("alert %s fired (%s)", st.uuid, st.alert.get("Action") or "websocket only")
        # value is serialised by broadcast() right away (it references live metadata)
        self.server.broadcast(graph_ws.SUBSCRIBER, NAMESPACE, "Alert",
                              {"UUID": st.uuid, "Timestamp": ts, "ReasonData": value})
        if st.action_kind:
            if len(self._tasks) >= MAX_PENDING_ACTIONS:
                st.action_error = "too many pending alert actions: dropped"
                log.warning("alert %s: %d actions pending, action dropped", st.uuid, len(self._tasks))
                return
            st.action_task = spawn(self._tasks, self._action(st, payload, st.action_task))

    # ---- actions ----------------------------------------------------------------------------------
    async def _action(self, st, payload, previous):
        # one alert's actions run in firing order (a receiver sees DOWN then UP, never UP then DOWN)
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        if st.action_kind == "webhook":
            await self._webhook(st, payload)
        else:
            await self._script(st, payload)

    async def _webhook(self, st, payload):
        import aiohttp
        url = st.action_target
        try:
            self.policy.check_url(url)
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.action_timeout),
                    connector=aiohttp.TCPConnector(resolver=self.policy.resolver()))
            async with self._session.post(url, data=payload.encode("utf-8"), allow_redirects=False,
                                          headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status >= 400:
                    st.action_error = "POST %s: HTTP %d" % (url, resp.status)
                    log.warning("alert %s: webhook %s answered %d", st.uuid, url, resp.status)
                else:
                    st.action_error = ""
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            st.action_error = "POST %s: timeout after %ss" % (url, self.action_timeout)
            log.warning("alert %s: webhook %s timed out", st.uuid, url)
        except Exception as exc:
            st.action_error = "POST %s: %s" % (url, exc or exc.__class__.__name__)
            log.warning("alert %s: webhook %s failed: %s", st.uuid, url, exc or exc.__class__.__name__)

    async def _script(self, st, payload):
        path = st.action_target
        try:
            real = self.policy.script_path(path)      # re-checked: the file may have changed
        except ActionRefused as exc:
            st.action_error = str(exc)
            log.warning("alert %s: script refused: %s", st.uuid, exc)
            return
        try:
            # argv is the script alone (never a shell, never the payload): the payload goes to stdin
            proc = await asyncio.create_subprocess_exec(
                real, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, **self.policy.exec_kwargs())
        except OSError as exc:
            st.action_error = "%s: %s" % (path, exc.strerror or exc)
            log.warning("alert %s: cannot run %s: %s", st.uuid, path, exc.strerror or exc)
            return
        try:
            out, err = await asyncio.wait_for(proc.communicate(payload.encode("utf-8")), self.action_timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
            await proc.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            st.action_error = "%s: killed after %ss" % (path, self.action_timeout)
            log.warning("alert %s: %s killed after %ss", st.uuid, path, self.action_timeout)
            return
        if proc.returncode == 0:
            st.action_error = ""
            log.info("alert %s: %s done: %s", st.uuid, path, out.decode("utf-8", "replace").strip()[:500])
        else:
            st.action_error = "%s: exit status %d" % (path, proc.returncode)
            log.warning("alert %s: %s exited with %d: %s", st.uuid, path, proc.returncode,
                        err.decode("utf-8", "replace").strip()[:500])
