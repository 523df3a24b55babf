// Node appearance by Metadata.Type: colour class, icon symbol, radius.

const TYPE_CLASS = {
  host: "t-host",
  netns: "t-netns",
  ovsbridge: "t-ovsbridge",
  ovsport: "t-ovsport",
  bridge: "t-bridge",
  openvswitch: "t-openvswitch",
  internal: "t-internal",
  veth: "t-veth",
  device: "t-device",
  container: "t-container",
  vxlan: "t-tunnel", gre: "t-tunnel", gretap: "t-tunnel", geneve: "t-tunnel", ipip: "t-tunnel",
  sit: "t-tunnel", ip6gre: "t-tunnel", ip6gretap: "t-tunnel", ip6tnl: "t-tunnel", stt: "t-tunnel",
  vlan: "t-vlan", macvlan: "t-vlan", macvtap: "t-vlan", ipvlan: "t-vlan", bond: "t-vlan",
  tun: "t-tuntap", tap: "t-tuntap", tuntap: "t-tuntap", dummy: "t-tuntap",
  fabric: "t-fabric", switch: "t-fabric", tor: "t-fabric", patch: "t-ovsport",
};

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

export function typeClass(type) {
  return TYPE_CLASS[type] || "t-other";
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
