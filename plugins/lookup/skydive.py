# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: skydive
short_description: Run Gremlin queries on a Skydive analyzer
version_added: 1.0.0
description:
  - Runs each term as a Gremlin query on the analyzer (C(POST /api/topology)) and returns the
    results, one per term.
  - With C(lookup()) and a single query the result itself comes back (a list of nodes, edges or
    flows, a number for C(Count())...); C(query()) always gives a list of results.
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive.plugins
options:
  _terms:
    description:
      - Gremlin queries, for example C(G.V().Has('Type', 'host')).
    type: list
    elements: str
    required: false
  filter:
    description:
      - Query given the way the original C(skydive) lookup took it, a dictionary whose
        C(query) key (or single value) is the Gremlin query. Runs after the terms.
    type: dict
  provider:
    description:
      - Connection settings as one dictionary (keys C(endpoint), C(username), C(password),
        C(ssl), C(insecure), C(validate_certs), C(ca_path), C(timeout)), as the original lookup
        took them. They win over the default and environment values of the options.
    type: dict
  fail_on_empty:
    description:
      - Fail when a query result is empty (no element, a count of 0, null).
    type: bool
    default: false
notes:
  - Runs on the controller.
"""

EXAMPLES = r"""
- name: Names of all hosts
  ansible.builtin.debug:
    msg: "{{ lookup('skydive.skydive.skydive', \"G.V().Has('Type', 'host').Values('Name')\") }}"

- name: Loop over the devices of compute-0 that are down
  ansible.builtin.debug:
    msg: "{{ item.Metadata.Name }} is down"
  loop: "{{ lookup('skydive.skydive.skydive', query, analyzer='analyzer.example.com:8082') }}"
  vars:
    query: "G.V().Has('Host', 'compute-0', 'Type', 'device', 'State', 'DOWN')"

- name: Original style, with a filter and a provider
  ansible.builtin.debug:
    msg: "{{ lookup('skydive.skydive.skydive', filter={'query': \"G.V().Has('Name', 'eth0')\"},
             provider={'endpoint': 'localhost:8082', 'username': 'admin', 'password': 'secret'}) }}"

- name: Several queries at once
  ansible.builtin.set_fact:
    counts: "{{ query('skydive.skydive.skydive', \"G.V().Count()\", \"G.E().Count()\") }}"
"""

RETURN = r"""
_raw:
  description:
    - One result per query, as the analyzer returns it (list of nodes, edges or flows, a
      number, a list holding one C({Nodes, Edges}) graph for C(G) or C(SubGraph())).
  type: list
  elements: raw
"""

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    SkydiveClient,
    SkydiveError,
    resolve_connection,
)


def _is_empty(result):
    if result is None:
        return True
    if isinstance(result, bool):
        return not result
    if isinstance(result, (int, float)):
        return result == 0
    if isinstance(result, list) and len(result) == 1 and isinstance(result[0], dict) \
            and "Nodes" in result[0] and "ID" not in result[0]:
        return not (result[0].get("Nodes") or result[0].get("Edges"))
    return len(result) == 0 if isinstance(result, (list, dict, str)) else False


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        queries = list(terms or [])
        filt = self.get_option("filter")
        if filt:
            if "query" in filt:
                queries.append(filt["query"])
            elif len(filt) == 1:
                queries.append(list(filt.values())[0])
            else:
                raise AnsibleLookupError("skydive lookup: filter must have a 'query' key, got keys %s"
                                         % ", ".join(sorted(filt)))
        if not queries:
            raise AnsibleLookupError("skydive lookup: give at least one Gremlin query (as a term or "
                                     "filter={'query': ...})")
        flat = dict((k, self.get_option(k)) for k in ("analyzer", "username", "password", "ssl",
                                                      "validate_certs", "ca_path", "timeout"))
        provider = self.get_option("provider") or {}
        unknown = set(provider) - set(["endpoint", "analyzer", "username", "password", "ssl",
                                       "insecure", "validate_certs", "ca_path", "timeout"])
        if unknown:
            raise AnsibleLookupError("skydive lookup: unknown provider key(s) %s" % ", ".join(sorted(unknown)))
        try:
            # provider wins over the option defaults and environment, as in the original lookup
            merged = dict(flat, insecure=None)
            if provider.get("insecure") is not None or provider.get("validate_certs") is not None:
                merged["validate_certs"] = None
            for key, value in provider.items():
                if value is not None:
                    merged["analyzer" if key == "endpoint" else key] = value
            settings = resolve_connection(merged, None, environ={})
            client = SkydiveClient(**settings)
            results = []
            for query in queries:
                if not isinstance(query, str) or not query.strip():
                    raise AnsibleLookupError("skydive lookup: each query must be a non-empty string, got %r" % (query,))
                result = client.query(query)
                if self.get_option("fail_on_empty") and _is_empty(result):
                    raise AnsibleLookupError("skydive lookup: query %s returned nothing" % query)
                results.append(result)
            return results
        except SkydiveError as exc:
            raise AnsibleLookupError("skydive lookup: %s" % exc)
        except AnsibleError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise AnsibleLookupError("skydive lookup: unexpected error: %s" % to_native(exc))
