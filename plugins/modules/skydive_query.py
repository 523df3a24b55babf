#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_query
short_description: Run a Gremlin query on the Skydive topology
version_added: 1.0.0
description:
  - Run a Gremlin query on the analyzer (C(POST /api/topology)) and return its result, plus
    the nodes and edges it holds. Changes nothing, so it also runs in check mode.
  - Useful to assert on the topology in a playbook, for example to fail a pipeline when an
    interface is down or a flow is missing.
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.read_only
options:
  query:
    description:
      - The Gremlin query, for example C(G.V().Has('Type', 'host')) or
        C(G.Flows().Has('Network', '10.0.0.1').Count()).
    type: str
    required: true
  fail_on_empty:
    description:
      - Fail when the result is empty (no element, a count of 0, null).
    type: bool
    default: false
seealso:
  - plugin: skydive.skydive.skydive
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: All hosts known to the analyzer
  skydive.skydive.skydive_query:
    query: "G.V().Has('Type', 'host')"
  register: hosts

- name: Fail when an uplink is down
  skydive.skydive.skydive_query:
    query: "G.V().Has('Name', 'eth1', 'State', 'DOWN')"
  register: down
  failed_when: down.nodes | length > 0

- name: Flows of the test capture must exist
  skydive.skydive.skydive_query:
    query: "G.Flows().Has('CaptureID', '{{ capture.id }}')"
    fail_on_empty: true
"""

RETURN = r"""
result:
  description: The query result as the analyzer returns it (list of nodes, edges or flows, a
    number for C(Count()), a list holding one C({Nodes, Edges}) graph for C(G) or C(SubGraph())).
  returned: always
  type: raw
  sample: [{ID: 8e3d2f4c-6f0e-5b1a-9e8d-3b1f2c4d5e6f, Metadata: {Name: compute-0, Type: host}}]
nodes:
  description: The nodes found in the result, deduplicated.
  returned: always
  type: list
  elements: dict
edges:
  description: The edges found in the result, deduplicated.
  returned: always
  type: list
  elements: dict
count:
  description: Number of items in the result, or the number itself for C(Count()).
  returned: always
  type: int
  sample: 1
"""

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    SkydiveError,
    split_elements,
)
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import SkydiveModule


def result_count(result):
    if result is None:
        return 0
    if isinstance(result, bool):
        return int(result)
    if isinstance(result, (int, float)):
        return int(result)
    if isinstance(result, list):
        if len(result) == 1 and isinstance(result[0], dict) and "Nodes" in result[0] and "ID" not in result[0]:
            graph = result[0]
            return len(graph.get("Nodes") or []) + len(graph.get("Edges") or [])
        return len(result)
    if isinstance(result, dict):
        return len(result)
    return 1


class QueryModule(SkydiveModule):
    argument_spec = dict(
        query=dict(type="str", required=True),
        fail_on_empty=dict(type="bool", default=False),
    )

    def execute(self):
        query = self.params["query"].strip()
        result = self.client.query(query)
        nodes, edges = split_elements(result)
        count = result_count(result)
        self.result.update(result=result, nodes=nodes, edges=edges, count=count)
        if self.params["fail_on_empty"] and count == 0:
            raise SkydiveError("query %s returned nothing" % query)


def main():
    QueryModule().run()


if __name__ == "__main__":
    main()
