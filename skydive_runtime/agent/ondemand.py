"""The agent side of on-demand tasks (upstream graffiti/ondemand/server): captures, injections.

The analyzer sends `Start` / `Stop` on the agent's WebSocket link in namespace `namespace`, Obj
`{"NodeID": <node id>, "Resource": <resource, "UUID" required>}`; the handler answers
`StartReply` / `StopReply`, Status 200 (done), 400 (bad request), 404 (unknown node, task not
running there) or 500 (it failed), Obj the error message. It keeps the (node id, UUID) -> task
table, publishes each task's entry in the node's `metadata_key` list (`{"ID": <UUID>, ...}`),
removes it when the task stops, and stops the tasks of a node that leaves the graph.

A subclass fills in:

    create(node, resource)   -> task (an OnDemandTask; check the request, nothing started yet)
    async launch(task, node)    start it (raise OnDemandError, or anything for a 500)
    async remove(task)          stop it
    entry(task)              -> the task's metadata entry

and optionally `start_failed(task, exc)` (default: the task is forgotten), `started(task)`
(called once the entry is published), `refresh()` (every `refresh_s` seconds while running)
and `task_status(task)` (its /api/status entry).
"""

import asyncio
import logging

from ..common.service import spawn
from ..graph import GraphListener

log = logging.getLogger(__name__)


class OnDemandError(Exception):
    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status


class OnDemandTask(object):
    def __init__(self, node_id, uid, resource):
        self.node_id = node_id
        self.uid = uid
        self.resource = resource
        self.published = None       # the entry last written to the node

    @property
    def key(self):
        return (self.node_id, self.uid)


class OnDemandHandler(GraphListener):
    namespace = ""
    metadata_key = ""
    what = "task"
    refresh_s = None

    def __init__(self, agent):
        self.agent = agent
        self.graph = agent.graph
        self.tasks = {}             # (node id, UUID) -> task
        self.loop = None
        self.running = False
        self._spawned = set()
        self._refresher = None

    # ---- to implement ------------------------------------------------------------------------
    def create(self, node, resource):
        raise NotImplementedError

    async def launch(self, task, node):
        raise NotImplementedError

    async def remove(self, task):
        raise NotImplementedError

    def entry(self, task):
        raise NotImplementedError

    def start_failed(self, task, exc):
        self.tasks.pop(task.key, None)

    def started(self, task):
        """The task runs and its entry is published."""

    def refresh(self):
        """Called every `refresh_s` seconds while running."""

    def task_status(self, task):
        return {}

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self):
        self.loop = asyncio.get_event_loop()
        self.running = True
        if self.agent.forwarder is not None:
            self.agent.forwarder.register_handler(self.namespace, self.handle)
        self.graph.add_listener(self)
        if self.refresh_s:
            self._refresher = asyncio.ensure_future(self._refresh_loop())

    async def stop(self):
        self.running = False
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        self.graph.remove_listener(self)
        for key in list(self.tasks):
            task = self.tasks.pop(key)
            await self.remove(task)
            self.remove_entry(task.node_id, task.uid)

    def status(self):
        """{UUID: {node id: task_status(task)}}."""
        out = {}
        for (nid, uid), task in self.tasks.items():
            out.setdefault(uid, {})[nid] = self.task_status(task)
        return out

    async def _refresh_loop(self):
        while self.running:
            await asyncio.sleep(self.refresh_s)
            self.refresh()

    def spawn(self, coro):
        return spawn(self._spawned, coro)

    # ---- requests ----------------------------------------------------------------------------
    async def handle(self, msg):
        mtype = msg.get("Type")
        obj = msg.get("Obj")
        reply_type = {"Start": "StartReply", "Stop": "StopReply"}.get(mtype)
        if reply_type is None:
            return None
        status, message = 200, ""
        try:
            if not isinstance(obj, dict) or not isinstance(obj.get("NodeID"), str) \
                    or not isinstance(obj.get("Resource"), dict):
                raise OnDemandError(400, "expected {\"NodeID\": <id>, \"Resource\": <%s>}" % self.what)
            uid = obj["Resource"].get("UUID")
            if not isinstance(uid, str) or not uid:
                raise OnDemandError(400, "UUID: a%s %s id is required" % ("n" if self.what[0] in "aeiou" else "",
                                                                          self.what))
            if mtype == "Start":
                await self.start_task(obj["NodeID"], uid, obj["Resource"])
            else:
                await self.stop_task(obj["NodeID"], uid)
        except OnDemandError as exc:
            status, message = exc.status, str(exc)
        except Exception as exc:            # never let a request crash the agent
            log.exception("%s %s failed", self.what, mtype)
            status, message = 500, str(exc) or type(exc).__name__
        if status != 200:
            (log.info if status == 404 else log.warning)(
                "%s %s on %s: %d %s", self.what, mtype, obj.get("NodeID") if isinstance(obj, dict) else "?",
                status, message)
        return {"Namespace": self.namespace, "Type": reply_type, "UUID": msg.get("UUID", ""), "Status": status,
                "Obj": message or None}

    async def start_task(self, node_id, uid, resource):
        if not self.running:
            raise OnDemandError(500, "the agent is stopping")
        node = self.graph.get_node(node_id)
        if node is None:
            raise OnDemandError(404, "node %s not found" % node_id)
        if (node_id, uid) in self.tasks:
            return                                    # idempotent Start
        task = self.create(node, resource)
        self.tasks[task.key] = task
        try:
            await self.launch(task, node)
        except Exception as exc:
            self.start_failed(task, exc)
            raise
        if not self.running or self.tasks.get(task.key) is not task:     # stopped meanwhile
            await self.remove(task)
            return
        self.publish(task)
        self.started(task)

    async def stop_task(self, node_id, uid):
        task = self.tasks.pop((node_id, uid), None)
        if task is None:
            # still drop a stale entry (agent restarted, task in error)
            if self.remove_entry(node_id, uid):
                return
            raise OnDemandError(404, "%s %s is not running on node %s" % (self.what, uid, node_id))
        await self.remove(task)
        self.remove_entry(node_id, uid)
        log.info("%s %s stopped on %s", self.what, uid, node_id)

    def finish(self, task):
        """The task ended by itself: forget it and drop its entry."""
        if self.tasks.get(task.key) is task:
            del self.tasks[task.key]
            self.remove_entry(task.node_id, task.uid)

    # ---- the node's entries ------------------------------------------------------------------
    def publish(self, task):
        node = self.graph.get_node(task.node_id)
        if node is None:
            return
        entry = self.entry(task)
        if entry == task.published:
            return
        cur = node.Metadata.get(self.metadata_key)
        items = [dict(x) for x in cur if isinstance(x, dict)] if isinstance(cur, list) else []
        for i, x in enumerate(items):
            if x.get("ID") == task.uid:
                if x == entry:
                    task.published = entry
                    return
                items[i] = entry
                break
        else:
            items.append(entry)
        self.graph.update_metadata(node, {self.metadata_key: items})
        task.published = entry

    def remove_entry(self, node_id, uid):
        node = self.graph.get_node(node_id)
        if node is None:
            return False
        cur = node.Metadata.get(self.metadata_key)
        if not isinstance(cur, list):
            return False
        kept = [dict(x) for x in cur if not (isinstance(x, dict) and x.get("ID") == uid)]
        if len(kept) == len(cur):
            return False
        if kept:
            self.graph.update_metadata(node, {self.metadata_key: kept})
        else:
            self.graph.del_metadata(node, self.metadata_key)
        return True

    # ---- graph listener: a node that disappears stops its tasks ----------------------------------
    def on_node_deleted(self, node):
        for key in [k for k in self.tasks if k[0] == node.ID]:
            task = self.tasks.pop(key)
            log.info("%s %s: node %s (%s) deleted, stopped", self.what, task.uid, node.Metadata.get("Name"), node.ID)
            self.spawn(self.remove(task))
