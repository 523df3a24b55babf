"""Capture types: the node types each can capture, the options each honours, and its source.

One registry (upstream flow/probes/capabilities.go) read by the API's validation, the analyzer's
capture manager, the agent's capture handler and the CLI. A capture type is one `register(...)`
line here and one module of skydive_runtime.flow holding two functions:

    def available(config):     # None when this host can run the type now, else why not
    def open_capture(ctx):     # -> Opened(source[, table, setup, cleanup, packet_clock])

`open_capture` runs on the agent's loop with a context giving `ctx.capture` (the resource),
`ctx.node` (the graph node), `ctx.config`, `ctx.table` (the FlowTable built for the capture),
`ctx.entry` (the node's `Captures` entry, where a source adds e.g. `PCAPSocket`),
`ctx.header_size`, `ctx.max_entries`, `ctx.locate()` -> (ifname, netns path or None) and
`ctx.bind(make, (port_min, port_max), error_cls, what)` -> an opened source on the first free
port. It raises CaptureStartError(status, message). `setup`/`cleanup` are blocking callables
run in a worker thread after the source started / before it stops (OVS settings).
"""

from collections import namedtuple
import importlib

# interface node types (netlink Type); `tuntap` is how the agent names tun/tap devices (VM taps)
INTERFACE_TYPES = ("internal", "veth", "tun", "tuntap", "bridge", "dummy", "gre", "bond", "can", "hsr",
                   "ifb", "macvlan", "macvtap", "vlan", "vxlan", "gretap", "ip6gretap", "geneve", "ipoib",
                   "vcan", "ipip", "ipvlan", "lowpan", "ip6tnl", "ip6gre", "sit", "device")

# ExtraLayers bits: the application layers the flow table decodes when asked (flow/layers)
EXTRA_LAYERS = {"VRRP": 1, "DNS": 2, "DHCPv4": 4}

# options of the capture resource a type may honour, with the values that mean "not asked for"
# (upstream clients always send SamplingRate 1 and PollingInterval 10)
OPTIONS = {"BPFFilter": ("",), "RawPacketLimit": (0,), "HeaderSize": (0,), "ExtraTCPMetric": (False,),
           "SamplingRate": (0, 1), "PollingInterval": (0, 10), "Port": (0,), "ExtraLayers": (0,),
           "IPDefrag": (False,), "ReassembleTCP": (False,), "Target": ("",), "TargetType": ("",)}
# upstream's wording for the three it names
_REFUSALS = {"BPFFilter": "BPF filtering", "RawPacketLimit": "raw packet capture",
             "ExtraTCPMetric": "extra TCP metrics"}
# options of the types whose frames go through the flow table's decoder (ExtraLayers, IPDefrag:
# from sampled headers for sflow/ovssflow)
PACKET_OPTIONS = ("BPFFilter", "RawPacketLimit", "HeaderSize", "ExtraTCPMetric", "ExtraLayers", "IPDefrag")
# why ReassembleTCP is refused by every type
_NO_REASSEMBLY = ("ReassembleTCP: not implemented (no extra layer needs it: DNS over TCP is decoded from the "
                  "segment carrying the whole message, messages split over segments are not)")

CaptureType = namedtuple("CaptureType", "name node_types default_on options multiple_per_node kernel_bpf module")

CAPTURE_TYPES = {}          # name -> CaptureType, in registration order


class CaptureStartError(Exception):
    """A capture that cannot start on a node; `status` is the agent's reply status."""

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status


class Opened(object):
    """What `open_capture` returns: the source for CaptureRunner (opened or not), the table it
    feeds when not ctx.table, and the blocking `setup`/`cleanup` hooks."""

    def __init__(self, source, table=None, setup=None, cleanup=None, packet_clock=False):
        self.source = source
        self.table = table
        self.setup = setup
        self.cleanup = cleanup
        self.packet_clock = packet_clock


def register(name, node_types, module, options=PACKET_OPTIONS, default_on=(), multiple_per_node=False,
             kernel_bpf=False):
    """Add a capture type: `module` is the skydive_runtime.flow module with available()/open_capture()."""
    CAPTURE_TYPES[name] = CaptureType(name, tuple(node_types), tuple(default_on), frozenset(options),
                                      multiple_per_node, kernel_bpf, module)


register("afpacket", INTERFACE_TYPES, "afpacket", default_on=INTERFACE_TYPES, multiple_per_node=True, kernel_bpf=True)
register("pcap", INTERFACE_TYPES, "pcap", multiple_per_node=True, kernel_bpf=True)
register("pcapsocket", INTERFACE_TYPES + ("ovsbridge",), "pcapfile", options=PACKET_OPTIONS + ("Port",))
register("sflow", INTERFACE_TYPES, "sflow", options=PACKET_OPTIONS + ("Port",))
register("ovssflow", ("ovsbridge",), "ovssflow", options=PACKET_OPTIONS + ("Port", "SamplingRate", "PollingInterval"),
         default_on=("ovsbridge",))
register("ebpf", INTERFACE_TYPES, "ebpf", options=("ExtraTCPMetric",))
register("ovsmirror", ("ovsport",), "ovsmirror", default_on=("ovsport",), kernel_bpf=True)
register("ovsnetflow", ("ovsbridge",), "ovsnetflow", options=("Port",))

# upstream types with no implementation here: refused at creation (see docs/flows.md)
NOT_IMPLEMENTED = ("dpdk",)

CAPTURABLE_TYPES = tuple(dict.fromkeys(t for c in CAPTURE_TYPES.values() for t in c.node_types))
SINGLE_PER_NODE = tuple(n for n, c in CAPTURE_TYPES.items() if not c.multiple_per_node)
DEFAULT_CAPTURE = {t: c.name for c in reversed(list(CAPTURE_TYPES.values())) for t in c.default_on}


def capture_type(name):
    return CAPTURE_TYPES.get(name)


# an untyped capture on an interface runs `ebpf` (in-kernel aggregation) when the host can and the
# capture asks for nothing that needs whole packets in user space; else the node's default
PREFERRED_CAPTURE = "ebpf"


def default_type(node_type, capture, runnable=None, running=()):
    """The type an untyped `capture` runs on a node of `node_type`: PREFERRED_CAPTURE when it can
    take the node, is in `runnable` (the host's runnable types; None: any), every option the capture
    asks for is one it honours with the same meaning (not BPFFilter, RawPacketLimit, HeaderSize,
    ExtraTCPMetric, ExtraLayers, TargetType erspanv1...: whole packets; a NetFlow Target, which every
    type honours, does not count) and, being single per node, none of `running` (the node's Captures entries) is of
    that type; else DEFAULT_CAPTURE's type (None: no type)."""
    pref = CAPTURE_TYPES.get(PREFERRED_CAPTURE)
    if pref is not None and node_type in pref.node_types and (runnable is None or pref.name in runnable) \
            and (not packet_target(capture) or "ExtraLayers" in pref.options) \
            and all(capture.get(opt, neutral[0]) in neutral for opt, neutral in OPTIONS.items()
                    if opt not in EXPORT_OPTIONS) \
            and (pref.multiple_per_node or not any(isinstance(e, dict) and e.get("Type") == pref.name for e in running or ())):
        return pref.name
    return DEFAULT_CAPTURE.get(node_type)


def types_for_node(node_type):
    """Names of the capture types a node of `node_type` can take."""
    return tuple(n for n, c in CAPTURE_TYPES.items() if node_type in c.node_types)


def source_module(ctype):
    return importlib.import_module("%s.%s" % (__package__, ctype.module))


def available_types(config):
    """{name: None (runnable on this host now) or the reason it is not}."""
    out = {}
    for name, c in CAPTURE_TYPES.items():
        try:
            out[name] = source_module(c).available(config)
        except Exception as exc:        # a type whose check breaks is not runnable
            out[name] = str(exc) or type(exc).__name__
    return out


# every type's flows can be exported (agent/captures.py hands each tick's flows to the exporter);
# erspanv1 mirrors the packets themselves: only the types whose frames reach the flow table
EXPORT_OPTIONS = frozenset(("Target", "TargetType"))
TARGET_TYPES = ("netflowv5", "erspanv1")
PACKET_TARGETS = ("erspanv1",)


def packet_target(capture):
    """True when the capture's export needs every packet (TargetType erspanv1)."""
    return (capture.get("TargetType") or "") in PACKET_TARGETS


def _packet_types():
    return [n for n, c in CAPTURE_TYPES.items() if "ExtraLayers" in c.options]


def check_target(capture):
    """ValueError for a Target/TargetType pair the agent cannot export to."""
    target, ttype = capture.get("Target") or "", capture.get("TargetType") or ""
    if not target and not ttype:
        return
    if ttype and ttype not in TARGET_TYPES:
        raise ValueError("TargetType: unknown export type %r (%s)" % (ttype, ", ".join(TARGET_TYPES)))
    if not target:
        raise ValueError("TargetType: %s needs a Target (%s)" % (
            ttype, "the IPv4 address receiving the GRE packets" if ttype == "erspanv1" else "ip:port of the collector"))
    if ttype == "erspanv1":
        from .erspan import parse_target
    else:
        from .netflow import parse_target
    parse_target(target)
    name = capture.get("Type") or ""
    if ttype in PACKET_TARGETS and name and "ExtraLayers" not in CAPTURE_TYPES[name].options:
        raise ValueError("TargetType: %s mirrors packets: not supported by %s capture, which does not see them (only %s)"
                         % (ttype, name, ", ".join(_packet_types())))


def check_capture(capture):
    """ValueError naming what the capture resource asks that its Type cannot do."""
    name = capture.get("Type") or ""
    if name in NOT_IMPLEMENTED:
        raise ValueError("Type: %s capture is not implemented (available: %s)" % (name, ", ".join(CAPTURE_TYPES)))
    if name and name not in CAPTURE_TYPES:
        raise ValueError("Type: unknown capture type %r (%s)" % (name, ", ".join(CAPTURE_TYPES)))
    check_target(capture)
    honoured = (CAPTURE_TYPES[name].options if name else _DEFAULT_OPTIONS) | EXPORT_OPTIONS
    for opt, neutral in OPTIONS.items():
        if opt in honoured or capture.get(opt, neutral[0]) in neutral:
            continue
        if opt == "ReassembleTCP":
            raise ValueError(_NO_REASSEMBLY)
        what = name or "the default (%s)" % "/".join(sorted(set(DEFAULT_CAPTURE.values())))
        if opt in _REFUSALS and name:
            raise ValueError("%s capture doesn't support %s" % (name, _REFUSALS[opt]))
        takers = [n for n, c in CAPTURE_TYPES.items() if opt in c.options]
        raise ValueError("%s: not supported by %s capture%s" % (
            opt, what, " (only %s)" % ", ".join(takers) if takers else " (no capture type implements it yet)"))


# an untyped capture runs each node's default type: what every default honours, and the sFlow
# settings the ovsbridge default (ovssflow) takes
_DEFAULT_OPTIONS = frozenset.intersection(*(CAPTURE_TYPES[n].options for n in set(DEFAULT_CAPTURE.values()))) \
    | {"SamplingRate", "PollingInterval"}
