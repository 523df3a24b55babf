"""The netlink monitor thread: one thread, one epoll, every namespace.

For each namespace it holds a request socket, an event socket (subscribed to link, address,
route and neighbour groups) and an ethtool socket, all opened inside the namespace through
`setns` in this thread (then the thread goes back to its own namespace). It keeps the kernel
state it has seen (links, addresses, routes, neighbours) and turns every change into the full
netlink metadata of the interfaces it touches; the batches are handed to the asyncio loop with
`call_soon_threadsafe`. Nothing here touches the graph.
"""

import errno
import logging
import os
import selectors
import threading
import time

from ..common.source_thread import SourceThread
from ..common.timeutil import now_ms
from . import nl

log = logging.getLogger(__name__)

ROOT = ""   # key of the agent's own namespace


class _Ns:
    def __init__(self, key, name, path):
        self.key = key
        self.name = name
        self.path = path
        self.fd = -1
        self.req = None
        self.evt = None
        self.eth = None
        self.links = {}
        self.addrs = {}      # index -> {cidr: family}
        self.routes = {}     # key -> route
        self.neighs = {}     # key -> neigh
        self.eth_cache = {}  # index -> (name, driver, bus, speed)
        self.features = {}   # index -> {feature: active}, re-read on every link event
        self.nsids = {}      # nsid -> ns key
        self.metrics = {}    # index -> (counters tuple, start ms, last ms)
        self.unresolved = set()  # indexes whose link netnsid is not mapped yet
        self.queried = set()     # namespaces already asked for their nsid (negative cache)
        self.failed_ids = set()  # nsids that no known namespace matched

    def close(self):
        for s in (self.req, self.evt, self.eth):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.req = self.evt = self.eth = None
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


def metric_json(counters, start, last):
    m = {k: v for k, v in zip(nl.STATS64_FIELDS, counters) if v}
    m["Start"] = start
    m["Last"] = last
    return m


class NetlinkMonitor(SourceThread):
    """Owns every netlink socket. `sink(batches)` is called on the loop with a list of
    (ns_key, full, {ifindex: entry or None}) where entry = (metadata, relations, metric_update)."""

    EVENT_RCVBUF = 8 << 20   # per event socket; an overflow (ENOBUFS) costs a redump of the namespace

    def __init__(self, loop, sink, metrics_interval=30.0, on_ns_error=None):
        SourceThread.__init__(self, loop, "netlink-monitor")
        self.sink = sink
        self.on_ns_error = on_ns_error
        self.metrics_interval = max(0.5, float(metrics_interval))
        self.sel = selectors.DefaultSelector()
        self.home_fd = None
        self.cmds = []
        self.lock = threading.Lock()
        self.ns = {}
        self.pending_out = []
        self.ready = threading.Event()
        self.stats = {"events": 0, "dumps": 0, "resyncs": 0}
        self.incomplete = {}   # (ns key, ifindex) -> attempts: veths announced before their peer was set

    # ---- called from the loop ---------------------------------------------------------------------
    def _command(self, *cmd):
        with self.lock:
            self.cmds.append(cmd)
        self.wake()

    def add_namespace(self, key, name, path):
        self._command("add", key, name, path)

    def remove_namespace(self, key):
        self._command("del", key)

    # ---- thread --------------------------------------------------------------------------------
    def session(self):
        if self.home_fd is None:
            self.home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            self.sel.register(self.wake_fd, selectors.EVENT_READ, None)
        next_metrics = time.monotonic() + self.metrics_interval
        self.ready.set()
        while self.running:
            timeout = max(0.0, next_metrics - time.monotonic())
            if self.incomplete:
                timeout = min(timeout, 0.02)
            try:
                events = self.sel.select(timeout)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            for key, _mask in events:
                try:
                    if key.data is None:
                        self.drain()
                        self._run_commands()
                    else:
                        self._read_events(key.data)
                except Exception:   # the monitor must outlive any namespace's oddity
                    log.exception("netlink: monitor error")
            if self.incomplete:
                try:
                    self._retry_incomplete()
                except Exception:
                    log.exception("netlink: veth peer lookup failed")
            if time.monotonic() >= next_metrics:
                next_metrics = time.monotonic() + self.metrics_interval
                try:
                    self._update_metrics()
                except Exception:
                    log.exception("netlink: metrics update failed")
            self._flush()

    def finish(self):
        for ns in list(self.ns.values()):
            self._drop(ns)
        if self.home_fd is not None:
            os.close(self.home_fd)
            self.home_fd = None
        self.sel.close()

    def _flush(self):
        if self.pending_out:
            out, self.pending_out = self.pending_out, []
            self.post(self.sink, out)

    def _run_commands(self):
        with self.lock:
            cmds, self.cmds = self.cmds, []
        for cmd in cmds:
            if cmd[0] == "add":
                self._add(*cmd[1:])
            elif cmd[0] == "del":
                ns = self.ns.pop(cmd[1], None)
                if ns is not None:
                    self._drop(ns)

    def _drop(self, ns):
        if ns.evt is not None:
            try:
                self.sel.unregister(ns.evt.sock)
            except (KeyError, ValueError, OSError):
                pass
        ns.close()
        self.ns.pop(ns.key, None)
        for other in self.ns.values():
            other.queried.discard(ns.key)
            for nsid, k in list(other.nsids.items()):
                if k == ns.key:
                    del other.nsids[nsid]

    def _add(self, key, name, path):
        if key in self.ns:
            return
        ns = _Ns(key, name, path)
        try:
            if key == ROOT:
                ns.fd = os.dup(self.home_fd)
                self._open_sockets(ns)
            else:
                path_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    nl.setns(path_fd)
                finally:
                    os.close(path_fd)   # an fd on the bind mount would keep `umount` busy
                try:
                    # the same namespace through nsfs, not through the mount point
                    ns.fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                    self._open_sockets(ns)
                finally:
                    nl.setns(self.home_fd)
            self.sel.register(ns.evt.sock, selectors.EVENT_READ, ns)
            self.ns[key] = ns
            self._full_dump(ns)
        except Exception as exc:
            log.info("netlink: cannot watch namespace %s: %s", path or "host", exc)
            self._drop(ns)
            if self.on_ns_error is not None:
                self.post(self.on_ns_error, key, str(exc))
            return
        # veths waiting for this namespace to be known
        for other in list(self.ns.values()):
            if other is ns or not other.unresolved:
                continue
            changed = self._resolve_nsids(other)
            if changed:
                self.pending_out.append((other.key, False, self._entries(other, changed)))

    def _open_sockets(self, ns):
        ns.evt = nl.NetlinkSocket(nl.ALL_GROUPS, rcvbuf=self.EVENT_RCVBUF)
        ns.evt.sock.setblocking(False)
        ns.req = nl.NetlinkSocket(0, rcvbuf=1 << 20)
        ns.eth = nl.Ethtool()

    # ---- state ---------------------------------------------------------------------------------
    def _full_dump(self, ns):
        """Read the whole state of a namespace; retried when the kernel says the dump was interrupted."""
        self.stats["dumps"] += 1
        links, addrs, routes, neighs = {}, {}, {}, {}
        for t, data, off, end in ns.req.dump(nl.RTM_GETLINK):
            if t == nl.RTM_NEWLINK:
                l = nl.decode_link(data, off, end)
                links[l["index"]] = l
        for t, data, off, end in ns.req.dump(nl.RTM_GETADDR):
            if t == nl.RTM_NEWADDR:
                a = nl.decode_addr(data, off, end)
                if a is not None:
                    addrs.setdefault(a["index"], {})[a["cidr"]] = a["family"]
        for t, data, off, end in ns.req.dump(nl.RTM_GETROUTE):
            if t == nl.RTM_NEWROUTE:
                r = nl.decode_route(data, off, end)
                if r is not None:
                    routes[r["key"]] = r
        for fam in (nl.AF_INET, nl.AF_INET6, nl.AF_BRIDGE):
            try:
                answers = ns.req.dump(nl.RTM_GETNEIGH, fam)
            except OSError:
                continue
            for t, data, off, end in answers:
                if t == nl.RTM_NEWNEIGH:
                    n = nl.decode_neigh(data, off, end)
                    neighs[n["key"]] = n
        ns.links, ns.addrs, ns.routes, ns.neighs = links, addrs, routes, neighs
        ns.eth_cache = {i: v for i, v in ns.eth_cache.items() if i in links}
        ns.features = {i: ns.eth.features(l["name"]) for i, l in links.items()}
        ns.unresolved = set(i for i, l in links.items() if l["link_netnsid"] is not None)
        for i, l in links.items():
            if l["kind"] == "veth" and not l["link"]:
                self.incomplete[(ns.key, i)] = 0
        self._resolve_nsids(ns)
        now = now_ms()
        for i, l in links.items():
            if i not in ns.metrics and l["stats"] is not None:
                ns.metrics[i] = (l["stats"], now, now)
        ns.metrics = {i: m for i, m in ns.metrics.items() if i in links}
        entries = self._entries(ns, list(links), with_metric=True)
        self.pending_out.append((ns.key, True, entries))

    def _resolve_nsids(self, ns):
        """Map the link netnsids of ns to namespaces we know; returns indexes that got resolved."""
        missing = set()
        for i in ns.unresolved:
            l = ns.links.get(i)
            if l is not None and l["link_netnsid"] is not None and l["link_netnsid"] not in ns.nsids:
                missing.add(l["link_netnsid"])
        if missing - ns.failed_ids:
            ns.queried = set()   # an id never seen before: namespaces may have been given ids since
        if missing and ns.req is not None:
            for other in list(self.ns.values()):
                if other is ns or other.fd < 0 or other.key in ns.queried or other.key in ns.nsids.values():
                    continue
                ns.queried.add(other.key)
                nsid = ns.req.get_nsid(other.fd)
                if nsid is not None:
                    ns.nsids[nsid] = other.key
                    missing.discard(nsid)
                if not missing:
                    break
        ns.failed_ids = missing
        resolved = set()
        for i in list(ns.unresolved):
            l = ns.links.get(i)
            if l is None or l["link_netnsid"] is None:
                ns.unresolved.discard(i)
            elif l["link_netnsid"] in ns.nsids:
                ns.unresolved.discard(i)
                resolved.add(i)
        return resolved

    def _ethtool(self, ns, link):
        i = link["index"]
        cached = ns.eth_cache.get(i)
        if cached is not None and cached[0] == link["name"]:
            return cached
        driver, bus = ns.eth.driver(link["name"]) if ns.eth else ("", "")
        speed = ns.eth.speed(link["name"]) if ns.eth else None
        v = (link["name"], driver, bus, speed)
        ns.eth_cache[i] = v
        return v

    def _entries(self, ns, indexes, with_metric=False):
        """Entries of several interfaces; routes and neighbours indexed once for big batches."""
        idx = None
        if len(indexes) > 4:
            routes, neighs = {}, {}
            for r in ns.routes.values():
                for i in set(h["ifindex"] for h in r["hops"]):
                    routes.setdefault(i, []).append(r)
            for n in ns.neighs.values():
                neighs.setdefault(n["index"], []).append(n)
            idx = (routes, neighs)
        return {i: self._entry(ns, i, with_metric, idx) for i in indexes}

    def _routing_tables(self, ns, index, routes=None):
        tables = {}
        for r in (ns.routes.values() if routes is None else routes):
            hops = [h for h in r["hops"] if h["ifindex"] == index]
            if not hops:
                continue
            t = tables.get(r["table"])
            if t is None:
                t = tables[r["table"]] = {"ID": r["table"]}
                if r["src"]:
                    t["Src"] = r["src"]
                t["Routes"] = []
            route = {"Protocol": r["protocol"], "Prefix": r["prefix"], "NextHops": []}
            for h in hops:
                nh = {}
                if r["priority"]:
                    nh["Priority"] = r["priority"]
                if h["gw"]:
                    nh["IP"] = h["gw"]
                nh["IfIndex"] = index
                route["NextHops"].append(nh)
            t["Routes"].append(route)
        out = [tables[k] for k in sorted(tables)]
        for t in out:
            t["Routes"].sort(key=lambda r: (r["Prefix"], r["Protocol"]))
        return out

    def _entry(self, ns, index, with_metric=False, idx=None):
        l = ns.links.get(index)
        if l is None:
            return None
        _name, driver, bus, speed = self._ethtool(ns, l)
        kind = l["kind"]
        ltype = nl.KIND_NAMES.get(kind, kind)
        if driver == "veth":
            ltype = "veth"
        if not driver and ltype == "bridge":
            driver = "bridge"
        md = {
            "Name": l["name"], "Type": ltype, "EncapType": nl.ENCAP_TYPES.get(l["arphrd"], "unknown"),
            "IfIndex": index, "Driver": driver,
            "State": nl.OPERSTATES[l["operstate"]] if l["operstate"] < len(nl.OPERSTATES) else "UNKNOWN",
            "LinkFlags": [n for n, bit in nl.LINK_FLAGS if l["flags"] & bit],
        }
        if l["mac"]:
            md["MAC"] = l["mac"]
        if l["mtu"]:
            md["MTU"] = l["mtu"]
        if bus:
            md["BusInfo"] = bus
        if speed:
            md["Speed"] = speed
        rel = {"master": l["master"] or None, "parent": None, "peer": None}
        if l["master"]:
            md["MasterIndex"] = l["master"]
        if l["link"] and ltype == "veth":
            md["PeerIfIndex"] = l["link"]
            peer_ns = ns.key
            if l["link_netnsid"] is not None:
                md["LinkNetNsID"] = l["link_netnsid"]
                peer_ns = ns.nsids.get(l["link_netnsid"])
                if peer_ns is not None and peer_ns != ROOT:
                    other = self.ns.get(peer_ns)
                    md["LinkNetNsName"] = other.name if other else os.path.basename(peer_ns)
            if peer_ns is not None:
                rel["peer"] = (peer_ns, l["link"])
        elif l["link"] and l["link"] != index and l["link_netnsid"] is None:
            md["ParentIndex"] = l["link"]
            rel["parent"] = l["link"]
        feats = ns.features.get(index)
        if feats:
            md["Features"] = feats
        if l["vlan"] is not None:
            md["Vlan"] = l["vlan"]
        if l["vni"] is not None:
            md["VNI"] = l["vni"]
        ips = ns.addrs.get(index)
        if ips:
            v4 = [c for c, f in ips.items() if f == nl.AF_INET]
            v6 = [c for c, f in ips.items() if f == nl.AF_INET6]
            if v4:
                md["IPV4"] = v4
            if v6:
                md["IPV6"] = v6
        rt = self._routing_tables(ns, index, idx[0].get(index, ()) if idx else None)
        if rt:
            md["RoutingTables"] = rt
        neighbors, fdb = [], []
        for n in (idx[1].get(index, ()) if idx else ns.neighs.values()):
            if n["index"] == index:
                (fdb if n["family"] == nl.AF_BRIDGE else neighbors).append(nl.neigh_json(n))
        if neighbors:
            md["Neighbors"] = sorted(neighbors, key=lambda n: (n.get("IP", ""), n["MAC"]))
        if fdb:
            md["FDB"] = sorted(fdb, key=lambda n: (n["MAC"], n.get("Vlan", 0)))
        metric = None
        if with_metric and index in ns.metrics:
            counters, start, last = ns.metrics[index]
            metric = {"Metric": metric_json(counters, start, last)}
        return (md, rel, metric)

    def _read_events(self, ns):
        if ns.evt is None:
            return
        dirty = set()
        resync = False
        while True:
            try:
                n = ns.evt.sock.recv_into(ns.evt.buf)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    resync = True
                    continue
                # anything else: start this namespace over with fresh sockets (a broken socket
                # left in the selector would spin)
                log.warning("netlink: event socket of %s failed (%s), reopening", ns.path or "host", exc)
                self._drop(ns)
                self._add(ns.key, ns.name, ns.path)
                return
            if n == 0:
                break
            data = bytes(ns.evt.buf[:n])
            for t, _fl, _seq, off, end in nl.iter_messages(data):
                self.stats["events"] += 1
                try:
                    self._apply(ns, t, data, off, end, dirty)
                except Exception:  # a malformed message must not kill the monitor
                    log.exception("netlink: cannot decode message type %d", t)
        if resync:
            self.stats["resyncs"] += 1
            try:
                self._full_dump(ns)
            except OSError as exc:
                log.info("netlink: resync of %s failed: %s", ns.path or "host", exc)
            return
        if dirty:
            if ns.unresolved:
                dirty |= self._resolve_nsids(ns)
            entries = self._entries(ns, dirty)
            self.pending_out.append((ns.key, False, entries))
            self._refresh_peers(ns, dirty)

    def _retry_incomplete(self):
        """A veth pair created straight into two namespaces announces the first end before the
        pair is joined (no IFLA_LINK) and sends nothing afterwards: ask again until it is."""
        for (key, index), attempts in list(self.incomplete.items()):
            ns = self.ns.get(key)
            if ns is None or ns.req is None or index not in ns.links or attempts > 50:
                del self.incomplete[(key, index)]
                continue
            try:
                fresh = ns.req.get_link(index)
            except OSError:
                fresh = None
            if fresh is None:
                del self.incomplete[(key, index)]
                continue
            if not fresh["link"]:
                self.incomplete[(key, index)] = attempts + 1
                continue
            del self.incomplete[(key, index)]
            ns.links[index] = fresh
            if fresh["link_netnsid"] is not None:
                ns.unresolved.add(index)
                self._resolve_nsids(ns)
            self.pending_out.append((ns.key, False, {index: self._entry(ns, index)}))

    def _refresh_peers(self, ns, dirty):
        """The kernel sends no event to a veth whose peer moved to another namespace: re-read
        the peer side of every veth that changed here and publish it when its link changed."""
        for i in dirty:
            l = ns.links.get(i)
            if l is None or l["kind"] != "veth" or not l["link"]:
                continue
            peer_key = ns.key if l["link_netnsid"] is None else ns.nsids.get(l["link_netnsid"])
            other = self.ns.get(peer_key) if peer_key is not None else None
            if other is None or other is ns or other.req is None:
                continue
            old = other.links.get(l["link"])
            if old is None:
                continue
            try:
                fresh = other.req.get_link(l["link"])
            except OSError:
                continue
            if fresh is None or (fresh["link"], fresh["link_netnsid"]) == (old["link"], old["link_netnsid"]):
                continue
            other.links[fresh["index"]] = fresh
            if fresh["link_netnsid"] is not None:
                other.unresolved.add(fresh["index"])
                self._resolve_nsids(other)
            self.pending_out.append((other.key, False, {fresh["index"]: self._entry(other, fresh["index"])}))

    def _apply(self, ns, t, data, off, end, dirty):
        if t == nl.RTM_NEWLINK:
            l = nl.decode_link(data, off, end)
            i = l["index"]
            old = ns.links.get(i)
            ns.links[i] = l
            if old is None:
                ns.eth_cache.pop(i, None)
                if l["stats"] is not None:
                    now = now_ms()
                    ns.metrics[i] = (l["stats"], now, now)
            if l["link_netnsid"] is not None:
                ns.unresolved.add(i)
            if l["kind"] == "veth" and not l["link"]:
                self.incomplete[(ns.key, i)] = 0
            ns.features[i] = ns.eth.features(l["name"]) if ns.eth else {}
            dirty.add(i)
        elif t == nl.RTM_DELLINK:
            l = nl.decode_link(data, off, end)
            i = l["index"]
            ns.links.pop(i, None)
            ns.addrs.pop(i, None)
            ns.eth_cache.pop(i, None)
            ns.features.pop(i, None)
            ns.metrics.pop(i, None)
            ns.unresolved.discard(i)
            for k in [k for k, n in ns.neighs.items() if n["index"] == i]:
                del ns.neighs[k]
            dirty.add(i)
        elif t in (nl.RTM_NEWADDR, nl.RTM_DELADDR):
            a = nl.decode_addr(data, off, end)
            if a is None:
                return
            m = ns.addrs.setdefault(a["index"], {})
            if t == nl.RTM_NEWADDR:
                m[a["cidr"]] = a["family"]
            else:
                m.pop(a["cidr"], None)
            dirty.add(a["index"])
        elif t in (nl.RTM_NEWROUTE, nl.RTM_DELROUTE):
            r = nl.decode_route(data, off, end)
            if r is None:
                return
            old = ns.routes.pop(r["key"], None)
            if t == nl.RTM_NEWROUTE:
                ns.routes[r["key"]] = r
            for route in (old, r):
                if route is not None:
                    dirty.update(h["ifindex"] for h in route["hops"] if h["ifindex"] in ns.links)
        elif t in (nl.RTM_NEWNEIGH, nl.RTM_DELNEIGH):
            n = nl.decode_neigh(data, off, end)
            if t == nl.RTM_NEWNEIGH:
                ns.neighs[n["key"]] = n
            else:
                ns.neighs.pop(n["key"], None)
            if n["index"] in ns.links:
                dirty.add(n["index"])

    def _update_metrics(self):
        for ns in list(self.ns.values()):
            if ns.req is None:
                continue
            try:
                answers = ns.req.dump(nl.RTM_GETLINK)
            except OSError:
                continue
            now = now_ms()
            entries = {}
            for t, data, off, end in answers:
                if t != nl.RTM_NEWLINK:
                    continue
                l = nl.decode_link(data, off, end)
                i = l["index"]
                if i not in ns.links or l["stats"] is None:
                    continue
                prev = ns.metrics.get(i)
                if prev is None:
                    ns.metrics[i] = (l["stats"], now, now)
                    continue
                counters, start, last = prev
                if counters == l["stats"]:
                    continue
                delta = tuple(max(0, a - b) for a, b in zip(l["stats"], counters))
                ns.metrics[i] = (l["stats"], start, now)
                entries[i] = {"Metric": metric_json(l["stats"], start, now),
                              "LastUpdateMetric": metric_json(delta, last, now)}
            if entries:
                self.pending_out.append((ns.key, None, entries))
