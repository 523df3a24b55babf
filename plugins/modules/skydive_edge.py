#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_edge
short_description: Manage static edges of the Skydive topology
version_added: 1.0.0
description:
  - Create, update or delete an edge (link) between two nodes of the Skydive topology through
    the analyzer's REST API (C(/api/edge)), for example the uplinks of a top-of-rack switch.
  - Each end is given by node ID or by a Gremlin query that must select exactly one node.
  - An existing edge with the same parent, child and relation type is managed, whatever its ID;
    a new edge gets the deterministic ID of the original module, UUIDv5 (OID namespace) of
    C(<parent ID>:<child ID>:<relation_type>).
  - Metadata is merged key by key (C(PATCH) with a JSON patch); keys not in O(metadata) are kept
    unless O(purge_metadata) is set.
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.graph
attributes:
  diff_mode:
    description: Shows the edge before and after.
options:
  parent_node:
    description:
      - Parent end of the edge, a node ID or a Gremlin query (starting with C(G.) or C(g.)) that
        selects exactly one node.
    type: str
    required: true
  child_node:
    description:
      - Child end of the edge, a node ID or a Gremlin query that selects exactly one node.
    type: str
    required: true
  relation_type:
    description:
      - Relation of the edge (C(Metadata.RelationType)), for example C(ownership), C(layer2) or
        C(layer3).
    type: str
    required: true
  host:
    description:
      - C(Host) of the edge; only set at creation.
    type: str
    default: ''
  metadata:
    description:
      - Metadata of the edge besides C(RelationType).
    type: dict
    default: {}
  purge_metadata:
    description:
      - Remove the metadata keys the edge has and O(metadata) does not (C(RelationType) is
        always kept).
    type: bool
    default: false
  state:
    description:
      - V(present) creates the edge if needed and merges O(metadata).
      - V(update) only merges O(metadata) into an existing edge and fails if it does not exist.
      - V(absent) deletes the edge.
    type: str
    default: present
    choices: [present, update, absent]
seealso:
  - module: skydive.skydive.skydive_node
"""

EXAMPLES = r"""
- name: Link the ToR switch to the uplink of compute-0
  skydive.skydive.skydive_edge:
    parent_node: "G.V().Has('Name', 'tor1', 'Type', 'switch')"
    child_node: "G.V().Has('Host', 'compute-0').Has('Name', 'eth1')"
    relation_type: layer2
    metadata:
      Type: fabric
      Speed: 25G

- name: Same, by node IDs
  skydive.skydive.skydive_edge:
    parent_node: "{{ tor1.node.ID }}"
    child_node: "{{ port.node.ID }}"
    relation_type: ownership

- name: Remove the link
  skydive.skydive.skydive_edge:
    parent_node: "G.V().Has('Name', 'tor1', 'Type', 'switch')"
    child_node: "G.V().Has('Host', 'compute-0').Has('Name', 'eth1')"
    relation_type: layer2
    state: absent
"""

RETURN = r"""
edge:
  description: The edge as the analyzer holds it (empty after O(state=absent)).
  returned: always
  type: dict
  sample:
    ID: 3b7f8f0c-33a1-5d8e-b1f4-8d6f0c2e4a10
    Parent: 0f9b4a57-8a4f-5d5f-9a3c-0e6a3b1f2d3c
    Child: 7a1c2d3e-4f50-5a6b-8c7d-9e0f1a2b3c4d
    Metadata: {RelationType: layer2, Type: fabric}
    Host: ""
    Revision: 1
id:
  description: ID of the edge (null when O(state=absent) and an end does not exist).
  returned: always
  type: str
  sample: 3b7f8f0c-33a1-5d8e-b1f4-8d6f0c2e4a10
UUID:
  description: ID of the edge, under the name the original module used.
  returned: always
  type: str
  sample: 3b7f8f0c-33a1-5d8e-b1f4-8d6f0c2e4a10
parent:
  description: ID of the parent node.
  returned: always
  type: str
child:
  description: ID of the child node.
  returned: always
  type: str
"""

import time

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    SkydiveError,
    edge_id,
    gremlin_quote,
    is_gremlin,
)
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import (
    SkydiveModule,
    apply_patch,
    metadata_patch,
)


class EdgeModule(SkydiveModule):
    argument_spec = dict(
        parent_node=dict(type="str", required=True),
        child_node=dict(type="str", required=True),
        relation_type=dict(type="str", required=True),
        host=dict(type="str", default=""),
        metadata=dict(type="dict", default={}),
        purge_metadata=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["present", "update", "absent"]),
    )

    def resolve(self, option, allow_missing):
        """Node ID of one end; ``None`` when it does not exist and ``allow_missing``."""
        value = self.params[option].strip()
        if is_gremlin(value):
            nodes = self.client.query_nodes(value)
            if len(nodes) == 1:
                return nodes[0]["ID"]
            if not nodes and allow_missing:
                return None
            names = ", ".join("%s (%s)" % ((n.get("Metadata") or {}).get("Name"), n.get("ID"))
                              for n in nodes[:5])
            raise SkydiveError("%s query %s selects %d nodes, it must select exactly one%s" % (
                option, value, len(nodes), (": " + names + (", ..." if len(nodes) > 5 else ""))
                if nodes else ""))
        if self.client.get("node", value) is None:
            if allow_missing:
                return None
            raise SkydiveError("%s: there is no node with ID %s" % (option, value))
        return value

    def execute(self):
        p = self.params
        absent = p["state"] == "absent"
        parent = self.resolve("parent_node", absent)
        child = self.resolve("child_node", absent)
        relation = p["relation_type"]
        self.result.update(parent=parent, child=child, id=None, UUID=None)
        if parent is None or child is None:
            self.before = self.after = {}
            self.result["edge"] = {}
            return

        current = self.find(parent, child, relation)
        ident = current["ID"] if current else edge_id(parent, child, relation)
        self.result.update(id=ident, UUID=ident)
        self.before = current or {}
        label = "%s edge %s -> %s" % (relation, parent, child)

        if absent:
            self.after = {}
            self.result["edge"] = {}
            if current:
                self.result["changed"] = True
                if not self.check_mode:
                    self.client.delete("edge", ident)
            return

        wanted = dict(p["metadata"])
        if wanted.get("RelationType", relation) != relation:
            raise SkydiveError("metadata.RelationType=%r contradicts relation_type=%r" % (
                wanted["RelationType"], relation))
        wanted["RelationType"] = relation

        if current is None:
            if p["state"] == "update":
                raise SkydiveError("%s does not exist, state=update needs an existing edge; use "
                                   "state=present to create it" % label)
            now = int(time.time() * 1000)
            body = {"ID": ident, "Parent": parent, "Child": child, "Metadata": wanted,
                    "Host": p["host"], "Revision": 1, "CreatedAt": now, "UpdatedAt": now}
            self.result["changed"] = True
            if self.check_mode:
                self.after = self.result["edge"] = body
                return
            created = self.client.create("edge", body)
            if not isinstance(created, dict):
                created = self.client.get("edge", ident) or body
            self.after = self.result["edge"] = created
            return

        metadata = current.get("Metadata") or {}
        ops = metadata_patch(metadata, wanted, p["purge_metadata"], protected=("RelationType",))
        if not ops:
            self.after = self.result["edge"] = current
            return
        self.result["changed"] = True
        if self.check_mode:
            self.after = self.result["edge"] = dict(current, Metadata=apply_patch(metadata, ops))
            return
        updated = self.client.patch("edge", ident, ops)
        if updated is None:
            self.result["changed"] = False
            updated = current
        self.after = self.result["edge"] = updated

    def find(self, parent, child, relation):
        """The edge parent -> child of this relation type, by its ID or by a lookup."""
        current = self.client.get("edge", edge_id(parent, child, relation))
        if current:
            return current
        query = "G.E().Has('Parent', %s, 'Child', %s, 'RelationType', %s)" % (
            gremlin_quote(parent), gremlin_quote(child), gremlin_quote(relation))
        edges = [e for e in (self.client.query(query) or []) if isinstance(e, dict) and e.get("ID")]
        edges.sort(key=lambda e: e["ID"])
        return edges[0] if edges else None


def main():
    EdgeModule().run()


if __name__ == "__main__":
    main()
