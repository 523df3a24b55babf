# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: skydive
short_description: Inventory of the hosts in a live Skydive topology
version_added: 1.0.0
description:
  - Builds the inventory from the topology of a Skydive analyzer. One Gremlin query selects the
    hosts (by default the C(host) nodes the agents report) and, with O(interfaces), one more
    fetches the interfaces they own.
  - Each host gets its node metadata and interfaces as host variables, C(ansible_host) from an
    interface address or a metadata key, groups from O(group_by), plus the C(constructed)
    features (O(compose), O(groups), O(keyed_groups)) and inventory caching.
  - The inventory file name must end with C(skydive.yml) or C(skydive.yaml).
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - skydive.skydive.skydive.plugins
options:
  plugin:
    description: Marks this file as a configuration of this plugin.
    type: str
    required: true
    choices: [skydive.skydive.skydive]
  query:
    description:
      - Gremlin query selecting the nodes that become inventory hosts.
    type: str
    default: G.V().Has('Type', 'host')
  topology_file:
    description:
      - Build the inventory from a recorded topology instead of a live analyzer, a JSON file
        holding what C(GET /api/topology) answers (an object with C(Nodes) and C(Edges) lists)
        or a C(G) query result (the same object in a one-element list), as
        C(skydive client topology export) writes it.
      - The hosts are then the nodes whose C(Type) is C(host); O(query) must keep its default.
    type: path
  hostname_field:
    description:
      - Node field naming the inventory host, a metadata key (dotted keys reach into nested
        metadata) or C(@ID) / C(@Host) for the node ID or host.
      - A node without that field, or whose value is already taken, is named by its ID
        (with a warning for duplicates).
    type: str
    default: Name
  interfaces:
    description:
      - Fetch the interfaces each host owns (one more query) and put them in
        C(skydive_interfaces). Needed for O(ansible_host_interface) and the C(captures) group.
    type: bool
    default: true
  ansible_host_key:
    description:
      - Metadata key of the host node whose value becomes C(ansible_host) (the first element of
        a list; a C(/prefix) is dropped). When empty or missing on a node, the interface
        address is used.
    type: str
    default: ''
  ansible_host_interface:
    description:
      - Name of the interface whose first address (of O(address_family)) becomes
        C(ansible_host). Empty takes the first interface, by name, that is up and has a
        global address.
    type: str
    default: ''
  address_family:
    description:
      - Address family for C(ansible_host) taken from interfaces.
    type: str
    default: ipv4
    choices: [ipv4, ipv6]
  group_by:
    description:
      - Groups to make, named C(<choice>_<value>) (just C(<value>) with O(group_names_raw)).
      - V(type) the node C(Type); V(host) its C(Host) (agent); V(manager) its C(Manager)
        (docker, neutron...); V(probe) its C(Probe); V(captures) one group per active capture
        (by name, or ID when unnamed) running on an interface of the host.
    type: list
    elements: str
    default: []
    choices: [type, host, manager, probe, captures]
  group_names_raw:
    description:
      - Do not prefix the O(group_by) group names with the choice.
    type: bool
    default: false
"""

EXAMPLES = r"""
# skydive.yml: every host known to the analyzer, ansible_host from eth0
# (the password comes from the SKYDIVE_PASSWORD environment variable)
plugin: skydive.skydive.skydive
analyzer: analyzer.example.com:8082
username: admin
ansible_host_interface: eth0
group_by: [host, captures]
keyed_groups:
  - key: skydive_metadata.Role | default('none')
    prefix: role
compose:
  ansible_user: "'heat-admin'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/skydive-inventory

# switches.skydive.yml: the static switches declared with skydive_node
plugin: skydive.skydive.skydive
query: G.V().Has('Type', 'switch')
ansible_host_key: ManagementIP
interfaces: false

# offline.skydive.yml: from a recorded topology
plugin: skydive.skydive.skydive
topology_file: /var/lib/skydive/topology.json
"""

import json

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.group import to_safe_group_name
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    CAPTURABLE_TYPES,
    SkydiveClient,
    SkydiveError,
    resolve_connection,
    split_elements,
)

DEFAULT_QUERY = "G.V().Has('Type', 'host')"
CONNECTION_OPTIONS = ("analyzer", "username", "password", "ssl", "validate_certs", "ca_path",
                      "timeout")
GROUP_BY_FIELDS = {
    "type": ("Metadata", "Type"),
    "host": ("Host", None),
    "manager": ("Metadata", "Manager"),
    "probe": ("Metadata", "Probe"),
}


def get_path(data, dotted):
    """Value at a dotted key of nested dicts, ``None`` when missing."""
    value = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def node_field(node, field):
    if field == "@ID":
        return node.get("ID")
    if field == "@Host":
        return node.get("Host")
    if field.startswith("Metadata."):
        field = field[len("Metadata."):]
    return get_path(node.get("Metadata") or {}, field)


def _strip_prefix(address):
    return to_text(address).split("/", 1)[0]


def _is_global(address, family):
    addr = _strip_prefix(address).lower()
    if family == "ipv4":
        return ":" not in addr and not addr.startswith("127.") and not addr.startswith("169.254.")
    return ":" in addr and addr != "::1" and not addr.startswith("fe80:")


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


NOT_INTERFACES = frozenset(["ovsbridge", "ovsport", "dpdkport"])


def is_interface(node):
    """An owned node that is a network interface (not a netns, bridge, container...)."""
    meta = node.get("Metadata") or {}
    node_type = meta.get("Type")
    if node_type in NOT_INTERFACES:
        return False
    return "IfIndex" in meta or "MAC" in meta or node_type in CAPTURABLE_TYPES


def active_captures(node):
    """Names (or IDs when unnamed) of the captures running on ``node``."""
    return [c.get("Name") or c.get("ID") for c in _as_list((node.get("Metadata") or {}).get("Captures"))
            if isinstance(c, dict) and c.get("State") == "active" and (c.get("Name") or c.get("ID"))]


def interface_vars(node):
    meta = node.get("Metadata") or {}
    return {
        "id": node.get("ID"),
        "name": meta.get("Name"),
        "type": meta.get("Type"),
        "mac": meta.get("MAC"),
        "mtu": meta.get("MTU"),
        "state": meta.get("State"),
        "driver": meta.get("Driver"),
        "ipv4": _as_list(meta.get("IPV4")),
        "ipv6": _as_list(meta.get("IPV6")),
        "captures": [dict(id=c.get("ID"), name=c.get("Name"), state=c.get("State"), type=c.get("Type"))
                     for c in _as_list(meta.get("Captures")) if isinstance(c, dict)],
    }


def load_topology_file(path):
    """Nodes and edges of a recorded topology (``GET /api/topology`` or a ``G`` result)."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(to_text(handle.read()))
    except (IOError, OSError) as exc:
        raise AnsibleParserError("skydive inventory: cannot read topology_file %s: %s" % (path, to_native(exc)))
    except ValueError as exc:
        raise AnsibleParserError("skydive inventory: topology_file %s is not JSON: %s" % (path, to_native(exc)))
    if isinstance(data, dict):
        data = [data]
    if not (isinstance(data, list) and all(isinstance(d, dict) and ("Nodes" in d or "Edges" in d) for d in data)):
        raise AnsibleParserError("skydive inventory: topology_file %s must hold {\"Nodes\": [...], "
                                 "\"Edges\": [...]} (or a list with one such object)" % path)
    return split_elements(data)


def records_from_topology(nodes, edges):
    """The two query answers the plugin works from, computed from a whole recorded topology."""
    hosts = [n for n in nodes if (n.get("Metadata") or {}).get("Type") == "host"]
    host_ids = set(n["ID"] for n in hosts)
    by_id = dict((n["ID"], n) for n in nodes)
    owned = [e for e in edges if e.get("Parent") in host_ids and
             (e.get("Metadata") or {}).get("RelationType") == "ownership" and e.get("Child") in by_id]
    sub_nodes = hosts + [by_id[e["Child"]] for e in owned]
    return {"hosts": hosts, "owned": [{"Nodes": sub_nodes, "Edges": owned}]}


def build_hosts(records, hostname_field="Name", ansible_host_key="", ansible_host_interface="",
                address_family="ipv4", group_by=(), group_names_raw=False, warn=None):
    """Turn the query answers into ``[(hostname, hostvars, [group names])]``.

    ``records`` is ``{"hosts": <answer of the hosts query>, "owned": <answer of the
    interfaces query, or None>}``. Pure function: no inventory, no network.
    """
    host_nodes, _unused = split_elements(records.get("hosts"))
    children = {}
    if records.get("owned") is not None:
        sub_nodes, sub_edges = split_elements(records["owned"])
        by_id = dict((n["ID"], n) for n in sub_nodes)
        for edge in sub_edges:
            if (edge.get("Metadata") or {}).get("RelationType") != "ownership":
                continue
            child = by_id.get(edge.get("Child"))
            if child is not None:
                children.setdefault(edge.get("Parent"), []).append(child)

    result, taken = [], set()
    for node in sorted(host_nodes, key=lambda n: n.get("ID") or ""):
        meta = node.get("Metadata") or {}
        name = node_field(node, hostname_field)
        if isinstance(name, (list, dict)) or name in (None, ""):
            name = node.get("ID")
        name = to_text(name)
        if name in taken:
            if warn:
                warn("skydive inventory: %s %r is shared by several nodes; node %s is named by its ID"
                     % (hostname_field, name, node.get("ID")))
            name = node.get("ID")
        taken.add(name)

        owned = sorted(children.get(node.get("ID"), []), key=lambda c: (
            to_text((c.get("Metadata") or {}).get("Name") or ""), c.get("ID") or ""))
        interfaces = [interface_vars(c) for c in owned if is_interface(c)]
        hostvars = {
            "skydive_id": node.get("ID"),
            "skydive_host": node.get("Host"),
            "skydive_metadata": meta,
        }
        if records.get("owned") is not None:
            hostvars["skydive_interfaces"] = interfaces

        address = None
        if ansible_host_key:
            for value in _as_list(get_path(meta, ansible_host_key)):
                if isinstance(value, str) and value:
                    address = _strip_prefix(value)
                    break
        if address is None:
            key = "ipv4" if address_family == "ipv4" else "ipv6"
            for intf in interfaces:
                if ansible_host_interface:
                    if intf["name"] != ansible_host_interface:
                        continue
                    candidates = [a for a in intf[key] if isinstance(a, str)]
                else:
                    if intf["state"] not in (None, "UP", "UNKNOWN"):
                        continue
                    candidates = [a for a in intf[key] if isinstance(a, str) and _is_global(a, address_family)]
                if candidates:
                    address = _strip_prefix(candidates[0])
                    break
        if address:
            hostvars["ansible_host"] = address

        groups = []
        for choice in group_by:
            if choice == "captures":
                values = sorted(set(name for child in owned for name in active_captures(child)))
            else:
                where, key = GROUP_BY_FIELDS[choice]
                value = node.get(where) if key is None else meta.get(key)
                values = [value] if value not in (None, "") and not isinstance(value, (list, dict)) else []
            for value in values:
                groups.append(to_safe_group_name(
                    to_text(value) if group_names_raw else "%s_%s" % (choice, to_text(value)), force=True, silent=True))
        result.append((name, hostvars, groups))
    return result


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = "skydive.skydive.skydive"

    def verify_file(self, path):
        if super(InventoryModule, self).verify_file(path):
            return path.endswith(("skydive.yml", "skydive.yaml"))
        return False

    def fetch(self):
        """Run the queries: ``{"hosts": [...], "owned": [...] or None}``."""
        query = self.get_option("query").strip()
        topology_file = self.get_option("topology_file")
        if topology_file:
            if query != DEFAULT_QUERY:
                raise AnsibleParserError("skydive inventory: query cannot be evaluated on a "
                                         "topology_file; remove query (hosts are the Type=host nodes)")
            nodes, edges = load_topology_file(topology_file)
            records = records_from_topology(nodes, edges)
            if not self.get_option("interfaces"):
                records["owned"] = None
            return records
        flat = dict((k, self.get_option(k)) for k in CONNECTION_OPTIONS)
        flat["insecure"] = None
        try:
            client = SkydiveClient(**resolve_connection(flat, None, environ={}))
            hosts = client.query(query)
            owned = None
            if self.get_option("interfaces"):
                owned = client.query("%s.OutE().Has('RelationType', 'ownership').SubGraph()" % query)
        except SkydiveError as exc:
            raise AnsibleParserError("skydive inventory: %s" % exc)
        if hosts is not None and not isinstance(hosts, list):
            raise AnsibleParserError("skydive inventory: query %s must return nodes, got %s"
                                     % (query, json.dumps(hosts)[:200]))
        if self.get_option("interfaces"):
            owned = owned or []
        return {"hosts": hosts or [], "owned": owned}

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        records = None
        if use_cache:
            try:
                records = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if records is None:
            records = self.fetch()
        if update_cache:
            self._cache[cache_key] = records
        self.populate(records)

    def populate(self, records):
        strict = self.get_option("strict")
        try:
            hosts = build_hosts(
                records,
                hostname_field=self.get_option("hostname_field"),
                ansible_host_key=self.get_option("ansible_host_key"),
                ansible_host_interface=self.get_option("ansible_host_interface"),
                address_family=self.get_option("address_family"),
                group_by=self.get_option("group_by"),
                group_names_raw=self.get_option("group_names_raw"),
                warn=self.display.warning,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise AnsibleParserError("skydive inventory: unexpected topology data: %s" % to_native(exc))
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        for hostname, hostvars, group_names in hosts:
            self.inventory.add_host(hostname)
            for key, value in hostvars.items():
                self.inventory.set_variable(hostname, key, value)
            for group in group_names:
                group = self.inventory.add_group(group)
                self.inventory.add_child(group, hostname)
            try:
                self._set_composite_vars(compose, hostvars, hostname, strict=strict)
                self._add_host_to_composed_groups(groups, hostvars, hostname, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, hostvars, hostname, strict=strict)
            except AnsibleError:
                raise
            except Exception as exc:  # pylint: disable=broad-except
                raise AnsibleParserError("skydive inventory: constructing host %s: %s" % (hostname, to_native(exc)))
