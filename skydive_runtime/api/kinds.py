"""The API resources kept in the store: capture, alert, injectpacket, noderule, edgerule, workflow.

Each kind decodes a request body into the canonical JSON upstream emits (field names, omitempty
rules, server defaults), then validates it (spec §1.4 struct validators, §1.7, §5.6, §6, §7).
"""

import base64
import binascii
import ipaddress
import logging
import re

from ..common.timeutil import rfc3339_now
from ..flow import capabilities, forge
from ..flow.capabilities import EXTRA_LAYERS
from ..graph import Node, SchemaError
from ..graph.schema import validate_node
from .cliflags import CLIError, Flag, parse_metadata, read_base64, read_yaml_map
from .query import QueryError
from .resources import ResourceError, ResourceKind

log = logging.getLogger(__name__)

MAX_RAW_PACKET_LIMIT = 10
INJECTION_TYPES = forge.TYPES
_ADDR_RE = re.compile(r"^([^\s:]*|\[[0-9a-fA-F:.]+\]):?(\d{1,5})$")
_MAC_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


# ---- field helpers ----------------------------------------------------------------------------

def _str(d, key, default=""):
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise ResourceError("%s: expected a string, got %s" % (key, _tname(v)))
    return v


def _tname(v):
    return {dict: "an object", list: "an array", bool: "a boolean", int: "a number",
            float: "a number", str: "a string"}.get(type(v), type(v).__name__)


def _int(d, key, lo, hi, default=0):
    v = d.get(key, default)
    if v is None:
        return default
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ResourceError("%s: expected an integer, got %s" % (key, _tname(v)))
    if not lo <= v <= hi:
        raise ResourceError("%s: %d out of range [%d, %d]" % (key, v, lo, hi))
    return v


def _bool(d, key):
    v = d.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ResourceError("%s: expected a boolean, got %s" % (key, _tname(v)))
    return v


def _map(d, key):
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ResourceError("%s: expected an object, got %s" % (key, _tname(v)))
    return v


def _body(data, title):
    if not isinstance(data, dict):
        raise ResourceError("%s must be a JSON object" % title)
    return data


def _omit_empty(obj, keys):
    for k in keys:
        if k in obj and obj[k] in ("", 0, None):
            del obj[k]
    return obj


U16, U32, U64, I64 = 2 ** 16 - 1, 2 ** 32 - 1, 2 ** 64 - 1, 2 ** 63 - 1


class _GremlinKind(ResourceKind):
    def gremlin(self, key, value, allow_empty=False):
        if value == "" and allow_empty:
            return
        if value == "":
            raise ResourceError("%s: a Gremlin query is required" % key)
        try:
            self.engine.validate(value)
        except QueryError as exc:
            raise ResourceError("%s: invalid Gremlin expression: %s" % (key, exc)) from None


# ---- capture -----------------------------------------------------------------------------------

def bpf_compiler():
    """skydive_runtime.flow.bpf (libpcap via ctypes) when available."""
    try:
        from ..flow import bpf
    except ImportError:
        return None
    return bpf


def _mask(layers):
    return sum(EXTRA_LAYERS[x] for x in set(layers))


class CaptureKind(_GremlinKind):
    name = "capture"
    title = "Capture"
    flags = (
        Flag("--gremlin", field="GremlinQuery", default="", help="Gremlin query of the nodes to capture on"),
        Flag("--node", default="", help="TID of the node to capture on"),
        Flag("--bpf", field="BPFFilter", default=""), Flag("--name", field="Name", default=""),
        Flag("--description", field="Description", default=""),
        Flag("--type", field="Type", default="",
             help="capture type: %s (default: the node's)" % ", ".join(capabilities.CAPTURE_TYPES)),
        Flag("--port", field="Port", type=int, default=0, help="listen port of pcapsocket, sflow, ovssflow, ovsnetflow"),
        Flag("--samplingrate", field="SamplingRate", type=int, default=1, help="ovssflow only"),
        Flag("--pollinginterval", field="PollingInterval", type=int, default=10, help="ovssflow only"),
        Flag("--header-size", field="HeaderSize", type=int, default=0),
        Flag("--rawpacket-limit", field="RawPacketLimit", type=int, default=0),
        Flag("--extra-tcp-metric", field="ExtraTCPMetric", action="store_true"),
        Flag("--ip-defrag", field="IPDefrag", action="store_true",
             help="account IPv4 fragments to their datagram's flow (not with ebpf)"),
        Flag("--reassamble-tcp", "--reassemble-tcp", field="ReassembleTCP", dest="reassemble_tcp",
             action="store_true", help="not implemented (no extra layer needs it): the analyzer refuses it"),
        Flag("--layer-key-mode", field="LayerKeyMode", default="L2"),
        Flag("--extra-layer", field="ExtraLayers", to=_mask, action="append", default=[],
             choices=tuple(EXTRA_LAYERS), help="decode this layer into the flows (not with ebpf)"),
        Flag("--target", field="Target", default="", help="ip:port of a NetFlow v5 collector the flows are also exported to"),
        Flag("--target-type", field="TargetType", default="", help="netflowv5 (the default with --target) or erspanv1 (packets to the --target ip over GRE)"),
        Flag("--ttl", type=int, default=0, help="lifetime in ms"))

    def cli_body(self, body, args):
        if args.node:
            body["GremlinQuery"] = "G.V().Has('TID', '%s')" % args.node
        if not body["GremlinQuery"]:
            raise CLIError("capture create needs --gremlin or --node")
        return body, {"X-Resource-TTL": "%dms" % args.ttl} if args.ttl else {}

    def decode(self, data):
        d = _body(data, self.title)
        extra = d.get("ExtraLayers", 0)
        if isinstance(extra, list):
            mask = 0
            for name in extra:
                if not isinstance(name, str) or name not in EXTRA_LAYERS:
                    raise ResourceError("ExtraLayers: unknown layer %r (VRRP, DNS, DHCPv4)" % (name,))
                mask |= EXTRA_LAYERS[name]
            extra = mask
        else:
            extra = _int(d, "ExtraLayers", 0, 7)
        obj = {
            "UUID": "", "GremlinQuery": _str(d, "GremlinQuery"), "BPFFilter": _str(d, "BPFFilter"),
            "Name": _str(d, "Name"), "Description": _str(d, "Description"), "Type": _str(d, "Type"),
            "Count": 0, "Port": _int(d, "Port", 0, 65535),
            "SamplingRate": _int(d, "SamplingRate", 0, U32), "PollingInterval": _int(d, "PollingInterval", 0, U32),
            "RawPacketLimit": _int(d, "RawPacketLimit", -(2 ** 31), I64),
            "HeaderSize": _int(d, "HeaderSize", -(2 ** 31), I64),
            "ExtraTCPMetric": _bool(d, "ExtraTCPMetric"), "IPDefrag": _bool(d, "IPDefrag"),
            "ReassembleTCP": _bool(d, "ReassembleTCP"), "LayerKeyMode": _str(d, "LayerKeyMode"),
            "ExtraLayers": extra, "Target": _str(d, "Target"), "TargetType": _str(d, "TargetType"),
        }
        if not obj["LayerKeyMode"]:
            obj["LayerKeyMode"] = "L2"
        return obj

    def validate(self, obj):
        self.gremlin("GremlinQuery", obj["GremlinQuery"])
        if not (0 <= obj["RawPacketLimit"] <= MAX_RAW_PACKET_LIMIT):
            raise ResourceError("RawPacketLimit: must be between 0 and %d" % MAX_RAW_PACKET_LIMIT)
        hs = obj["HeaderSize"]
        if hs != 0 and not 14 <= hs <= 4096:
            raise ResourceError("HeaderSize: must be 0 or between 14 and 4096")
        if obj["LayerKeyMode"] not in ("L2", "L3"):
            raise ResourceError("LayerKeyMode: must be L2 or L3")
        if obj["Target"] and not _ADDR_RE.match(obj["Target"]):
            raise ResourceError("Target: %r is not an address (addr:port)" % obj["Target"])
        if obj["TargetType"] not in ("", "netflowv5", "erspanv1"):
            raise ResourceError("TargetType: must be netflowv5 or erspanv1")
        try:        # the type exists and honours every option asked for
            capabilities.check_capture(obj)
        except ValueError as exc:
            raise ResourceError(str(exc)) from None
        if obj["BPFFilter"]:
            self.check_bpf(obj["BPFFilter"])

    @staticmethod
    def check_bpf(expr):
        """isBPFFilter: compiles with libpcap for Ethernet (skydive_runtime.flow.bpf)."""
        if "\x00" in expr:
            raise ResourceError("BPFFilter: invalid BPF filter: contains a NUL byte")
        bpf = bpf_compiler()
        if bpf is None:
            return
        try:
            bpf.libpcap()
        except bpf.BPFError as exc:     # no libpcap on this host: cannot judge the filter
            log.warning("cannot validate BPF filter %r: %s", expr, exc)
            return
        try:
            bpf.compile_filter(expr)
        except bpf.BPFError as exc:
            raise ResourceError("BPFFilter: invalid BPF filter %r: %s" % (expr, exc)) from None

    def is_duplicate(self, obj, existing):
        ctype = capabilities.capture_type(obj["Type"] or "afpacket")
        multi = ctype is None or ctype.multiple_per_node
        for o in existing:
            if o.get("GremlinQuery") == obj["GremlinQuery"] and (o.get("Type") or "") == obj["Type"]:
                if not multi or (o.get("BPFFilter") or "") == obj["BPFFilter"]:
                    return True
        return False

    def finalize(self, obj):
        return _omit_empty(obj, ("BPFFilter", "Name", "Description", "Type", "Port", "RawPacketLimit",
                                 "HeaderSize", "ExtraLayers", "Target", "TargetType"))

    def decorate(self, obj):
        out = dict(obj)
        out["Count"] = self.count(obj)
        return out

    def count(self, c):
        """Nodes of the capture's query whose Captures list holds it in state active."""
        try:
            nodes = self.engine.nodes(c["GremlinQuery"])
        except QueryError:
            return 0
        n = 0
        for node in nodes:
            caps = node.Metadata.get("Captures")
            if isinstance(caps, list):
                for cap in caps:
                    if isinstance(cap, dict) and cap.get("ID") == c["UUID"] and cap.get("State") == "active":
                        n += 1
        return n


# ---- alert ---------------------------------------------------------------------------------------

_TRIGGER_RE = re.compile(r"^(graph|duration:.+|)$")


_ACTION_RE = re.compile(r"^(|https?://.+|file:///.*)$", re.IGNORECASE)


class AlertKind(_GremlinKind):
    """Upstream falls back to JavaScript (otto) when Expression is not Gremlin: we have no JS
    runtime, so such alerts are refused at creation instead of never firing."""
    name = "alert"
    title = "Alert"
    action_check = None     # callable(action) raising ValueError: the analyzer's action policy
    flags = (Flag("--name", field="Name", default=""), Flag("--description", field="Description", default=""),
             Flag("--expression", field="Expression", required=True, help="Gremlin query"),
             Flag("--trigger", field="Trigger", default="graph", help="graph or duration:<Go duration>"),
             Flag("--action", field="Action", default="", help="http(s):// URL or file:///path/to/script"))

    def decode(self, data):
        d = _body(data, self.title)
        obj = {"UUID": "", "Name": _str(d, "Name"), "Description": _str(d, "Description"),
               "Expression": _str(d, "Expression"), "Action": _str(d, "Action"),
               "Trigger": _str(d, "Trigger"), "CreateTime": rfc3339_now()}
        return obj

    def validate(self, obj):
        if not obj["Expression"].strip():
            raise ResourceError("Expression: non zero value required")
        try:
            self.engine.validate(obj["Expression"])
        except QueryError as exc:
            raise ResourceError("Expression must be a Gremlin query; JavaScript alerts are not supported "
                                "(%s)" % exc) from None
        if not _ACTION_RE.match(obj["Action"].strip()):
            raise ResourceError("Action: %r must be empty, an http(s):// URL or file:///path/to/script"
                                % obj["Action"])
        if self.action_check is not None:
            try:
                self.action_check(obj["Action"])
            except ValueError as exc:
                raise ResourceError("Action: %s" % exc) from None
        if not _TRIGGER_RE.match(obj["Trigger"]):
            raise ResourceError("Trigger: %r does not match ^(graph|duration:.+|)$" % obj["Trigger"])
        if obj["Trigger"].startswith("duration:"):
            from ..common.timeutil import parse_duration_ms
            try:
                if parse_duration_ms(obj["Trigger"][9:]) <= 0:
                    raise ValueError("must be positive")
            except ValueError as exc:
                raise ResourceError("Trigger: invalid duration: %s" % exc) from None

    def finalize(self, obj):
        return _omit_empty(obj, ("Name", "Description", "Action", "Trigger"))


# ---- packet injection --------------------------------------------------------------------------------

def _ip_or_cidr(v):
    try:
        if "/" in v:
            ipaddress.ip_network(v, strict=False)
        else:
            ipaddress.ip_address(v)
        return True
    except ValueError:
        return False


def _addr_of(cidr):
    return cidr.split("/", 1)[0]


class InjectPacketKind(_GremlinKind):
    name = "injectpacket"
    title = "Injection"
    command = "injection"
    aliases = ("inject-packet",)
    noun = "packet injection"
    flags = (
        Flag("--src", field="Src", required=True, help="Gremlin query of the source node"),
        Flag("--dst", field="Dst", default=""), Flag("--src-ip", field="SrcIP", default=""),
        Flag("--dst-ip", field="DstIP", default=""), Flag("--src-mac", field="SrcMAC", default=""),
        Flag("--dst-mac", field="DstMAC", default=""), Flag("--src-port", field="SrcPort", type=int, default=0),
        Flag("--dst-port", field="DstPort", type=int, default=0), Flag("--type", field="Type", default="icmp4", help=", ".join(forge.TYPES)),
        Flag("--payload", field="Payload", default=""),
        Flag("--pcap", field="Pcap", to=read_base64, default="", help="pcap file of the packets to send"),
        Flag("--id", field="ICMPID", type=int, default=0, help="ICMP id"),
        Flag("--mode", field="Mode", default="unique", choices=("unique", "random")),
        Flag("--inc-payload", field="IncrementPayload", type=int, default=0),
        Flag("--count", field="Count", type=int, default=1),
        Flag("--interval", field="Interval", type=int, default=0, help="ms between packets"),
        Flag("--ttl", field="TTL", type=int, default=64))

    def cli_body(self, body, args):
        """The Go CLI's X-Resource-TTL: Count x Interval ms + 5 s, or 5 s when Interval is 0."""
        ttl = args.count * args.interval + 5000 if args.interval else 5000
        return body, {"X-Resource-TTL": "%dms" % ttl}

    def decode(self, data):
        d = _body(data, self.title)
        pcap = d.get("Pcap")
        if pcap is not None:
            if not isinstance(pcap, str):
                raise ResourceError("Pcap: expected base64 text")
            try:
                base64.b64decode(pcap, validate=True)
            except (binascii.Error, ValueError):
                raise ResourceError("Pcap: invalid base64") from None
            pcap = pcap or None
        return {
            "UUID": "", "Src": _str(d, "Src"), "Dst": _str(d, "Dst"), "SrcIP": _str(d, "SrcIP"),
            "DstIP": _str(d, "DstIP"), "SrcMAC": _str(d, "SrcMAC"), "DstMAC": _str(d, "DstMAC"),
            "SrcPort": _int(d, "SrcPort", 0, U16), "DstPort": _int(d, "DstPort", 0, U16),
            "Type": _str(d, "Type", "icmp4") or "icmp4", "Payload": _str(d, "Payload"),
            "ICMPID": _int(d, "ICMPID", 0, U16), "Count": _int(d, "Count", 0, U64),
            "Interval": _int(d, "Interval", 0, U64), "Mode": _str(d, "Mode"),
            "IncrementPayload": _int(d, "IncrementPayload", -I64 - 1, I64),
            "StartTime": "0001-01-01T00:00:00Z", "Pcap": pcap, "TTL": _int(d, "TTL", 0, 255),
        }

    def validate(self, obj):
        if obj["Type"] not in INJECTION_TYPES:
            raise ResourceError("given type is not supported")
        if obj["Mode"] not in ("", "unique", "random"):
            raise ResourceError("given mode is not supported")
        for k in ("SrcIP", "DstIP"):
            if obj[k] and not _ip_or_cidr(obj[k]):
                raise ResourceError("%s: %r is not an IP address or CIDR" % (k, obj[k]))
        for k in ("SrcMAC", "DstMAC"):
            if obj[k] and not _MAC_RE.match(obj[k]):
                raise ResourceError("%s: %r is not a MAC address" % (k, obj[k]))
        self.gremlin("Src", obj["Src"])
        if obj["Dst"]:
            self.gremlin("Dst", obj["Dst"])
        try:
            srcs = self.engine.nodes(obj["Src"])
        except QueryError as exc:
            raise ResourceError("Src: %s" % exc) from None
        if not srcs:
            raise ResourceError("Not able to find a source node with the query %s" % obj["Src"])
        if obj["Pcap"]:
            return
        v6 = obj["Type"].endswith("6")
        src = srcs[0]
        if not obj["SrcIP"] and not self._ips(src, v6):
            raise ResourceError("No source IP in node and user input")
        dst = None
        if obj["Dst"]:
            try:
                dsts = self.engine.nodes(obj["Dst"])
            except QueryError as exc:
                raise ResourceError("Dst: %s" % exc) from None
            dst = dsts[0] if dsts else None
        if not obj["DstIP"] and (dst is None or not self._ips(dst, v6)):
            raise ResourceError("No destination IP in node and user input")
        if not obj["SrcMAC"] and not isinstance(src.Metadata.get("MAC"), str):
            raise ResourceError("No source MAC in node and user input")
        if not obj["DstMAC"] and not self._dst_mac(src, dst):
            raise ResourceError("Not able to find a destination MAC")

    @staticmethod
    def _ips(node, v6):
        md = node.Metadata
        ips = []
        for key in (("Neutron.IPV6", "IPV6") if v6 else ("Neutron.IPV4", "IPV4")):
            v = md.get(key) if "." not in key else (md.get("Neutron") or {}).get(key.split(".")[1]) \
                if isinstance(md.get("Neutron"), dict) else None
            if isinstance(v, str):
                v = [v]
            if isinstance(v, list):
                ips.extend(_addr_of(x) for x in v if isinstance(x, str) and x)
        return ips

    @staticmethod
    def _dst_mac(src, dst):
        md = src.Metadata
        neighbors = md.get("Neighbors")
        if isinstance(neighbors, list) and any(isinstance(n, dict) and n.get("MAC") for n in neighbors):
            return True
        if dst is not None:
            ext = dst.Metadata.get("ExtID")
            if isinstance(ext, dict) and isinstance(ext.get("attached-mac"), str):
                return True
            if isinstance(dst.Metadata.get("MAC"), str):
                return True
        return False


# ---- rules -------------------------------------------------------------------------------------------

_RULE_METADATA = Flag("--metadata", field="Metadata", to=parse_metadata, default="", help="'k1=v1, k2.sub=v2'")


class NodeRuleKind(_GremlinKind):
    name = "noderule"
    title = "NodeRule"
    command = "node-rule"
    noun = "node rule"
    flags = (Flag("--action", field="Action", default="create", choices=("create", "update")),
             Flag("--node-name", field="Metadata.Name"), Flag("--node-type", field="Metadata.Type"),
             _RULE_METADATA, Flag("--query", field="Query", default=""),
             Flag("--name", field="Name", default=""), Flag("--description", field="Description", default=""))

    def cli_body(self, body, args):
        body.setdefault("Metadata", {})
        return body, {}

    def decode(self, data):
        d = _body(data, self.title)
        return {"UUID": "", "Name": _str(d, "Name"), "Description": _str(d, "Description"),
                "Metadata": _map(d, "Metadata"), "Action": _str(d, "Action"), "Query": _str(d, "Query")}

    def validate(self, obj):
        if obj["Action"] not in ("create", "update"):
            raise ResourceError("Action: %r does not match ^(create|update)$" % obj["Action"])
        self.gremlin("Query", obj["Query"], allow_empty=True)
        if obj["Action"] == "create":
            try:
                validate_node(Node("rule", obj["Metadata"]))
            except SchemaError as exc:
                raise ResourceError(str(exc)) from None
        else:
            if "Name" in obj["Metadata"] or "Type" in obj["Metadata"]:
                raise ResourceError("Name and Type fields can not be changed")
            if not obj["Query"]:
                raise ResourceError("Query: an update rule needs a Gremlin query")


class EdgeRuleKind(_GremlinKind):
    name = "edgerule"
    title = "EdgeRule"
    command = "edge-rule"
    noun = "edge rule"
    flags = (Flag("--src", field="Src", required=True), Flag("--dst", field="Dst", required=True),
             Flag("--relationtype", field="Metadata.RelationType", required=True), _RULE_METADATA,
             Flag("--name", field="Name", default=""), Flag("--description", field="Description", default=""))

    def decode(self, data):
        d = _body(data, self.title)
        return {"UUID": "", "Name": _str(d, "Name"), "Description": _str(d, "Description"),
                "Src": _str(d, "Src"), "Dst": _str(d, "Dst"), "Metadata": _map(d, "Metadata")}

    def validate(self, obj):
        self.gremlin("Src", obj["Src"])
        self.gremlin("Dst", obj["Dst"])
        rel = obj["Metadata"].get("RelationType")
        if not isinstance(rel, str) or not rel:
            raise ResourceError("Metadata: RelationType is required (non-empty string)")


# ---- workflow ----------------------------------------------------------------------------------------

PARAM_TYPES = ("node", "boolean", "choice", "string", "integer")


class WorkflowKind(ResourceKind):
    name = "workflow"
    title = "Workflow"
    flags = (Flag("--path", required=True, help="YAML file of the workflow"),)
    cli_call = True

    def cli_body(self, body, args):
        return read_yaml_map(args.path, "workflow"), {}

    def decode(self, data):
        d = _body(data, self.title)
        params = d.get("Parameters")
        if params is None:
            params = []
        if not isinstance(params, list):
            raise ResourceError("Parameters: expected an array")
        out_params = []
        for i, p in enumerate(params):
            if not isinstance(p, dict):
                raise ResourceError("Parameters[%d]: expected an object" % i)
            values = p.get("Values")
            if values is not None and not isinstance(values, list):
                raise ResourceError("Parameters[%d].Values: expected an array" % i)
            q = {"Name": _str(p, "Name"), "Description": _str(p, "Description"), "Type": _str(p, "Type"),
                 "Default": p.get("Default")}
            if q["Type"] and q["Type"] not in PARAM_TYPES:
                raise ResourceError("Parameters[%d].Type: must be one of %s" % (i, ", ".join(PARAM_TYPES)))
            if values:
                vs = []
                for v in values:
                    if not isinstance(v, dict):
                        raise ResourceError("Parameters[%d].Values: expected objects" % i)
                    vs.append({"Value": v.get("Value"), "Description": _str(v, "Description")})
                q["Values"] = vs
            out_params.append(q)
        return {"UUID": "", "Name": _str(d, "Name"), "Title": _str(d, "Title"), "Abstract": _str(d, "Abstract"),
                "Description": _str(d, "Description"), "Parameters": out_params, "Source": _str(d, "Source")}

    def validate(self, obj):
        if not obj["Name"]:
            raise ResourceError("Name: non zero value required")

    def is_duplicate(self, obj, existing):
        for o in existing:
            if o.get("Name") == obj["Name"]:
                raise ResourceError("Duplicate workflow, name=%s" % obj["Name"])
        return False
