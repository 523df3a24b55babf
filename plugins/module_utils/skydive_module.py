# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base class of the skydive.skydive modules.

It adds the connection options (flat options and the upstream ``provider`` dict), builds the
REST client, turns :class:`SkydiveError` into ``fail_json`` with a clear message, and holds the
desired-state logic shared by the API resources (captures, alerts, rules, injections): compare
what is wanted with what exists and, as those resources cannot be updated in place (upstream
answers PATCH with 400), replace them on drift (delete, then create).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    SkydiveClient,
    SkydiveError,
    json_pointer_escape,
    resolve_connection,
)

PROVIDER_OPTIONS = dict(
    endpoint=dict(type="str", aliases=["analyzer"]),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    ssl=dict(type="bool"),
    insecure=dict(type="bool"),
    validate_certs=dict(type="bool"),
    ca_path=dict(type="path"),
    timeout=dict(type="int"),
)

CONNECTION_ARGUMENT_SPEC = dict(
    analyzer=dict(type="str", aliases=["endpoint"]),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    ssl=dict(type="bool"),
    validate_certs=dict(type="bool"),
    insecure=dict(type="bool"),
    ca_path=dict(type="path"),
    timeout=dict(type="int"),
    provider=dict(type="dict", options=PROVIDER_OPTIONS),
)


def _is_empty(value):
    return value is None or value == "" or value == [] or value == {} or value is False or (
        not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0)


def values_equal(current, wanted):
    """Compare one field the way the analyzer stores it: empty values (omitted by the analyzer's
    ``omitempty`` JSON) are equal to each other; numbers compare by value."""
    if _is_empty(current) and _is_empty(wanted):
        return True
    if isinstance(wanted, dict) and isinstance(current, dict):
        keys = set(wanted) | set(current)
        return all(values_equal(current.get(k), wanted.get(k)) for k in keys)
    if isinstance(wanted, list) and isinstance(current, list):
        return len(wanted) == len(current) and all(
            values_equal(c, w) for c, w in zip(current, wanted))
    if isinstance(wanted, bool) or isinstance(current, bool):
        return current is wanted
    if isinstance(wanted, (int, float)) and isinstance(current, (int, float)):
        return float(current) == float(wanted)
    return current == wanted


def differing_fields(current, wanted):
    """Names of the fields of ``wanted`` whose value differs in ``current``."""
    return sorted(k for k in wanted if not values_equal((current or {}).get(k), wanted[k]))


def strict_equal(current, wanted):
    """Equality of metadata values as JSON: types matter (``true`` is not ``1``, ``""`` is
    not ``null``) except that ``1`` equals ``1.0`` (the analyzer turns integral floats into
    integers)."""
    if isinstance(wanted, bool) or isinstance(current, bool):
        return isinstance(wanted, bool) and isinstance(current, bool) and wanted == current
    if isinstance(wanted, (int, float)) and isinstance(current, (int, float)):
        return float(current) == float(wanted)
    if isinstance(wanted, dict) and isinstance(current, dict):
        return set(wanted) == set(current) and all(strict_equal(current[k], wanted[k]) for k in wanted)
    if isinstance(wanted, (list, tuple)) and isinstance(current, (list, tuple)):
        return len(wanted) == len(current) and all(strict_equal(c, w) for c, w in zip(current, wanted))
    return type(current) is type(wanted) and current == wanted


NODE_PROTECTED_KEYS = ("Name", "Type", "TID")


def metadata_patch(current, wanted, purge, protected=NODE_PROTECTED_KEYS):
    """RFC 6902 operations merging ``wanted`` metadata into ``current`` (top-level keys).

    With ``purge`` the keys of ``current`` missing from ``wanted`` are removed, except the
    ``protected`` ones (which are never touched).
    """
    ops = []
    for key in sorted(wanted):
        if key in protected:
            continue
        if key not in current or not strict_equal(current[key], wanted[key]):
            ops.append({"op": "add", "path": "/Metadata/" + json_pointer_escape(key),
                        "value": wanted[key]})
    if purge:
        for key in sorted(current):
            if key not in wanted and key not in protected:
                ops.append({"op": "remove", "path": "/Metadata/" + json_pointer_escape(key)})
    return ops


def apply_patch(metadata, ops):
    """``metadata`` with ``ops`` (from :func:`metadata_patch`) applied; for check mode."""
    result = dict(metadata)
    for op in ops:
        key = op["path"][len("/Metadata/"):].replace("~1", "/").replace("~0", "~")
        if op["op"] == "remove":
            result.pop(key, None)
        else:
            result[key] = op["value"]
    return result


def strip_volatile(resource, volatile=("UUID",)):
    """``resource`` without the fields the analyzer computes or stamps (for diffs)."""
    if resource is None:
        return {}
    return dict((k, v) for k, v in resource.items() if k not in volatile)


class SkydiveModule(object):
    """Wraps an AnsibleModule with the Skydive connection and state helpers.

    Subclasses set ``argument_spec`` (their own options) and implement :meth:`execute`, which
    fills ``self.result`` (``changed`` is managed here) and may raise :class:`SkydiveError`.
    """

    argument_spec = {}
    module_kwargs = {}
    # Fields of the API resource the analyzer computes or stamps: left out of diffs.
    volatile_fields = ("UUID",)

    def __init__(self):
        spec = copy.deepcopy(CONNECTION_ARGUMENT_SPEC)
        spec.update(copy.deepcopy(self.argument_spec))
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                                    **self.module_kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.result = dict(changed=False)
        self.before = None
        self.after = None
        self._client = None

    # -- connection -------------------------------------------------------------------------

    def connection_settings(self):
        flat = dict((k, self.params.get(k)) for k in CONNECTION_ARGUMENT_SPEC if k != "provider")
        return resolve_connection(flat, self.params.get("provider"))

    @property
    def client(self):
        if self._client is None:
            self._client = SkydiveClient(**self.connection_settings())
        return self._client

    # -- running ----------------------------------------------------------------------------

    def execute(self):
        raise NotImplementedError()

    def run(self):
        try:
            self.execute()
        except SkydiveError as exc:
            self.fail(exc.msg, **exc.to_dict())
        except Exception as exc:  # pylint: disable=broad-except
            self.module.fail_json(msg="unexpected error in %s: %s" % (
                self.module._name, to_native(exc)), exception=traceback.format_exc())
        self.exit()

    def fail(self, msg, **kwargs):
        result = dict(self.result)
        result.update(kwargs)
        result["msg"] = msg
        self.module.fail_json(**result)

    def exit(self):
        if self.module._diff and (self.before is not None or self.after is not None):
            self.result["diff"] = dict(before=self.before or {}, after=self.after or {})
        self.module.exit_json(**self.result)

    # -- desired state for immutable API resources --------------------------------------------

    def _strip(self, resource):
        return strip_volatile(resource, self.volatile_fields)

    def ensure_resource(self, kind, desired, is_same, state, label, ttl=None):
        """Make the API resource ``kind`` match ``desired`` (present) or disappear (absent).

        :arg kind: resource path under ``/api`` (``capture``, ``alert``, ``noderule``...).
        :arg desired: the body to POST; every key is compared with what exists.
        :arg is_same: ``f(resource) -> bool``, true for the existing resources this task manages
            (its identity: same Gremlin query and name for captures, same name for alerts...).
        :arg state: ``present`` or ``absent``.
        :arg label: how to name the resource in messages.
        :returns: the resource as it is now (``None`` when absent). With ``present`` and no
            match, or a match that differs, the old ones are deleted and a new one is created
            (``replaced`` lists the deleted IDs). Check mode reports without touching anything.
        """
        existing = [r for r in self.client.list(kind).values() if isinstance(r, dict) and is_same(r)]
        existing.sort(key=lambda r: r.get("UUID") or "")
        self.result["changed"] = False
        if state == "absent":
            self.before = self._strip(existing[0]) if existing else {}
            self.after = {}
            if existing:
                self.result["changed"] = True
                if not self.check_mode:
                    for res in existing:
                        self.client.delete(kind, res["UUID"])
                self.result["deleted"] = [r["UUID"] for r in existing]
            return None

        matching = [r for r in existing if not differing_fields(r, desired)]
        keep = matching[0] if matching else None
        stale = [r for r in existing if r is not keep]
        self.before = self._strip(keep or (existing[0] if existing else None))
        if existing and not keep:
            self.result["drift"] = differing_fields(existing[0], desired)
        if keep and not stale:
            self.after = self._strip(keep)
            return keep

        self.result["changed"] = True
        if stale:
            self.result["replaced"] = [r["UUID"] for r in stale]
        if self.check_mode:
            self.after = dict(desired)
            return keep or dict(desired, UUID=None)
        for res in stale:
            self.client.delete(kind, res["UUID"])
        if keep:
            self.after = self._strip(keep)
            return keep
        created = self.client.create(kind, desired, ttl=ttl)
        if not isinstance(created, dict):
            raise SkydiveError("Skydive analyzer did not return the created %s" % label)
        self.after = self._strip(created)
        return created
