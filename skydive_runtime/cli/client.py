"""`skydive client ...`: the analyzer's REST/WebSocket API from a shell (flags as upstream)."""

import json
import os
import sys

from ..analyzer.kinds import KINDS
from ..api.cliflags import CLIError, build_body, decode_value, parse_metadata
from ..common.jsonutil import pretty
from . import audit
from .diff_table import diff_table
from .mesh_table import mesh_table
from .rest import ClientError, RestSession

__all__ = ["add_parser", "run", "ClientError", "parse_metadata"]

# subcommand -> resource kind (analyzer/kinds.py: their flags and create bodies)
RESOURCES = {kind.command or kind.name: kind for kind in (cls() for cls in KINDS)}


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
    td = ts.add_parser("diff", help="what changed between two times (nodes and edges added, removed, changed)")
    td.add_argument("--from", dest="from_time", required=True, metavar="T1",
                    help="start: RFC3339, RFC1123, seconds/ms since the epoch, or a duration from now (-10m)")
    td.add_argument("--to", dest="to_time", default=None, metavar="T2", help="end (default: now, the live graph)")
    td.add_argument("--gremlin", default=None, help="compare only what this query returns (graph, nodes or edges)")
    td.add_argument("--ignore", action="append", default=None, metavar="KEY",
                    help="metadata key not compared (repeatable; default: the metric counters)")
    td.add_argument("--format", choices=("table", "json"), default="table")

    for name, kind in RESOURCES.items():
        r = cs.add_parser(name, aliases=list(kind.aliases), help="%s resources" % (kind.noun or kind.name))
        r.set_defaults(resource=name)
        rs = r.add_subparsers(dest="action", metavar="action")
        rs.required = True
        rs.add_parser("list")
        rs.add_parser("get").add_argument("id")
        d = rs.add_parser("delete")
        d.add_argument("ids", nargs="*")
        if kind.backend == "graph":
            d.add_argument("--gremlin", action="store_true", help="the arguments are Gremlin queries")
        if kind.updatable:
            u = rs.add_parser("update")
            u.add_argument("id")
            u.add_argument("--add", "-a", action="append", default=[], metavar="K=V")
            u.add_argument("--remove", "-r", action="append", default=[], metavar="K")
        if kind.cli_call:
            call = rs.add_parser("call")
            call.add_argument("id")
            call.add_argument("params", nargs="*")
        create = rs.add_parser("create")
        for flag in kind.flags:
            flag.add_to(create)
        if kind.name == "injectpacket":
            pm = rs.add_parser("ping-mesh", help="ICMP between every source and destination node: the RTT matrix")
            pm.add_argument("--src", required=True, help="Gremlin query of the source nodes")
            pm.add_argument("--dst", required=True, help="Gremlin query of the destination nodes")
            pm.add_argument("--type", default="icmp4", choices=("icmp4", "icmp6"))
            pm.add_argument("--count", type=int, default=3, help="echo requests per pair (1-100)")
            pm.add_argument("--interval", type=int, default=200, help="ms between two requests (10-10000)")
            pm.add_argument("--format", choices=("table", "json"), default="table")

    audit.add_parser(cs)

    p = cs.add_parser("pcap", help="inject a pcap file into flow storage")
    p.add_argument("--trace", "-t", required=True)

    return c


def _create_body(args):
    try:
        return build_body(RESOURCES[args.resource], args)
    except CLIError as exc:
        raise ClientError(str(exc)) from None


def _patch_ops(args):
    ops = []
    for item in args.add:
        if "=" not in item:
            raise ClientError("--add expects key=value, got %r" % item)
        k, v = item.split("=", 1)
        ops.append({"op": "add", "path": "/Metadata/" + k.strip().replace(".", "/"), "value": decode_value(v)})
    for k in args.remove:
        ops.append({"op": "remove", "path": "/Metadata/" + k.strip().replace(".", "/")})
    if not ops:
        raise ClientError("update needs at least one --add or --remove")
    return ops


def _resource(args, rest):
    path = "/api/" + RESOURCES[args.resource].name
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
    elif args.action == "ping-mesh":
        rest.timeout = max(rest.timeout, 300.0)     # the analyzer waits for the flows
        mesh = rest.json("POST", "/api/pingmesh", {"Src": args.src, "Dst": args.dst, "Type": args.type,
                                                   "Count": args.count, "Interval": args.interval})
        if args.format == "json":
            _print(mesh)
        else:
            sys.stdout.write(mesh_table(mesh))
    elif args.action == "call":
        params = [decode_value(p) for p in args.params]
        rest.timeout = max(rest.timeout, 300.0)     # workflows wait for captures and flows
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


def _diff(args, rest):
    body = {"From": args.from_time, "To": args.to_time, "GremlinFilter": args.gremlin}
    if args.ignore is not None:
        body["Ignore"] = args.ignore
    diff = rest.json("POST", "/api/topology/diff", body)
    sys.stdout.write(pretty(diff) + "\n" if args.format == "json" else diff_table(diff))


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
        elif args.topology_command == "diff":
            _diff(args, rest)
        elif args.topology_command == "export":
            _query(rest, "G", "json")
        else:
            _import(args, rest)
    elif cmd == "audit":
        return audit.run(args, rest)
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
