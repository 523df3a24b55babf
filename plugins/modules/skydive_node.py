#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_node
short_description: Manage static nodes of the Skydive topology
version_added: 1.0.0
description:
  - Create, update or delete a node of the Skydive topology through the analyzer's REST API
    (C(/api/node)), for example a top-of-rack switch or a port of it that no agent reports.
  - The node ID is deterministic, as with the original C(skydive_node) module,
    UUIDv5 (OID namespace) of O(seed), or of C(<name>:<node_type>) without a seed. Re-running
    the task therefore finds the same node.
  - Metadata is merged key by key with what the node holds (C(PATCH) with a JSON patch); keys
    not in O(metadata) are kept unless O(purge_metadata) is set.
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.graph
attributes:
  diff_mode:
    description: Shows the node before and after.
options:
  name:
    description:
      - Name of the node (C(Metadata.Name)).
    type: str
    required: true
  node_type:
    description:
      - Type of the node (C(Metadata.Type)), for example C(fabric), C(switch) or C(device).
      - The analyzer checks the node against its schema (C(Type) and C(Name) must not be empty,
        a C(netns) needs C(Path), an C(ovsport) needs C(UUID)).
    type: str
    required: true
  host:
    description:
      - C(Host) of the node, the agent it belongs to; empty for nodes no agent owns. Only set at
        creation, the API cannot change the host of an existing node.
    type: str
    default: ''
  seed:
    description:
      - Seed of the node ID instead of C(<name>:<node_type>).
    type: str
    default: ''
  metadata:
    description:
      - Metadata of the node besides C(Name) and C(Type). Top-level keys are set (a nested
        dictionary replaces the value of its key as a whole).
    type: dict
    default: {}
  purge_metadata:
    description:
      - Remove the metadata keys the node has and O(metadata) does not (C(Name), C(Type) and
        C(TID) are always kept).
    type: bool
    default: false
  state:
    description:
      - V(present) creates the node if needed and merges O(metadata).
      - V(update) only merges O(metadata) into an existing node and fails if it does not exist.
      - V(absent) deletes the node and, with it, its edges.
    type: str
    default: present
    choices: [present, update, absent]
seealso:
  - module: skydive.skydive.skydive_edge
"""

EXAMPLES = r"""
- name: Declare a top-of-rack switch
  skydive.skydive.skydive_node:
    name: tor1
    node_type: switch
    metadata:
      Model: QFX5100
      Rack: r12
  register: tor1

- name: Declare one of its ports
  skydive.skydive.skydive_node:
    name: tor1-port1
    node_type: device
    seed: tor1/port1
    metadata:
      MTU: 9000

- name: Link them
  skydive.skydive.skydive_edge:
    parent_node: "{{ tor1.node.ID }}"
    child_node: "G.V().Has('Name', 'tor1-port1', 'Type', 'device')"
    relation_type: ownership

- name: Remove the switch (and its edges)
  skydive.skydive.skydive_node:
    name: tor1
    node_type: switch
    state: absent
"""

RETURN = r"""
node:
  description: The node as the analyzer holds it (empty after O(state=absent)).
  returned: always
  type: dict
  sample:
    ID: 0f9b4a57-8a4f-5d5f-9a3c-0e6a3b1f2d3c
    Metadata: {Name: tor1, Type: switch, Model: QFX5100}
    Host: ""
    Origin: api.analyzer-0
    CreatedAt: 1700000000000
    UpdatedAt: 1700000000000
    DeletedAt: null
    Revision: 1
id:
  description: ID of the node.
  returned: always
  type: str
  sample: 0f9b4a57-8a4f-5d5f-9a3c-0e6a3b1f2d3c
UUID:
  description: ID of the node, under the name the original module used.
  returned: always
  type: str
  sample: 0f9b4a57-8a4f-5d5f-9a3c-0e6a3b1f2d3c
"""

import time

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    SkydiveError,
    node_id,
)
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import (
    SkydiveModule,
    apply_patch,
    metadata_patch,
)


class NodeModule(SkydiveModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        node_type=dict(type="str", required=True),
        host=dict(type="str", default=""),
        seed=dict(type="str", default=""),
        metadata=dict(type="dict", default={}),
        purge_metadata=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["present", "update", "absent"]),
    )

    def execute(self):
        p = self.params
        ident = node_id(p["name"], p["node_type"], p["seed"])
        self.result.update(id=ident, UUID=ident)
        current = self.client.get("node", ident)
        self.before = current or {}
        label = "node %r (type %r, ID %s)" % (p["name"], p["node_type"], ident)

        if p["state"] == "absent":
            self.after = {}
            self.result["node"] = {}
            if current:
                self.result["changed"] = True
                if not self.check_mode:
                    self.client.delete("node", ident)
            return

        wanted = dict(p["metadata"])
        for key in ("Name", "Type"):
            if key in wanted and wanted[key] != p[key.lower() if key == "Name" else "node_type"]:
                raise SkydiveError("metadata.%s=%r contradicts %s=%r" % (
                    key, wanted[key], "name" if key == "Name" else "node_type",
                    p["name"] if key == "Name" else p["node_type"]))
        wanted["Name"] = p["name"]
        wanted["Type"] = p["node_type"]

        if current is None:
            if p["state"] == "update":
                raise SkydiveError("%s does not exist, state=update needs an existing node; use "
                                   "state=present to create it" % label)
            now = int(time.time() * 1000)
            body = {"ID": ident, "Metadata": wanted, "Host": p["host"], "Revision": 1,
                    "CreatedAt": now, "UpdatedAt": now}
            self.result["changed"] = True
            if self.check_mode:
                self.after = body
                self.result["node"] = body
                return
            created = self.client.create("node", body)
            if not isinstance(created, dict):
                created = self.client.get("node", ident) or body
            self.after = created
            self.result["node"] = created
            return

        metadata = current.get("Metadata") or {}
        if (metadata.get("Name"), metadata.get("Type")) != (p["name"], p["node_type"]):
            raise SkydiveError(
                "%s exists with Name %r and Type %r (a seed shared with another node?); Name and "
                "Type of a node cannot be changed" % (label, metadata.get("Name"), metadata.get("Type")))
        if (current.get("Host") or "") != p["host"]:
            self.module.warn("%s belongs to host %r, not %r: the API cannot change the host of a "
                             "node; delete it (state=absent) and create it again to move it"
                             % (label, current.get("Host") or "", p["host"]))
        ops = metadata_patch(metadata, wanted, p["purge_metadata"])
        if not ops:
            self.after = current
            self.result["node"] = current
            return
        self.result["changed"] = True
        if self.check_mode:
            self.after = dict(current, Metadata=apply_patch(metadata, ops))
            self.result["node"] = self.after
            return
        updated = self.client.patch("node", ident, ops)
        if updated is None:  # 304: the analyzer found nothing to change after all
            self.result["changed"] = False
            updated = current
        self.after = updated
        self.result["node"] = updated


def main():
    NodeModule().run()


if __name__ == "__main__":
    main()
