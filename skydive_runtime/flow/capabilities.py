"""Which capture types exist, what each supports, and which node types each can run on.

One table (upstream flow/probes/capabilities.go) shared by the API's validation, the
analyzer's capture manager and the agent's capture handler.
"""

from collections import namedtuple

Caps = namedtuple("Caps", "bpf raw_packets extra_tcp_metric multiple_per_node")

CAPTURE_CAPS = {
    "afpacket": Caps(True, True, True, True),
    "pcap": Caps(True, True, True, True),
    "pcapsocket": Caps(True, True, True, False),
    "sflow": Caps(True, True, True, False),
    "ovssflow": Caps(True, True, True, False),
    "dpdk": Caps(True, True, True, False),
    "ovsmirror": Caps(True, True, True, False),
    "ovsnetflow": Caps(True, True, True, False),
    "ebpf": Caps(False, False, True, False),
}
CAPTURE_TYPES = tuple(CAPTURE_CAPS)
SINGLE_PER_NODE = tuple(t for t, c in CAPTURE_CAPS.items() if not c.multiple_per_node)

# interface node types (netlink Type); `tuntap` is how the agent names tun/tap devices (VM taps)
INTERFACE_TYPES = ("internal", "veth", "tun", "tuntap", "bridge", "dummy", "gre", "bond", "can", "hsr",
                   "ifb", "macvlan", "macvtap", "vlan", "vxlan", "gretap", "ip6gretap", "geneve", "ipoib",
                   "vcan", "ipip", "ipvlan", "lowpan", "ip6tnl", "ip6gre", "sit", "device")
INTERFACE_CAPTURES = ("afpacket", "pcap", "pcapsocket", "sflow", "ebpf")

# capture type -> node types that can take it
NODE_TYPES_BY_CAPTURE = {t: INTERFACE_TYPES for t in INTERFACE_CAPTURES}
NODE_TYPES_BY_CAPTURE.update({"ovssflow": ("ovsbridge",), "ovsnetflow": ("ovsbridge",),
                              "ovsmirror": ("ovsport",), "dpdk": ("dpdkport",)})
NODE_TYPES_BY_CAPTURE["pcapsocket"] = INTERFACE_TYPES + ("ovsbridge",)
CAPTURABLE_TYPES = INTERFACE_TYPES + ("ovsbridge", "ovsport", "dpdkport")

# node type -> capture type used when the capture names none
DEFAULT_CAPTURE = dict.fromkeys(INTERFACE_TYPES, "afpacket")
DEFAULT_CAPTURE.update({"ovsbridge": "ovssflow", "ovsport": "ovsmirror", "dpdkport": "dpdk"})
