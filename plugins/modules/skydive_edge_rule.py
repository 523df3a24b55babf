#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_edge_rule
short_description: Manage Skydive edge rules
version_added: 1.0.0
description:
  - Create or delete an edge rule (C(/api/edgerule)); the analyzer links the first node selected
    by O(src) to the first node selected by O(dst), and removes the link with the rule.
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
  src:
    description:
      - Gremlin query selecting the parent node. Required with O(state=present).
    type: str
  dst:
    description:
      - Gremlin query selecting the child node. Required with O(state=present).
    type: str
  relation_type:
    description:
      - Relation of the link (C(Metadata.RelationType)), for example C(layer2) or C(ownership).
        Required with O(state=present).
    type: str
  metadata:
    description:
      - Metadata of the link besides C(RelationType).
    type: dict
    default: {}
  state:
    description:
      - V(present) makes the rule exist with these options, V(absent) deletes it.
    type: str
    default: present
    choices: [present, absent]
seealso:
  - module: skydive.skydive.skydive_node_rule
  - module: skydive.skydive.skydive_edge
"""

EXAMPLES = r"""
- name: Link the core router to the uplink of compute-0
  skydive.skydive.skydive_edge_rule:
    name: core1-compute-0
    src: "G.V().Has('Name', 'core1', 'Type', 'fabric')"
    dst: "G.V().Has('Host', 'compute-0', 'Name', 'eth1')"
    relation_type: layer2
    metadata:
      Type: fabric

- name: Remove it
  skydive.skydive.skydive_edge_rule:
    name: core1-compute-0
    state: absent
"""

RETURN = r"""
rule:
  description: The rule as the analyzer stores it (empty after O(state=absent)).
  returned: always
  type: dict
  sample:
    UUID: 1b2c3d4e-5f60-4718-293a-4b5c6d7e8f90
    Name: core1-compute-0
    Description: ""
    Src: "G.V().Has('Name', 'core1', 'Type', 'fabric')"
    Dst: "G.V().Has('Host', 'compute-0', 'Name', 'eth1')"
    Metadata: {RelationType: layer2, Type: fabric}
id:
  description: UUID of the rule (null in check mode before creation or after deletion).
  returned: always
  type: str
  sample: 1b2c3d4e-5f60-4718-293a-4b5c6d7e8f90
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


class EdgeRuleModule(SkydiveModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        src=dict(type="str"),
        dst=dict(type="str"),
        relation_type=dict(type="str"),
        metadata=dict(type="dict", default={}),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module_kwargs = dict(required_if=[["state", "present", ["src", "dst", "relation_type"]]])

    def execute(self):
        p = self.params
        desired = {}
        if p["state"] == "present":
            metadata = dict(p["metadata"])
            if metadata.get("RelationType", p["relation_type"]) != p["relation_type"]:
                raise SkydiveError("metadata.RelationType=%r contradicts relation_type=%r" % (
                    metadata["RelationType"], p["relation_type"]))
            metadata["RelationType"] = p["relation_type"]
            desired = {"Name": p["name"], "Description": p["description"],
                       "Src": p["src"].strip(), "Dst": p["dst"].strip(), "Metadata": metadata}

        def is_same(res):
            return res.get("Name") == p["name"]

        rule = self.ensure_resource("edgerule", desired, is_same, p["state"],
                                    "edge rule %r" % p["name"])
        self.result["rule"] = rule or {}
        self.result["id"] = (rule or {}).get("UUID")


def main():
    EdgeRuleModule().run()


if __name__ == "__main__":
    main()
