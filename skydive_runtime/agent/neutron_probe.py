"""neutron probe (`agent.topology.probes: [neutron]`): Neutron port attributes on the interfaces of
Neutron ports, as upstream topology/probes/neutron.

An interface is a Neutron port's when it carries `ExtID.iface-id` (the port ID, set by Nova/OVN on
the OVS interface), else `ExtID.attached-mac`, else when its name is a Neutron/Nova device name
(`tap*`, `qr-*`, `qg-*`, `qvo*`, `vnet*`) and its MAC is the port's (a libvirt tap's `fe:` MAC stands
for the VM's `fa:`). It gets `Manager: neutron`, `Neutron: {PortID, TenantID, ProjectID, NetworkID,
NetworkName, IPV4, IPV6, VNI, SegmentationID, NetworkType, DeviceID, DeviceOwner, SecurityGroups}`
and, on `tap*` interfaces with an attached MAC, `PeerIntfMAC`. Namespaces `qrouter-<id>` and
`qdhcp-<id>` get `Manager: neutron` and `Neutron: {RouterID, RouterName | NetworkID, NetworkName, ...}`.

One poll every `interval` seconds (and soon after an interface appears or changes): the matched
ports are listed with a few batched calls (`GET /v2.0/ports?id=..&id=..`, 80 per call; then their
networks, subnets and routers the same way), not one call per interface. A port gone from Neutron
loses its metadata at the next poll. The Keystone token is reused until it nears its expiry (or
Neutron answers 401). Keystone or Neutron unreachable is logged once, retried at every interval,
and shown in the probe's status; the agent keeps running.
"""

import asyncio
import logging
import re
import time

import aiohttp

from ..api.keystone import token_expiry, v3_url
from ..common.parts import Probe
from ..config import ConfigError
from ..graph.events import GraphListener

log = logging.getLogger(__name__)

BATCH = 80              # ids per list call: keeps the URL under 4 KB
INTF_NAME = re.compile(r"^((tap|qr-|qg-|qvo)[a-fA-F0-9\-]+|vnet[0-9]+)$")
NS_NAME = re.compile(r"^(qrouter|qdhcp)-([a-fA-F0-9\-]{36})$")
SKIP_TYPES = ("host", "netns", "ovsbridge", "ovsport")
TUNNELS = ("vxlan", "geneve", "gre")
PORT_FIELDS = ("id", "tenant_id", "project_id", "network_id", "mac_address", "fixed_ips", "device_id",
               "device_owner", "security_groups")


class NeutronUnavailable(Exception):
    pass


def create(agent):
    cfg = agent.config
    key = "agent.topology.neutron."
    endpoint_type = cfg.get_string(key + "endpoint_type", "public")
    if endpoint_type not in ("public", "internal", "admin"):
        raise ConfigError("%sendpoint_type: '%s' is not valid (must be 'public', 'admin' or 'internal')"
                          % (key, endpoint_type))
    auth_url = cfg.get_string(key + "auth_url")
    if not auth_url.startswith(("http://", "https://")):
        raise ConfigError("%sauth_url: the Keystone URL is required by the neutron probe (http(s)://host:5000/v3)" % key)
    interval = cfg.get_float(key + "interval", 30.0)
    if interval < 1:
        raise ConfigError("%sinterval: at least 1 second, got %g" % (key, interval))
    return NeutronProbe(agent.graph, NeutronClient(
        auth_url, cfg.get_string(key + "username", "neutron"), cfg.get_string(key + "password"),
        cfg.get_string(key + "tenant_name", "service"), cfg.get_string(key + "domain_name", "Default"),
        cfg.get_string(key + "region_name", "RegionOne"), endpoint_type,
        insecure=cfg.get_bool(key + "ssl_insecure", False)), interval)


class NeutronClient:
    """A Keystone session (token + Neutron endpoint from the catalog) and batched list calls."""

    def __init__(self, auth_url, username, password, tenant, domain, region, endpoint_type, insecure=False, timeout=10.0):
        self.url = v3_url(auth_url)
        self.username, self.password, self.tenant, self.domain = username, password, tenant, domain
        self.region, self.endpoint_type = region, endpoint_type
        self.ssl = False if insecure else None
        self.timeout = timeout
        self.token = self.endpoint = None
        self.expires = 0.0
        self.session = None
        self.calls = {}          # resource -> GET calls made (since start)
        self.auths = 0

    def _session(self):
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self.session

    async def close(self):
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def authenticate(self):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": self.username, "domain": {"name": self.domain}, "password": self.password}}},
            "scope": {"project": {"name": self.tenant, "domain": {"name": self.domain}}}}}
        self.auths += 1
        try:
            async with self._session().post(self.url + "/auth/tokens", json=body, ssl=self.ssl) as resp:
                data = await resp.json(content_type=None) if resp.status == 201 else None
                if data is None:
                    raise NeutronUnavailable("Keystone %s refused user %s of project %s: HTTP %d"
                                             % (self.url, self.username, self.tenant, resp.status))
                token = resp.headers.get("X-Subject-Token", "")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise NeutronUnavailable("Keystone %s unreachable: %s" % (self.url, exc or type(exc).__name__)) from None
        tok = data.get("token") or {}
        endpoint = None
        for svc in tok.get("catalog") or ():
            if svc.get("type") != "network":
                continue
            for e in svc.get("endpoints") or ():
                if e.get("interface") == self.endpoint_type and (e.get("region_id") or e.get("region")) == self.region:
                    endpoint = e.get("url")
        if not endpoint:
            raise NeutronUnavailable("no %s network endpoint in region %s in Keystone's catalog"
                                     % (self.endpoint_type, self.region))
        self.token, self.endpoint = token, endpoint.rstrip("/")
        self.expires = token_expiry(tok.get("expires_at")) or time.time() + 3600

    async def ensure_token(self):
        """A token (and the Neutron endpoint) valid for two more minutes at least."""
        if self.token is None or time.time() > self.expires - 120:
            await self.authenticate()

    async def _get(self, resource, params, retry=True):
        await self.ensure_token()
        self.calls[resource] = self.calls.get(resource, 0) + 1
        try:
            async with self._session().get("%s/v2.0/%s" % (self.endpoint, resource), params=params, ssl=self.ssl,
                                           headers={"X-Auth-Token": self.token, "Accept": "application/json"}) as resp:
                if resp.status == 401 and retry:
                    self.token = None
                    return await self._get(resource, params, retry=False)
                if resp.status != 200:
                    raise NeutronUnavailable("Neutron %s: GET %s: HTTP %d %s"
                                             % (self.endpoint, resource, resp.status, (await resp.text())[:200]))
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise NeutronUnavailable("Neutron %s unreachable: %s" % (self.endpoint, exc or type(exc).__name__)) from None
        return data.get(resource) or []

    async def list(self, resource, key, values, fields=None):
        """Every `resource` whose `key` is one of `values`, BATCH values per call."""
        values = sorted(set(values))
        out = []
        for i in range(0, len(values), BATCH):
            params = [(key, v) for v in values[i:i + BATCH]] + [("fields", f) for f in fields or ()]
            out.extend(await self._get(resource, params))
        return out


def _mac_candidates(name, mac):
    macs = [mac.lower()]
    if name.startswith("tap") and mac.lower().startswith("fe:"):
        macs.append("fa:" + mac.lower()[3:])     # libvirt's tap MAC for the VM's fa:16:3e:...
    return macs


def match_key(md):
    """How a node names its Neutron object: ("id", port id), ("mac", (macs...), name),
    ("router"|"network", id) for qrouter-/qdhcp- namespaces, or None."""
    name = md.get("Name")
    if not isinstance(name, str):
        return None
    ntype = md.get("Type")
    if ntype == "netns":
        m = NS_NAME.match(name)
        return ("router" if m.group(1) == "qrouter" else "network", m.group(2)) if m else None
    if ntype in SKIP_TYPES:
        return None
    ext = md.get("ExtID") if isinstance(md.get("ExtID"), dict) else {}
    if ext.get("iface-id"):
        return ("id", str(ext["iface-id"]))
    if ext.get("attached-mac"):
        return ("mac", (str(ext["attached-mac"]).lower(),), "")
    mac = md.get("MAC")
    if INTF_NAME.match(name) and isinstance(mac, str) and mac:
        return ("mac", tuple(_mac_candidates(name, mac)), name)
    return None


def _name_fits(name, port_id):
    """A device named after its port (tap/qr-/qg-/qvo + the ID's first 11 characters) is that port's."""
    for prefix in ("tap", "qr-", "qg-", "qvo"):
        if name.startswith(prefix):
            return port_id.startswith(name[len(prefix):])
    return True


def _omit_empty(md):
    return {k: v for k, v in md.items() if v not in (None, "", [], 0)}


class NeutronProbe(Probe, GraphListener):
    def __init__(self, graph, client, interval=30.0, debounce=0.5):
        self.graph = graph
        self.client = client
        self.interval = interval
        self.debounce = debounce
        self.keys = {}          # node id -> match key seen
        self.applied = {}       # node id -> the metadata this probe set
        self.task = None
        self.loop = None
        self.wake = None
        self.state = "starting"
        self.error = ""
        self.polls = 0          # successful polls
        self.attempts = 0
        self.last_poll = {}

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self):
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.graph.add_listener(self)
        self.wake.set()              # a first poll at once for the interfaces already there
        self.task = self.loop.create_task(self._run())

    def stop(self):
        """Cancels the poller; the coroutine returned (awaited by Parts) closes the HTTP session."""
        self.graph.remove_listener(self)
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
        return self._closed(task)

    async def _closed(self, task):
        if task is not None:
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.client.close()

    def status(self):
        st = {"State": self.state, "AuthURL": self.client.url, "Endpoint": self.client.endpoint or "",
              "Interval": self.interval, "Polls": self.polls, "Attempts": self.attempts, "Ports": sum(1 for m in self.applied.values() if "PortID" in m),
              "Calls": dict(self.client.calls), "LastPoll": self.last_poll}
        if self.error:
            st["Error"] = self.error
        return st

    # ---- graph events: a new or changed candidate brings the next poll forward ------------------
    def _seen(self, node):
        key = match_key(node.Metadata)
        if key is None and node.ID not in self.keys:
            return
        if self.keys.get(node.ID) != key:
            self.keys[node.ID] = key
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self.wake.set)

    def on_node_added(self, node):
        self._seen(node)

    def on_node_updated(self, node, ops):
        self._seen(node)

    def on_node_deleted(self, node):
        self.keys.pop(node.ID, None)
        self.applied.pop(node.ID, None)

    # ---- polling ---------------------------------------------------------------------------------
    async def _run(self):
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), self.interval)
                await asyncio.sleep(self.debounce)        # a burst of new interfaces: one poll
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            self.attempts += 1
            try:
                await self.poll()
                if self.state != "connected":
                    log.info("neutron: connected to %s", self.client.endpoint)
                self.state, self.error = "connected", ""
            except NeutronUnavailable as exc:
                if self.state != "unreachable" or self.error != str(exc):
                    log.warning("neutron: %s (retrying every %g s)", exc, self.interval)
                self.state, self.error = "unreachable", str(exc)
            except Exception as exc:      # never fatal to the agent
                log.exception("neutron: poll failed")
                self.state, self.error = "error", str(exc)

    async def poll(self):
        started = time.monotonic()
        before = dict(self.client.calls)
        with self.graph.lock:
            nodes = {n.ID: match_key(n.Metadata) for n in list(self.graph.nodes.values())}
        nodes = {nid: k for nid, k in nodes.items() if k is not None}
        self.keys.update(nodes)
        ids = {k[1] for k in nodes.values() if k[0] == "id"}
        macs = {m for k in nodes.values() if k[0] == "mac" for m in k[1]}
        c = self.client
        await c.ensure_token()       # "connected" means Keystone and the catalog answered, even with no port yet
        ports = (await c.list("ports", "id", ids, PORT_FIELDS) if ids else []) + \
            (await c.list("ports", "mac_address", macs, PORT_FIELDS) if macs else [])
        net_ids = {p["network_id"] for p in ports} | {k[1] for k in nodes.values() if k[0] == "network"}
        subnet_ids = {ip["subnet_id"] for p in ports for ip in p.get("fixed_ips") or ()}
        router_ids = {k[1] for k in nodes.values() if k[0] == "router"}
        networks = {n["id"]: n for n in await c.list("networks", "id", net_ids)} if net_ids else {}
        subnets = {s["id"]: s for s in await c.list("subnets", "id", subnet_ids, ("id", "cidr", "ip_version"))} \
            if subnet_ids else {}
        routers = {r["id"]: r for r in await c.list("routers", "id", router_ids, ("id", "name", "tenant_id", "project_id"))} \
            if router_ids else {}
        by_id = {p["id"]: p for p in ports}
        by_mac = {}
        for p in ports:
            by_mac.setdefault(p["mac_address"].lower(), []).append(p)
        wanted = {}
        for nid, key in nodes.items():
            md = self._metadata(key, by_id, by_mac, networks, subnets, routers)
            if md is not None:
                wanted[nid] = md
        self._apply(wanted)
        self.polls += 1
        self.last_poll = {"Seconds": round(time.monotonic() - started, 3), "Candidates": len(nodes),
                          "Matched": len(wanted), "Calls": {r: n - before.get(r, 0) for r, n in c.calls.items()
                                                            if n - before.get(r, 0)}}

    def _metadata(self, key, by_id, by_mac, networks, subnets, routers):
        kind = key[0]
        if kind == "router":
            r = routers.get(key[1]) or {}
            return _omit_empty({"RouterID": key[1], "RouterName": r.get("name"), "TenantID": r.get("tenant_id"),
                                "ProjectID": r.get("project_id")})
        if kind == "network":
            n = networks.get(key[1]) or {}
            return _omit_empty({"NetworkID": key[1], "NetworkName": n.get("name"), "TenantID": n.get("tenant_id"),
                                "ProjectID": n.get("project_id")})
        if kind == "id":
            port = by_id.get(key[1])
        else:
            found = [p for m in key[1] for p in by_mac.get(m, ()) if _name_fits(key[2], p["id"])]
            port = found[0] if found else None
        if port is None:
            return None
        net = networks.get(port["network_id"]) or {}
        v4, v6 = [], []
        for ip in port.get("fixed_ips") or ():
            sub = subnets.get(ip.get("subnet_id")) or {}
            cidr = sub.get("cidr") or ""
            addr = ip["ip_address"] + ("/" + cidr.split("/")[1] if "/" in cidr else "")
            (v6 if sub.get("ip_version") == 6 or ":" in ip["ip_address"] else v4).append(addr)
        seg = net.get("provider:segmentation_id")
        ntype = net.get("provider:network_type")
        return _omit_empty({
            "PortID": port["id"], "TenantID": port.get("tenant_id"), "ProjectID": port.get("project_id"),
            "NetworkID": port["network_id"], "NetworkName": net.get("name"), "IPV4": v4, "IPV6": v6,
            "VNI": int(seg) if seg is not None and ntype in TUNNELS else 0,
            "SegmentationID": int(seg) if seg is not None else 0, "NetworkType": ntype,
            "DeviceID": port.get("device_id"), "DeviceOwner": port.get("device_owner"),
            "SecurityGroups": sorted(port.get("security_groups") or [])})

    def _apply(self, wanted):
        g = self.graph
        with g.lock:
            for nid in [n for n in self.applied if n not in wanted]:
                self.applied.pop(nid)
                node = g.nodes.get(nid)
                if node is not None and node.Metadata.get("Manager") == "neutron":
                    g.update_metadata(node, {}, deletes=[k for k in ("Manager", "Neutron", "PeerIntfMAC")
                                                         if k in node.Metadata])
            for nid, md in wanted.items():
                node = g.nodes.get(nid)
                if node is None:
                    continue
                changes = {"Manager": "neutron", "Neutron": md}
                name = node.Metadata.get("Name") or ""
                ext = node.Metadata.get("ExtID") if isinstance(node.Metadata.get("ExtID"), dict) else {}
                if name.startswith("tap") and ext.get("attached-mac"):
                    changes["PeerIntfMAC"] = ext["attached-mac"]
                changes = {k: v for k, v in changes.items() if node.Metadata.get(k) != v}
                if changes:
                    g.update_metadata(node, changes)
                self.applied[nid] = md
