#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_node_rule
short_description: Manage Skydive node rules
version_added: 1.0.0
description:
  - Create or delete a node rule (C(/api/noderule)). A V(create) rule makes the analyzer add a
    node to the topology (and remove it with the rule); an V(update) rule adds metadata to
    every node its Gremlin query selects (and removes it with the rule).
  - A rule is identified by its name. The analyzer cannot update a rule, so when an option
    changes the rule is replaced (deleted, then created again).
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.resource
attributes:
  diff_mode:
    description: Shows the rule before and after.
options:
  name:
    description:
      - Name of the rule, its identity.
    type: str
    required: true
  description:
    description:
      - Description of the rule.
    type: str
    default: ''
  action:
    description:
      - V(create) adds a node built from O(node_name), O(node_type) and O(metadata).
      - V(update) adds O(metadata) to the nodes selected by O(query).
    type: str
    default: create
    choices: [create, update]
  node_name:
    description:
      - Name of the node to create (C(Metadata.Name)); with O(action=create).
    type: str
  node_type:
    description:
      - Type of the node to create (C(Metadata.Type)); with O(action=create).
    type: str
  metadata:
    description:
      - Metadata of the created node, or metadata added to the selected nodes. With
        O(action=update) it must not hold C(Name) or C(Type).
    type: dict
    default: {}
  query:
    description:
      - Gremlin query selecting the nodes to update; required with O(action=update).
    type: str
    default: ''
  state:
    description:
      - V(present) makes the rule exist with these options, V(absent) deletes it.
    type: str
    default: present
    choices: [present, absent]
seealso:
  - module: skydive.skydive.skydive_edge_rule
  - module: skydive.skydive.skydive_node
"""

EXAMPLES = r"""
- name: A fabric node for the core router
  skydive.skydive.skydive_node_rule:
    name: core-router
    action: create
    node_name: core1
    node_type: fabric
    metadata:
      Site: par1

- name: Tag the compute uplinks
  skydive.skydive.skydive_node_rule:
    name: tag-uplinks
    action: update
    query: "G.V().Has('Type', 'device', 'Name', 'eth1')"
    metadata:
      Role: uplink

- name: Remove the rule
  skydive.skydive.skydive_node_rule:
    name: tag-uplinks
    state: absent
"""

RETURN = r"""
rule:
  description: The rule as the analyzer stores it (empty after O(state=absent)).
  returned: always
  type: dict
  sample:
    UUID: 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d
    Name: tag-uplinks
    Description: ""
    Action: update
    Query: "G.V().Has('Type', 'device', 'Name', 'eth1')"
    Metadata: {Role: uplink}
id:
  description: UUID of the rule (null in check mode before creation or after deletion).
  returned: always
  type: str
  sample: 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d
drift:
  description: Options of the existing rule that differ from the task (it was replaced).
  returned: when an existing rule differs
  type: list
  elements: str
replaced:
  description: UUIDs of the rules deleted to be replaced.
  returned: when a rule was replaced
  type: list
  elements: str
deleted:
  description: UUIDs of the rules deleted with O(state=absent).
  returned: when O(state=absent) deleted something
  type: list
  elements: str
"""

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import SkydiveError
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import SkydiveModule


class NodeRuleModule(SkydiveModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        action=dict(type="str", default="create", choices=["create", "update"]),
        node_name=dict(type="str"),
        node_type=dict(type="str"),
        metadata=dict(type="dict", default={}),
        query=dict(type="str", default=""),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )

    def desired(self):
        p = self.params
        metadata = dict(p["metadata"])
        if p["action"] == "create":
            for option, key in (("node_name", "Name"), ("node_type", "Type")):
                if p[option] is not None:
                    if metadata.get(key, p[option]) != p[option]:
                        raise SkydiveError("metadata.%s=%r contradicts %s=%r" % (
                            key, metadata[key], option, p[option]))
                    metadata[key] = p[option]
                if not metadata.get(key):
                    raise SkydiveError("action=create needs the node's %s: set %s (or metadata.%s)"
                                       % (key, option, key))
        else:
            if not p["query"].strip():
                raise SkydiveError("action=update needs query, the Gremlin query selecting the "
                                   "nodes to update")
            if p["node_name"] is not None or p["node_type"] is not None or \
                    "Name" in metadata or "Type" in metadata:
                raise SkydiveError("action=update cannot change Name or Type of nodes: drop "
                                   "node_name, node_type and metadata.Name/Type")
            if not metadata:
                raise SkydiveError("action=update needs metadata to add to the selected nodes")
        return {"Name": p["name"], "Description": p["description"], "Action": p["action"],
                "Metadata": metadata, "Query": p["query"].strip()}

    def execute(self):
        p = self.params
        desired = self.desired() if p["state"] == "present" else {}

        def is_same(res):
            return res.get("Name") == p["name"]

        rule = self.ensure_resource("noderule", desired, is_same, p["state"],
                                    "node rule %r" % p["name"])
        self.result["rule"] = rule or {}
        self.result["id"] = (rule or {}).get("UUID")


def main():
    NodeRuleModule().run()


if __name__ == "__main__":
    main()
