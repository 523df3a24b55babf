#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_topology_diff
short_description: What changed in the Skydive topology between two times
version_added: 1.0.0
description:
  - Asks the analyzer (C(POST /api/topology/diff)) for the nodes and edges added, removed and
    the metadata keys changed (old and new values) between two times, from its history store.
  - Changes nothing, so it runs in check mode too.
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.read_only
options:
  from:
    description:
      - Start time (RFC3339, RFC1123, seconds or ms since the epoch, or a duration from now such
        as C(-10m)).
    type: str
    required: true
  to:
    description: End time (same forms); the live topology when omitted.
    type: str
  gremlin:
    description: Compare only what this query returns (a graph, nodes or edges); the whole graph by default.
    type: str
  ignore:
    description:
      - Metadata keys not compared (with everything below them); by default the metric counters.
    type: list
    elements: str
  fail_on_change:
    description: Fail when anything changed.
    type: bool
    default: false
seealso:
  - module: skydive.skydive.skydive_audit
"""

EXAMPLES = r"""
- name: What the upgrade changed on the computes
  skydive.skydive.skydive_topology_diff:
    from: "{{ upgrade_start }}"
    gremlin: "G.V().Has('Type', 'host', 'Name', Regex('compute-.*')).Descendants(100).SubGraph()"
  register: changes
"""

RETURN = r"""
diff:
  description: C(Nodes) and C(Edges), each with C(Added), C(Removed) and C(Changed) (with C(Changes) old -> new).
  returned: always
  type: dict
changes:
  description: Number of elements added, removed or changed.
  returned: always
  type: int
  sample: 1
"""

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import SkydiveError
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import SkydiveModule


def count_changes(diff):
    return sum(len(diff[part][key]) for part in ("Nodes", "Edges") for key in ("Added", "Removed", "Changed"))


class TopologyDiffModule(SkydiveModule):
    argument_spec = {
        "from": dict(type="str", required=True),
        "to": dict(type="str"),
        "gremlin": dict(type="str"),
        "ignore": dict(type="list", elements="str"),
        "fail_on_change": dict(type="bool", default=False),
    }

    def execute(self):
        p = self.params
        body = {"From": p["from"], "To": p["to"], "GremlinFilter": p["gremlin"]}
        if p["ignore"] is not None:
            body["Ignore"] = p["ignore"]
        dummy, diff = self.client.request("POST", "/api/topology/diff", data=body, what="the topology diff")
        changes = count_changes(diff)
        self.result.update(diff=diff, changes=changes)
        if p["fail_on_change"] and changes:
            raise SkydiveError("the topology changed: %d elements added, removed or changed" % changes)


def main():
    TopologyDiffModule().run()


if __name__ == "__main__":
    main()
