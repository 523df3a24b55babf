// Node appearance, as the Red Hat OSP guide teaches it: beige for physical NICs and the OVS
// external bridge, blue for network namespaces, red for an interface that is DOWN (and red for
// nothing else); an OpenStack mark on interfaces the Neutron probe tags `Manager: neutron`.

const TYPE_CLASS = {
  host: "t-host",
  netns: "t-netns",
  ovsbridge: "t-ovsbridge",
  ovsport: "t-ovsport",
  bridge: "t-bridge",
  openvswitch: "t-openvswitch",
  internal: "t-internal",
  veth: "t-veth",
  device: "t-physical",
  container: "t-container",
  vxlan: "t-tunnel", gre: "t-tunnel", gretap: "t-tunnel", geneve: "t-tunnel", ipip: "t-tunnel",
  sit: "t-tunnel", ip6gre: "t-tunnel", ip6gretap: "t-tunnel", ip6tnl: "t-tunnel", stt: "t-tunnel",
  vlan: "t-vlan", macvlan: "t-vlan", macvtap: "t-vlan", ipvlan: "t-vlan", bond: "t-vlan",
  tun: "t-tuntap", tap: "t-tuntap", tuntap: "t-tuntap", dummy: "t-tuntap",
  fabric: "t-fabric", switch: "t-fabric", tor: "t-fabric", patch: "t-ovsport",
};

// the legend: [class, label], in this order (the page builds it from here)
export const LEGEND = [
  ["t-host", "host"], ["t-physical", "physical NIC / OVS external bridge"], ["t-netns", "network namespace"],
  ["t-ovsbridge", "OVS bridge"], ["t-ovsport", "OVS port"], ["t-bridge", "Linux bridge"],
  ["t-veth", "veth"], ["t-internal", "OVS internal"], ["t-tunnel", "tunnel"], ["t-tuntap", "tap / tun"],
  ["t-container", "container"], ["t-fabric", "fabric / ToR"], ["t-other", "other"],
  ["state-down", "interface DOWN"], ["openstack", "OpenStack-managed"], ["captured", "capture active"],
  ["diff-added", "added (changes since)"], ["diff-changed", "changed (changes since)"],
];

const TYPE_ICON = {
  host: "icon-host",
  netns: "icon-netns",
  ovsbridge: "icon-bridge", bridge: "icon-bridge", openvswitch: "icon-bridge",
  ovsport: "icon-port", patch: "icon-port", internal: "icon-port",
  veth: "icon-veth",
  container: "icon-container",
  vxlan: "icon-tunnel", gre: "icon-tunnel", gretap: "icon-tunnel", geneve: "icon-tunnel",
  ipip: "icon-tunnel", sit: "icon-tunnel", ip6gre: "icon-tunnel", ip6tnl: "icon-tunnel",
  fabric: "icon-fabric", switch: "icon-fabric", tor: "icon-fabric",
};

// Types shown in the hosts-first view: roots of the ownership tree are always visible
export const TOP_TYPES = new Set(["host", "fabric", "switch", "tor"]);

export function nodeType(node) {
  const t = node && node.Metadata && node.Metadata.Type;
  return typeof t === "string" ? t : "";
}

export function nodeName(node) {
  const m = (node && node.Metadata) || {};
  const n = m.Name;
  if (typeof n === "string" && n) return n;
  return node ? String(node.ID).slice(0, 8) : "";
}

// The OVS external bridge (br-ex by OpenStack convention) is drawn like the physical NICs.
export function isExternalBridge(node) {
  return nodeType(node) === "ovsbridge" && /^br-ex/.test(nodeName(node));
}

export function typeClass(type, node) {
  if (node && isExternalBridge(node)) return "t-physical";
  return TYPE_CLASS[type] || "t-other";
}

export function isOpenStack(node) {
  const m = node && node.Metadata;
  return !!m && typeof m.Manager === "string" && m.Manager.toLowerCase() === "neutron";
}

export function isDown(node) {
  const m = node && node.Metadata;
  return !!m && m.State === "DOWN";
}

export function iconFor(type) {
  return TYPE_ICON[type] || "icon-interface";
}

export function radiusFor(type, isGroup) {
  if (type === "host") return 17;
  if (type === "netns" || type === "ovsbridge" || type === "container") return 14;
  if (type === "bridge" || isGroup) return 13;
  if (type === "ovsport") return 9;
  return 11;
}

// Capture state on a node: "active", "error", or "" (no capture)
export function captureState(node) {
  const caps = node && node.Metadata && node.Metadata.Captures;
  if (!Array.isArray(caps) || caps.length === 0) return "";
  if (caps.some((c) => c && c.State === "active")) return "active";
  if (caps.some((c) => c && c.State === "error")) return "error";
  return "active";
}

// Capture types a node can take (upstream flow/probes/capabilities.go, as flow/capabilities.py),
// further limited to what its agent runs (host node `CaptureTypes`) by the Captures panel.
const INTERFACE_TYPES = ["internal", "veth", "tun", "tuntap", "bridge", "dummy", "gre", "bond", "can", "hsr",
  "ifb", "macvlan", "macvtap", "vlan", "vxlan", "gretap", "ip6gretap", "geneve", "ipoib", "vcan", "ipip",
  "ipvlan", "lowpan", "ip6tnl", "ip6gre", "sit", "device"];
const CAPTURE_NODE_TYPES = {
  afpacket: INTERFACE_TYPES, pcap: INTERFACE_TYPES, pcapsocket: INTERFACE_TYPES.concat(["ovsbridge"]),
  sflow: INTERFACE_TYPES, ebpf: INTERFACE_TYPES, ovssflow: ["ovsbridge"], ovsnetflow: ["ovsbridge"],
  ovsmirror: ["ovsport"], dpdk: ["dpdkport"],
};
export const CAPTURE_TYPES = Object.keys(CAPTURE_NODE_TYPES);

export function captureTypesFor(type) {
  return CAPTURE_TYPES.filter((t) => CAPTURE_NODE_TYPES[t].includes(type));
}
