#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_alert
short_description: Manage Skydive alerts
version_added: 1.0.0
description:
  - Create or delete an alert (C(/api/alert)), a Gremlin query the analyzer
    evaluates on every topology change or periodically, and that fires when its result is not
    empty, notifying websocket subscribers and optionally a webhook or a script.
  - An alert is identified by its name. The analyzer cannot update an alert, so when an option
    changes the alert is replaced (deleted, then created again).
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.resource
attributes:
  diff_mode:
    description: Shows the alert before and after.
options:
  name:
    description:
      - Name of the alert, its identity.
    type: str
    required: true
  description:
    description:
      - Description of the alert.
    type: str
    default: ''
  expression:
    description:
      - Gremlin query that fires the alert when its result is not empty, for example
        C(G.V().Has('Type', 'device', 'State', 'DOWN')). Required with O(state=present).
      - Upstream Skydive also took JavaScript expressions; this analyzer refuses them (400).
    type: str
  trigger:
    description:
      - When to evaluate, V(graph) on every topology change or C(duration:<Go duration>)
        (for example C(duration:10s)) periodically.
    type: str
    default: graph
  action:
    description:
      - What to do when it fires besides the websocket notification, C(http://...) or
        C(https://...) (webhook POST) or C(file:///path/to/script). Empty does nothing else.
    type: str
    default: ''
  state:
    description:
      - V(present) makes the alert exist with these options, V(absent) deletes it.
    type: str
    default: present
    choices: [present, absent]
seealso:
  - module: skydive.skydive.skydive_query
"""

EXAMPLES = r"""
- name: Alert when an interface of the fabric goes down
  skydive.skydive.skydive_alert:
    name: fabric-link-down
    expression: "G.V().Has('Type', 'device', 'Probe', 'fabric', 'State', 'DOWN')"
    action: https://hooks.example.com/skydive

- name: Check every 10 s that br-int exists on each compute
  skydive.skydive.skydive_alert:
    name: br-int-missing
    expression: "G.V().Has('Type', 'host').Out('Name', 'br-int').Count()"
    trigger: duration:10s

- name: Remove the alert
  skydive.skydive.skydive_alert:
    name: fabric-link-down
    state: absent
"""

RETURN = r"""
alert:
  description: The alert as the analyzer stores it (empty after O(state=absent)).
  returned: always
  type: dict
  sample:
    UUID: 0e2a4d1c-1f3b-4a5c-6d7e-8f9012345678
    Name: fabric-link-down
    Expression: "G.V().Has('Type', 'device', 'Probe', 'fabric', 'State', 'DOWN')"
    Trigger: graph
    Action: https://hooks.example.com/skydive
    CreateTime: "2024-01-01T00:00:00.000000000Z"
id:
  description: UUID of the alert (null in check mode before creation or after deletion).
  returned: always
  type: str
  sample: 0e2a4d1c-1f3b-4a5c-6d7e-8f9012345678
drift:
  description: Options of the existing alert that differ from the task (it was replaced).
  returned: when an existing alert differs
  type: list
  elements: str
replaced:
  description: UUIDs of the alerts deleted to be replaced.
  returned: when an alert was replaced
  type: list
  elements: str
deleted:
  description: UUIDs of the alerts deleted with O(state=absent).
  returned: when O(state=absent) deleted something
  type: list
  elements: str
"""

import re

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import SkydiveError
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import SkydiveModule

TRIGGER_RE = re.compile(r"^(graph|duration:.+)$")


class AlertModule(SkydiveModule):
    volatile_fields = ("UUID", "CreateTime")
    argument_spec = dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        expression=dict(type="str"),
        trigger=dict(type="str", default="graph"),
        action=dict(type="str", default=""),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module_kwargs = dict(required_if=[["state", "present", ["expression"]]])

    def execute(self):
        p = self.params
        desired = {}
        if p["state"] == "present":
            if not p["expression"].strip():
                raise SkydiveError("expression must not be empty")
            if not TRIGGER_RE.match(p["trigger"]):
                raise SkydiveError("trigger %r: use 'graph' or 'duration:<Go duration>' such as "
                                   "'duration:10s'" % p["trigger"])
            desired = {"Name": p["name"], "Description": p["description"],
                       "Expression": p["expression"].strip(), "Trigger": p["trigger"],
                       "Action": p["action"]}

        def is_same(res):
            return res.get("Name") == p["name"]

        alert = self.ensure_resource("alert", desired, is_same, p["state"], "alert %r" % p["name"])
        self.result["alert"] = alert or {}
        self.result["id"] = (alert or {}).get("UUID")


def main():
    AlertModule().run()


if __name__ == "__main__":
    main()
