"""FlowMatrix (upstream statics/workflows/flow-matrix.yaml), natively: the client/server pairs of
the sockets the host nodes list in their `Sockets` metadata (socketinfo), as a graph or as DOT.

    flow_matrix(hosts, interfaces, "graph" | "dot")   # hosts, interfaces: node JSON
"""

import uuid


def _listening(s):
    return s.get("State") == "LISTEN" or (
        s.get("Protocol") == "UDP" and s.get("State") == "CLOSE" and s.get("RemoteAddress") in ("0.0.0.0", "::"))


def _loopback(addr):
    return addr.startswith("127.") or addr.startswith("::1/")


class _Caches:
    def __init__(self, hosts, interfaces):
        self.hosts = {}
        self.listen_ports = set()
        self.peers = {}             # local port -> [(host, socket)] of the non-listening sockets
        self.addresses = {}         # IP -> host node
        for h in hosts:
            self.hosts[h.get("Host")] = h
            for s in (h.get("Metadata") or {}).get("Sockets") or ():
                if _listening(s):
                    self.listen_ports.add(s.get("LocalPort"))
                else:
                    self.peers.setdefault(s.get("LocalPort"), []).append((h.get("Host"), s))
        for intf in interfaces:
            for ip in (intf.get("Metadata") or {}).get("IPV4") or ():
                if intf.get("Host") in self.hosts:
                    self.addresses[str(ip).split("/", maxsplit=1)[0]] = self.hosts[intf.get("Host")]

    def peer(self, s, from_host):
        port, addr, proto = s.get("RemotePort"), s.get("RemoteAddress", ""), s.get("Protocol")
        if port not in self.peers:
            return None
        for entries in self.peers.values():
            for host, p in entries:
                if p.get("Protocol") == proto and p.get("LocalAddress") == addr and p.get("LocalPort") == port:
                    if not _loopback(addr) or host == from_host:
                        return host, p
        if proto == "UDP":
            node = self.addresses.get(addr)
            if node is not None:
                for p in (node.get("Metadata") or {}).get("Sockets") or ():
                    if p.get("Protocol") == "UDP" and _listening(p) and p.get("LocalPort") == port:
                        return node.get("Host"), s
        return None


def _entries(caches):
    matrix = {}
    for host in caches.hosts.values():
        for s in (host.get("Metadata") or {}).get("Sockets") or ():
            if not (s.get("RemotePort") in caches.listen_ports and s.get("State") == "ESTABLISHED"):
                continue
            found = caches.peer(s, host.get("Host"))
            if found is None:
                continue
            peer_host, peer = found
            e = {"protocol": s.get("Protocol"), "serviceHost": peer_host, "serviceAddress": s.get("RemoteAddress"),
                 "servicePort": s.get("RemotePort"), "serviceProcess": peer.get("Process"),
                 "serviceName": peer.get("Name"), "clientHost": host.get("Host"),
                 "clientAddress": s.get("LocalAddress"), "clientProcess": s.get("Process"), "clientName": s.get("Name")}
            matrix[",".join(str(e[k]) for k in sorted(e))] = e
    return list(matrix.values())


def _uuid5(text):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


def _dot(entries):
    endpoints = {}
    for e in entries:
        endpoints.setdefault(e["serviceHost"], set()).add(e["serviceName"])
        endpoints.setdefault(e["clientHost"], set()).add(e["clientName"])
    out = ["digraph g {"]
    for host, names in endpoints.items():
        out.append("subgraph cluster_%s {" % host)
        out.append('label = "%s"' % host)
        out.extend('"%s%s" [label=%s,shape=box]' % (host, n, n) for n in sorted(map(str, names)))
        out.append("}")
    for e in entries:
        out.append('"%s%s" -> "%s%s" [label="%s:%s:%s"]' % (
            e["clientHost"], e["clientName"], e["serviceHost"], e["serviceName"], e["protocol"], e["serviceAddress"],
            e["servicePort"]))
    return "\n".join(out) + "\n}\n"


def _graph(entries, hosts):
    nodes, edges = {}, {}

    def own(host, child_id):
        parent = hosts[host]["ID"]
        eid = _uuid5(parent + child_id)
        edges[eid] = {"ID": eid, "Host": host, "Metadata": {"RelationType": "ownership"}, "Parent": parent,
                      "Child": child_id}
    for e in entries:
        sid = _uuid5("%s%s%s" % (e["serviceHost"], e["serviceProcess"], "service"))
        ports = nodes[sid]["Metadata"]["Ports"] if sid in nodes else []
        if e["servicePort"] not in ports:
            ports.append(e["servicePort"])
        nodes[sid] = {"ID": sid, "Host": e["serviceHost"], "Metadata": {
            "Name": e["serviceName"], "Type": "process", "ServiceType": "server", "Process": e["serviceProcess"],
            "Ports": ports}}
        own(e["serviceHost"], sid)
        cid = _uuid5("%s%s%s" % (e["clientHost"], e["clientProcess"], "client"))
        nodes[cid] = {"ID": cid, "Host": e["clientHost"], "Metadata": {
            "Name": e["clientName"], "Type": "process", "ServiceType": "client", "Process": e["clientProcess"]}}
        own(e["clientHost"], cid)
        eid = _uuid5("%s%s%s" % (cid, sid, e["servicePort"]))
        edges[eid] = {"ID": eid, "Host": e["serviceHost"], "Parent": cid, "Child": sid,
                      "Metadata": {"RelationType": "connection", "Port": e["servicePort"]}}
    return {"nodes": nodes, "edges": edges}


def flow_matrix(hosts, interfaces, fmt):
    caches = _Caches(hosts or [], interfaces or [])
    entries = _entries(caches)
    return _dot(entries) if fmt == "dot" else _graph(entries, caches.hosts)
