"""`skydive client ...`: the analyzer's REST/WebSocket API from a shell (flags as upstream)."""

import base64
import json
import os
import socket
import sys
import uuid

import yaml

from ..common.jsonutil import pretty
from ..flow import forge
from ..flow.capabilities import CAPTURE_TYPES, EXTRA_LAYERS
from ..common.timeutil import now_ms
from .rest import ClientError, RestSession

__all__ = ["add_parser", "run", "ClientError"]

# resource command -> (REST path, human title)
RESOURCES = {
    "capture": ("capture", "capture"),
    "injection": ("injectpacket", "packet injection"),
    "alert": ("alert", "alert"),
    "node-rule": ("noderule", "node rule"),
    "edge-rule": ("edgerule", "edge rule"),
    "workflow": ("workflow", "workflow"),
    "node": ("node", "node"),
    "edge": ("edge", "edge"),
}


def parse_metadata(text, decode_values=False):
    """'k1=v1, k2.sub=v2' -> nested dict; values JSON-decoded when asked (numbers, booleans...)."""
    md = {}
    if not text:
        return md
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ClientError("invalid metadata %r: expected key=value" % item)
        key, value = (s.strip() for s in item.split("=", 1))
        if not key:
            raise ClientError("invalid metadata %r: empty key" % item)
        if decode_values:
            value = _decode_value(value)
        cur = md
        parts = key.split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
            if not isinstance(cur, dict):
                raise ClientError("invalid metadata: %s is both a value and a map" % part)
        cur[parts[-1]] = value
    return md


def _decode_value(value):
    try:
        return json.loads(value)
    except ValueError:
        return value


def _print(obj):
    if obj is None:
        return
    print(pretty(obj))


def _session(args):
    return RestSession(args.analyzer, args.username, args.password, args.cacert, args.cert, args.key,
                       args.insecure)


# ---- parser ------------------------------------------------------------------------------------

def add_parser(sub):
    c = sub.add_parser("client", help="talk to an analyzer")
    c.add_argument("--analyzer", default=None,
                   help="analyzer address:port (default: env SKYDIVE_ANALYZER, else the first of `analyzers` "
                        "in the -c files, else 127.0.0.1:8082)")
    c.add_argument("--username", default=os.environ.get("SKYDIVE_USERNAME", ""), help="env SKYDIVE_USERNAME")
    c.add_argument("--password", default=os.environ.get("SKYDIVE_PASSWORD", ""), help="env SKYDIVE_PASSWORD")
    c.add_argument("--cacert", default="", help="CA certificate to verify the analyzer")
    c.add_argument("--cert", default="", help="client certificate")
    c.add_argument("--key", default="", help="client key")
    c.add_argument("--insecure", action="store_true", help="do not verify the analyzer's certificate")
    cs = c.add_subparsers(dest="client_command", metavar="subcommand")
    cs.required = True

    cs.add_parser("status", help="analyzer status")

    q = cs.add_parser("query", help="run a Gremlin query")
    q.add_argument("gremlin")
    q.add_argument("--format", choices=("json", "dot", "pcap"), default="json")
    q.add_argument("--output", "-o", help="write the result to this file (pcap needs it on a terminal)")

    t = cs.add_parser("topology", help="query, export or import the topology")
    ts = t.add_subparsers(dest="topology_command", metavar="action")
    ts.required = True
    tq = ts.add_parser("query")
    tq.add_argument("--gremlin", default="G")
    tq.add_argument("--format", choices=("json", "dot"), default="json")
    ts.add_parser("export")
    ti = ts.add_parser("import")
    ti.add_argument("--file", required=True, help="JSON file: [{\"Nodes\": [...], \"Edges\": [...]}]")
    ti.add_argument("--endpoint", default="/ws/publisher")

    for name in RESOURCES:
        r = cs.add_parser(name, aliases=["inject-packet"] if name == "injection" else [],
                          help="%s resources" % RESOURCES[name][1])
        r.set_defaults(resource=name)
        rs = r.add_subparsers(dest="action", metavar="action")
        rs.required = True
        rs.add_parser("list")
        rs.add_parser("get").add_argument("id")
        d = rs.add_parser("delete")
        d.add_argument("ids", nargs="*")
        if name in ("node", "edge"):
            d.add_argument("--gremlin", action="store_true", help="the arguments are Gremlin queries")
            u = rs.add_parser("update")
            u.add_argument("id")
            u.add_argument("--add", "-a", action="append", default=[], metavar="K=V")
            u.add_argument("--remove", "-r", action="append", default=[], metavar="K")
        if name == "workflow":
            call = rs.add_parser("call")
            call.add_argument("id")
            call.add_argument("params", nargs="*")
        _add_create(rs, name)

    p = cs.add_parser("pcap", help="inject a pcap file into flow storage")
    p.add_argument("--trace", "-t", required=True)

    return c


def _add_create(rs, name):
    c = rs.add_parser("create")
    if name == "capture":
        c.add_argument("--gremlin", default="")
        c.add_argument("--node", default="", help="TID of the node to capture on")
        c.add_argument("--bpf", default="")
        c.add_argument("--name", default="")
        c.add_argument("--description", default="")
        c.add_argument("--type", default="", help="capture type: %s (default: the node's)" % ", ".join(CAPTURE_TYPES))
        c.add_argument("--port", type=int, default=0, help="listen port of pcapsocket, sflow, ovssflow")
        c.add_argument("--samplingrate", type=int, default=1, help="ovssflow only")
        c.add_argument("--pollinginterval", type=int, default=10, help="ovssflow only")
        c.add_argument("--header-size", type=int, default=0)
        c.add_argument("--rawpacket-limit", type=int, default=0)
        c.add_argument("--extra-tcp-metric", action="store_true")
        not_yet = "not implemented: the analyzer refuses it"
        c.add_argument("--ip-defrag", action="store_true", help=not_yet)
        c.add_argument("--reassamble-tcp", "--reassemble-tcp", dest="reassemble_tcp", action="store_true", help=not_yet)
        c.add_argument("--layer-key-mode", default="L2")
        c.add_argument("--extra-layer", action="append", default=[], choices=tuple(EXTRA_LAYERS), help=not_yet)
        c.add_argument("--target", default="", help=not_yet)
        c.add_argument("--target-type", default="", help=not_yet)
        c.add_argument("--ttl", type=int, default=0, help="lifetime in ms")
    elif name == "injection":
        c.add_argument("--src", required=True, help="Gremlin query of the source node")
        c.add_argument("--dst", default="")
        c.add_argument("--src-ip", default="")
        c.add_argument("--dst-ip", default="")
        c.add_argument("--src-mac", default="")
        c.add_argument("--dst-mac", default="")
        c.add_argument("--src-port", type=int, default=0)
        c.add_argument("--dst-port", type=int, default=0)
        c.add_argument("--type", default="icmp4", help=", ".join(forge.TYPES))
        c.add_argument("--payload", default="")
        c.add_argument("--pcap", default="")
        c.add_argument("--id", type=int, default=0, help="ICMP id")
        c.add_argument("--mode", default="unique", choices=("unique", "random"))
        c.add_argument("--inc-payload", type=int, default=0)
        c.add_argument("--count", type=int, default=1)
        c.add_argument("--interval", type=int, default=0, help="ms between packets")
        c.add_argument("--ttl", type=int, default=64)
    elif name == "alert":
        c.add_argument("--name", default="")
        c.add_argument("--description", default="")
        c.add_argument("--expression", required=True)
        c.add_argument("--trigger", default="graph")
        c.add_argument("--action", default="")
    elif name == "node-rule":
        c.add_argument("--action", default="create", choices=("create", "update"))
        c.add_argument("--node-name", default="")
        c.add_argument("--node-type", default="")
        c.add_argument("--metadata", default="")
        c.add_argument("--query", default="")
        c.add_argument("--name", default="")
        c.add_argument("--description", default="")
    elif name == "edge-rule":
        c.add_argument("--src", required=True)
        c.add_argument("--dst", required=True)
        c.add_argument("--relationtype", required=True)
        c.add_argument("--metadata", default="")
        c.add_argument("--name", default="")
        c.add_argument("--description", default="")
    elif name == "workflow":
        c.add_argument("--path", required=True, help="YAML file of the workflow")
    elif name == "node":
        c.add_argument("--node-name", required=True)
        c.add_argument("--node-type", required=True)
        c.add_argument("--metadata", default="")
        c.add_argument("--host", default="")
    elif name == "edge":
        c.add_argument("--parent", required=True)
        c.add_argument("--child", required=True)
        c.add_argument("--edge-type", required=True, help="RelationType")
        c.add_argument("--metadata", default="")
        c.add_argument("--host", default="")


# ---- commands ----------------------------------------------------------------------------------

def _create_body(args):
    name = args.resource
    if name == "capture":
        gremlin = args.gremlin
        if args.node:
            gremlin = "G.V().Has('TID', '%s')" % args.node
        if not gremlin:
            raise ClientError("capture create needs --gremlin or --node")
        body = {"GremlinQuery": gremlin, "BPFFilter": args.bpf, "Name": args.name,
                "Description": args.description, "Type": args.type, "Port": args.port,
                "SamplingRate": args.samplingrate, "PollingInterval": args.pollinginterval,
                "HeaderSize": args.header_size, "RawPacketLimit": args.rawpacket_limit,
                "ExtraTCPMetric": args.extra_tcp_metric, "IPDefrag": args.ip_defrag,
                "ReassembleTCP": args.reassemble_tcp, "LayerKeyMode": args.layer_key_mode,
                "ExtraLayers": sum(EXTRA_LAYERS[x] for x in set(args.extra_layer)),
                "Target": args.target, "TargetType": args.target_type}
        headers = {"X-Resource-TTL": "%dms" % args.ttl} if args.ttl else {}
        return body, headers
    if name == "injection":
        pcap = None
        if args.pcap:
            try:
                with open(args.pcap, "rb") as fh:
                    pcap = base64.b64encode(fh.read()).decode()
            except OSError as exc:
                raise ClientError("cannot read pcap file %s: %s" % (args.pcap, exc.strerror)) from None
        body = {"Src": args.src, "Dst": args.dst, "SrcIP": args.src_ip, "DstIP": args.dst_ip,
                "SrcMAC": args.src_mac, "DstMAC": args.dst_mac, "SrcPort": args.src_port,
                "DstPort": args.dst_port, "Type": args.type, "Payload": args.payload, "Pcap": pcap,
                "ICMPID": args.id, "Mode": args.mode, "IncrementPayload": args.inc_payload,
                "Count": args.count, "Interval": args.interval, "TTL": args.ttl}
        ttl = args.count * args.interval + 5000 if args.interval else 5000
        return body, {"X-Resource-TTL": "%dms" % ttl}
    if name == "alert":
        return {"Name": args.name, "Description": args.description, "Expression": args.expression,
                "Trigger": args.trigger, "Action": args.action}, {}
    if name == "node-rule":
        md = parse_metadata(args.metadata)
        if args.node_name:
            md["Name"] = args.node_name
        if args.node_type:
            md["Type"] = args.node_type
        return {"Name": args.name, "Description": args.description, "Action": args.action,
                "Metadata": md, "Query": args.query}, {}
    if name == "edge-rule":
        md = parse_metadata(args.metadata)
        md["RelationType"] = args.relationtype
        return {"Name": args.name, "Description": args.description, "Src": args.src, "Dst": args.dst,
                "Metadata": md}, {}
    if name == "workflow":
        try:
            with open(args.path) as fh:
                wf = yaml.safe_load(fh)
        except OSError as exc:
            raise ClientError("cannot read workflow file %s: %s" % (args.path, exc.strerror)) from None
        except yaml.YAMLError as exc:
            raise ClientError("workflow file %s is not valid YAML: %s" % (args.path, exc)) from None
        if not isinstance(wf, dict):
            raise ClientError("workflow file %s must hold a map" % args.path)
        return wf, {}
    host = args.host or socket.gethostname()
    t = now_ms()
    md = parse_metadata(args.metadata)
    base = {"ID": str(uuid.uuid4()), "Host": host, "Origin": "cli." + host, "CreatedAt": t,
            "UpdatedAt": t, "Revision": 1}
    if name == "node":
        md["Name"] = args.node_name
        md["Type"] = args.node_type
        base["Metadata"] = md
        return base, {}
    md["RelationType"] = args.edge_type
    base.update({"Parent": args.parent, "Child": args.child, "Metadata": md})
    return base, {}


def _patch_ops(args):
    ops = []
    for item in args.add:
        if "=" not in item:
            raise ClientError("--add expects key=value, got %r" % item)
        k, v = item.split("=", 1)
        ops.append({"op": "add", "path": "/Metadata/" + k.strip().replace(".", "/"), "value": _decode_value(v)})
    for k in args.remove:
        ops.append({"op": "remove", "path": "/Metadata/" + k.strip().replace(".", "/")})
    if not ops:
        raise ClientError("update needs at least one --add or --remove")
    return ops


def _resource(args, rest):
    path = "/api/" + RESOURCES[args.resource][0]
    if args.action == "list":
        _print(rest.json("GET", path))
    elif args.action == "get":
        _print(rest.json("GET", "%s/%s" % (path, args.id)))
    elif args.action == "create":
        body, headers = _create_body(args)
        _print(rest.json("POST", path, body, headers))
    elif args.action == "update":
        resp = rest.request("PATCH", "%s/%s" % (path, args.id), body=_patch_ops(args))
        if resp.status_code == 304:
            print("Not modified")
        else:
            _print(resp.json())
    elif args.action == "delete":
        ids = list(args.ids)
        if getattr(args, "gremlin", False):
            queries, ids = ids, []
            for q in queries:
                found = rest.json("POST", "/api/topology", {"GremlinQuery": q}) or []
                if not isinstance(found, list):
                    raise ClientError("query %r did not return %ss" % (q, args.resource))
                ids.extend(e["ID"] for e in found if isinstance(e, dict) and "ID" in e)
        if not ids:
            raise ClientError("delete needs at least one id")
        for i in ids:
            rest.request("DELETE", "%s/%s" % (path, i), expect=(200,))
    elif args.action == "call":
        params = [_decode_value(p) for p in args.params]
        _print(rest.json("POST", "%s/%s/call" % (path, args.id), {"Params": params}))


def _query(rest, gremlin, fmt, output=None):
    accept = {"json": "application/json", "dot": "text/vnd.graphviz",
              "pcap": "application/vnd.tcpdump.pcap"}[fmt]
    resp = rest.request("POST", "/api/topology", body={"GremlinQuery": gremlin}, headers={"Accept": accept})
    if resp.status_code == 204:
        return
    if fmt == "json":
        try:
            data = resp.json()
        except ValueError:
            raise ClientError("the analyzer answered something that is not JSON") from None
        text = pretty(data) + "\n"
        if output:
            with open(output, "w") as fh:
                fh.write(text)
        else:
            sys.stdout.write(text)
        return
    if output:
        with open(output, "wb") as fh:
            fh.write(resp.content)
    elif fmt == "pcap" and sys.stdout.isatty():
        raise ClientError("refusing to write pcap data to a terminal: use --output FILE or a pipe")
    else:
        sys.stdout.buffer.write(resp.content)


def _import(args, rest):
    try:
        with open(args.file) as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ClientError("cannot read %s: %s" % (args.file, exc.strerror)) from None
    except ValueError as exc:
        raise ClientError("%s is not JSON: %s" % (args.file, exc)) from None
    if isinstance(data, list):
        if len(data) != 1:
            raise ClientError("%s must hold one graph object" % args.file)
        data = data[0]
    if not isinstance(data, dict):
        raise ClientError("%s must hold {\"Nodes\": [...], \"Edges\": [...]}" % args.file)
    from .wspublish import publish
    msgs = [("NodeAdded", n) for n in data.get("Nodes") or []] + [("EdgeAdded", e) for e in data.get("Edges") or []]
    publish(rest, args.endpoint, msgs)


def run(args, config=None):
    """config: the -c files given before `client` (upstream's client reads `analyzers` from them)."""
    if not args.analyzer:
        configured = config.get_list("analyzers") if config is not None else []
        args.analyzer = os.environ.get("SKYDIVE_ANALYZER") or (str(configured[0]) if configured else "127.0.0.1:8082")
    rest = _session(args)
    cmd = args.client_command
    if cmd == "status":
        _print(rest.json("GET", "/api/status"))
    elif cmd == "query":
        _query(rest, args.gremlin, args.format, args.output)
    elif cmd == "topology":
        if args.topology_command == "query":
            _query(rest, args.gremlin, args.format)
        elif args.topology_command == "export":
            _query(rest, "G", "json")
        else:
            _import(args, rest)
    elif cmd == "pcap":
        try:
            with open(args.trace, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise ClientError("cannot read %s: %s" % (args.trace, exc.strerror)) from None
        rest.request("POST", "/api/pcap", raw=raw, headers={"Content-Type": "application/octet-stream"},
                     expect=(202,))
        print("pcap accepted")
    else:
        _resource(args, rest)
    return 0
