#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_audit
short_description: Audit the Skydive topology against rule files
version_added: 1.0.0
description:
  - Runs audit rules (Gremlin queries with an expectation, see the collection's docs/audits.md)
    on the analyzer (C(POST /api/audit)), over one snapshot of the live topology or of the
    topology at a past time, and returns the report.
  - Fails when a rule of severity O(fail_on) or above fails, like C(skydive client audit) exits 1.
  - Changes nothing, so it runs in check mode too.
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.read_only
options:
  rules_files:
    description:
      - YAML rule files (C(rules:) lists) on the host running the module. Reading them needs
        PyYAML there (Ansible's controller has it); otherwise give O(rules).
    type: list
    elements: path
    default: []
  rules:
    description:
      - Rules given inline (the C(rules:) list of a rule file), audited as one more file named
        O(rules_name).
    type: list
    elements: dict
    default: []
  rules_name:
    description: Name of the inline O(rules) in the report.
    type: str
    default: inline
  builtin:
    description: Also run the built-in pack.
    type: bool
    default: false
  at:
    description:
      - Audit the topology as it was at that time (RFC3339, RFC1123, seconds or ms since the
        epoch, or a duration from now such as C(-1h)); needs the analyzer's history store.
    type: str
  scope:
    description: Audit only what this Gremlin query returns (a graph or nodes).
    type: str
  expected_agents:
    description: Hosts whose agent must be connected (the built-in rule C(expected-agents-connected)).
    type: list
    elements: str
    default: []
  fail_on:
    description: Lowest severity whose failure makes the task fail.
    type: str
    choices: [error, warning, info]
    default: error
  formats:
    description: Reports to render into RV(reports), besides the JSON RV(report).
    type: list
    elements: str
    choices: [table, junit, sarif]
    default: []
seealso:
  - module: skydive.skydive.skydive_topology_diff
"""

EXAMPLES = r"""
- name: Audit with the built-in pack and the site's rules
  skydive.skydive.skydive_audit:
    builtin: true
    rules_files: [rules/site.yaml]
    expected_agents: "{{ groups['agents'] }}"
    formats: [junit, sarif]
  delegate_to: localhost
  register: audit
  ignore_errors: true

- name: Keep the JUnit report for the CI
  ansible.builtin.copy:
    content: "{{ audit.reports.junit }}"
    dest: reports/skydive-audit.xml
  delegate_to: localhost

- name: Nothing but the MTUs changed during the upgrade
  skydive.skydive.skydive_audit:
    rules:
      - name: only-mtu-changed
        changed_since: "{{ upgrade_start }}"
        query: "G.V().Has('Type', 'veth')"
        ignore: [MTU, Metric, LastUpdateMetric]
"""

RETURN = r"""
report:
  description: The audit report (Summary, Files with each rule's Status and Violations).
  returned: success and when the threshold is crossed
  type: dict
summary:
  description: Counts of rules passed, failed, skipped, errors and violations.
  returned: success and when the threshold is crossed
  type: dict
  sample: {Rules: 16, Passed: 9, Failed: 1, Skipped: 6, Errors: 0, Violations: 2}
reports:
  description: The reports asked in O(formats), as text, keyed by format.
  returned: success and when the threshold is crossed
  type: dict
"""

import traceback

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import SkydiveError
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import SkydiveModule

try:
    import yaml
    HAS_YAML = True
    YAML_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_ERROR = traceback.format_exc()


def rule_lines(text):
    """rule name -> line of its entry (for the SARIF locations)."""
    lines = {}
    root = yaml.compose(text)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "rules" and isinstance(value, yaml.SequenceNode):
                for item in value.value:
                    if isinstance(item, yaml.MappingNode):
                        for k, v in item.value:
                            if k.value == "name" and isinstance(v, yaml.ScalarNode):
                                lines[v.value] = item.start_mark.line + 1
    return lines


def read_rules_file(path):
    if not HAS_YAML:
        raise SkydiveError("reading rules_files needs PyYAML on the host running the module; "
                           "give the rules inline (rules: \"{{ lookup('file', path) | from_yaml }}\")")
    try:
        with open(path) as fh:
            text = fh.read()
    except (IOError, OSError) as exc:
        raise SkydiveError("cannot read the rule file %s: %s" % (path, exc))
    try:
        return {"Name": path, "Rules": yaml.safe_load(text), "Lines": rule_lines(text)}
    except yaml.YAMLError as exc:
        raise SkydiveError("%s: not YAML: %s" % (path, str(exc).replace("\n", " ")))


class AuditModule(SkydiveModule):
    argument_spec = dict(
        rules_files=dict(type="list", elements="path", default=[]),
        rules=dict(type="list", elements="dict", default=[]),
        rules_name=dict(type="str", default="inline"),
        builtin=dict(type="bool", default=False),
        at=dict(type="str"),
        scope=dict(type="str"),
        expected_agents=dict(type="list", elements="str", default=[]),
        fail_on=dict(type="str", choices=["error", "warning", "info"], default="error"),
        formats=dict(type="list", elements="str", choices=["table", "junit", "sarif"], default=[]),
    )

    def execute(self):
        p = self.params
        files = [read_rules_file(path) for path in p["rules_files"]]
        if p["rules"]:
            files.append({"Name": p["rules_name"], "Rules": {"rules": p["rules"]}})
        if not files and not p["builtin"]:
            raise SkydiveError("no rules: give rules_files, rules or builtin=true")
        body = {"Files": files, "Builtin": p["builtin"], "At": p["at"], "Scope": p["scope"],
                "FailOn": p["fail_on"], "ExpectedAgents": p["expected_agents"], "Formats": p["formats"]}
        dummy, report = self.client.request("POST", "/api/audit", data=body, what="the audit")
        rendered = report.pop("Rendered", {}) or {}
        self.result.update(report=report, summary=report["Summary"], reports=rendered)
        if report.get("Failed"):
            s = report["Summary"]
            raise SkydiveError("audit failed: %d of %d rules failed (%d violations), %d could not run; fail_on=%s" % (
                s["Failed"], s["Rules"], s["Violations"], s["Errors"], p["fail_on"]))


def main():
    AuditModule().run()


if __name__ == "__main__":
    main()
