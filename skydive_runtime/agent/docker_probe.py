"""docker probe: containers through the Docker Engine API (served by Docker and by
`podman system service`) on `agent.topology.docker.url` (unix:///var/run/docker.sock).

Each running container is a node `{Type: container, Name, Manager: docker, Container: {ID, Image,
ImageID, Runtime: docker, Status, InitProcessPID, Labels}}` (labels with dotted keys nest:
`Container.Labels.a.b`) owned by its network namespace's netns node, which gets `Manager: docker`
and the container's name (the namespace, /proc/<pid>/ns/net, is registered with the netns probe
when no other way found it, and its interfaces come with it); a `--net=host` container is owned
by the host node. A stopped or removed container's node goes.

A thread lists the containers, then follows `GET /events` (container start, die, stop, destroy,
pause, unpause, rename); the graph changes on the loop. When the API cannot be reached the
thread retries every second and the status says why.
"""

import asyncio
import http.client
import json
import logging
import socket
import urllib.parse

from ..common.parts import Probe
from ..common.source_thread import SourceThread
from ..config import ConfigError

log = logging.getLogger(__name__)

API = "/v1.40"
GONE = ("die", "died", "stop", "destroy", "remove", "oom")
CHANGED = ("start", "restart", "unpause", "pause", "rename", "update")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def parse_url(url):
    """`unix:///path`, `tcp://host:port`, `http://host:port` -> a connection factory."""
    u = urllib.parse.urlparse(url)
    if u.scheme == "unix" and u.path:
        return lambda timeout=10: UnixHTTPConnection(u.path, timeout)
    if u.scheme in ("tcp", "http") and u.hostname:
        return lambda timeout=10: http.client.HTTPConnection(u.hostname, u.port or 2375, timeout=timeout)
    raise ConfigError("agent.topology.docker.url: %r is not unix:///path or tcp://host:port" % url)


def nest_labels(labels):
    """{"a.b": "c", "d": "e"} -> {"a": {"b": "c"}, "d": "e"} (upstream's NormalizeValue)."""
    out = {}
    for key in sorted(labels or {}):
        parts = key.split(".")
        d = out
        for part in parts[:-1]:
            nxt = d.get(part)
            if not isinstance(nxt, dict):
                nxt = d[part] = {}
            d = nxt
        if not isinstance(d.get(parts[-1]), dict):
            d[parts[-1]] = labels[key]
    return out


def create(agent):
    url = agent.config.get_string("agent.topology.docker.url") or "unix:///var/run/docker.sock"
    return DockerProbe(agent.topology, agent.probes["netns"], url)


class DockerWatcher(SourceThread):
    def __init__(self, loop, connect, url, probe):
        SourceThread.__init__(self, loop, "docker-events")
        self.connect = connect
        self.url = url
        self.probe = probe
        self.conn = None

    def interrupt(self):
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def get(self, path):
        conn = self.connect()
        try:
            conn.request("GET", API + path)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise OSError(0, "GET %s: HTTP %d %s" % (path, resp.status, body[:200].decode("utf-8", "replace")))
        return json.loads(body)

    def inspect(self, cid):
        info = self.get("/containers/%s/json" % urllib.parse.quote(cid))
        if info is None or not (info.get("State") or {}).get("Running"):
            return None
        return info

    def failed(self, exc):
        self.post(self.probe.on_state, "waiting", "%s: %s" % (self.url, exc))

    def session(self):
        # events first (none is lost between the list and the stream), then the list
        conn = self.conn = self.connect(timeout=None)
        filters = urllib.parse.quote(json.dumps({"type": ["container"]}))
        conn.request("GET", API + "/events?filters=" + filters)
        resp = conn.getresponse()
        if resp.status != 200:
            raise OSError(0, "GET /events: HTTP %d" % resp.status)
        running = [c["Id"] for c in self.get("/containers/json") or []]
        infos = [i for i in (self.inspect(cid) for cid in running) if i is not None]
        self.post(self.probe.on_sync, infos)
        self.post(self.probe.on_state, "connected", "")
        while self.running:
            line = resp.readline()
            if not line:
                raise OSError(0, "the event stream ended")
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            action = (ev.get("Action") or ev.get("status") or "").split(":")[0]
            cid = ev.get("id") or (ev.get("Actor") or {}).get("ID")
            if not cid:
                continue
            if action in GONE:
                self.post(self.probe.on_gone, cid)
            elif action in CHANGED:
                info = self.inspect(cid)
                if info is None:
                    self.post(self.probe.on_gone, cid)
                else:
                    self.post(self.probe.on_container, info)


class DockerProbe(Probe):
    stop_blocks = True      # joins the event thread

    def __init__(self, topology, netns, url):
        self.topo = topology
        self.graph = topology.graph
        self.netns = netns
        self.url = url
        self.connect = parse_url(url)
        self.watcher = None
        self.state, self.error = "starting", ""
        self.containers = {}      # container ID -> (node, netns path registered by us or None)
        self.synced = asyncio.Event()

    def start(self):
        self.watcher = DockerWatcher(asyncio.get_running_loop(), self.connect, self.url, self)
        self.watcher.start()

    def stop(self):
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher.join(timeout=3)
            self.watcher = None

    def status(self):
        st = {"State": self.state, "URL": self.url, "Containers": len(self.containers)}
        if self.error:
            st["Error"] = self.error
        return st

    def on_state(self, state, error):
        if (state, error) != (self.state, self.error):
            log.info("docker: %s %s", state, error)
        self.state, self.error = state, error

    # ---- on the loop ---------------------------------------------------------------------------
    def on_sync(self, infos):
        ids = {i["Id"] for i in infos}
        for cid in [c for c in self.containers if c not in ids]:
            self.on_gone(cid)
        for info in infos:
            self.on_container(info)
        self.synced.set()

    def on_container(self, info):
        g = self.graph
        cid = info["Id"]
        state = info.get("State") or {}
        pid = int(state.get("Pid") or 0)
        name = (info.get("Name") or cid[:12]).lstrip("/")
        config = info.get("Config") or {}
        meta = {"ID": cid, "Runtime": "docker", "Status": state.get("Status", ""), "InitProcessPID": pid}
        if config.get("Image"):
            meta["Image"] = config["Image"]
        if info.get("Image"):
            meta["ImageID"] = info["Image"]
        if config.get("Labels"):
            meta["Labels"] = nest_labels(config["Labels"])
        md = {"Type": "container", "Name": name, "Manager": "docker", "Container": meta}
        path = "/proc/%d/ns/net" % pid
        try:
            if self.netns.is_own(path):
                owner, registered = self.topo.host, None
            else:
                owner, created = self.netns.register(path, name)
                registered = path if created else None
        except OSError as exc:
            log.debug("docker: container %s: namespace of pid %d: %s", name, pid, exc)
            return
        if owner is None:
            return
        with g.lock:
            old = self.containers.get(cid)
            node = old[0] if old is not None and old[0].ID in g.nodes else None
            if old is not None and old[1] and old[1] != registered:
                self.netns.unregister(old[1])
            if node is None:
                node = g.new_node(metadata=md)
            elif node.Metadata != md:
                g.set_metadata(node, md)
            if owner is not self.topo.host:
                changes = {k: v for k, v in (("Manager", "docker"), ("Name", name)) if owner.Metadata.get(k) != v}
                if changes:
                    g.update_metadata(owner, changes)
            self.topo.own(owner, node)
            self.containers[cid] = (node, registered)

    def on_gone(self, cid):
        entry = self.containers.pop(cid, None)
        if entry is None:
            return
        node, registered = entry
        with self.graph.lock:
            if node.ID in self.graph.nodes:
                self.graph.del_node(node)
            if registered:
                self.netns.unregister(registered)
