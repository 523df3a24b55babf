"""Rule files: `{"rules": [rule, ...]}`, each rule one check (docs/audits.md).

    files = parse_files([{"Name": "net.yaml", "Rules": {"rules": [...]}, "Lines": {...}}], validate_query)
    # -> [RuleFile(name, rules=[Rule]), ...]; RuleError naming the file, the rule and the field

A rule has a `query` and exactly one check: `expect` (empty | nonempty | {count: "<op> N"}, the
default `empty`), `same: KEY` (over the two ends of each returned edge), `unique: KEY` (across
the returned nodes), `linked: {edge metadata}` (each returned node has such an edge),
`fits_underlay: {Type: overhead}` (tunnels) or `agents_connected: true`. `per: Host` evaluates
`expect` for each host of `hosts`; `when` skips the rule when it finds nothing; `changed_since`
(with `changed_until`, `ignore`) makes `expect` bear on the topology diff instead.
"""

import re

SEVERITIES = ("error", "warning", "info")
RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}     # info 0 < warning 1 < error 2
COUNT_RE = re.compile(r"^\s*(==|!=|<=|>=|<|>)\s*(\d+)\s*$")
CHECKS = ("expect", "same", "unique", "linked", "fits_underlay", "agents_connected")
FIELDS = set(CHECKS) | {"name", "description", "why", "severity", "query", "per", "hosts", "when",
                        "changed_since", "changed_until", "ignore", "except_linked_within"}
DEFAULT_HOSTS = "G.V().Has('Type', 'host')"


class RuleError(ValueError):
    """A rule file that cannot be used: the message names the file, the rule and the field."""


class Rule:
    def __init__(self, d, where):
        self.where = where
        self.name = d["name"]
        self.description = d.get("description") or ""
        self.why = d.get("why") or ""
        self.severity = d.get("severity") or "error"
        self.query = d.get("query") or ""
        self.per = d.get("per")
        self.hosts = d.get("hosts") or DEFAULT_HOSTS
        self.when = d.get("when")
        self.changed_since = d.get("changed_since")
        self.changed_until = d.get("changed_until")
        self.ignore = d.get("ignore")
        self.except_linked_within = d.get("except_linked_within", 0)
        self.line = 0
        present = [c for c in CHECKS if c in d]
        self.check = present[0] if present else "expect"
        self.arg = d.get(self.check, "empty")
        self.expect = None      # ("empty"|"nonempty"|"count", op, n) for check "expect"
        if self.check == "expect":
            self.expect = parse_expect(self.arg, where)

    def to_json(self):
        return {"Name": self.name, "Description": self.description, "Why": self.why, "Severity": self.severity,
                "Query": self.query, "Check": self.check, "Line": self.line}


class RuleFile:
    def __init__(self, name, rules):
        self.name = name
        self.rules = rules


def parse_expect(value, where):
    if value in ("empty", "nonempty"):
        return (value, None, None)
    if isinstance(value, dict) and set(value) == {"count"} and isinstance(value["count"], str):
        m = COUNT_RE.match(value["count"])
        if m:
            return ("count", m.group(1), int(m.group(2)))
    raise RuleError("%s: expect: must be empty, nonempty or {count: \"<op> N\"} with op one of == != < <= > >=, "
                    "got %r" % (where, value))


def _str_field(d, key, where, required=False):
    v = d.get(key)
    if v is None or v == "":
        if required:
            raise RuleError("%s: %s is required" % (where, key))
        return
    if not isinstance(v, str):
        raise RuleError("%s: %s must be a string, got %r" % (where, key, v))


def _check_rule(d, where, validate_query):
    if not isinstance(d, dict):
        raise RuleError("%s: a rule must be a mapping, got %r" % (where, d))
    unknown = sorted(set(d) - FIELDS)
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise RuleError("%s: unknown field%s %s (known: %s)" % (where, plural, ", ".join(unknown), ", ".join(sorted(FIELDS))))
    _str_field(d, "name", where, required=True)
    where = "%s (rule %s)" % (where, d["name"])
    for key in ("description", "why", "severity", "per", "hosts", "when"):
        _str_field(d, key, where)
    if d.get("severity") and d["severity"] not in SEVERITIES:
        raise RuleError("%s: severity must be one of %s, got %r" % (where, ", ".join(SEVERITIES), d["severity"]))
    present = [c for c in CHECKS if c in d]
    if len(present) > 1:
        raise RuleError("%s: one check a rule, got %s" % (where, " and ".join(present)))
    check = present[0] if present else "expect"
    if check != "agents_connected":
        _str_field(d, "query", where, required=True)
    for key in ("query", "hosts", "when"):
        if d.get(key):
            try:
                validate_query(d[key])
            except ValueError as exc:
                raise RuleError("%s: %s: %s" % (where, key, exc)) from None
    if check in ("same", "unique") and (not isinstance(d[check], str) or not d[check]):
        raise RuleError("%s: %s: expected a metadata key" % (where, check))
    if check == "linked" and (not isinstance(d["linked"], dict) or not d["linked"]):
        raise RuleError("%s: linked: expected the edge metadata to look for, e.g. {RelationType: layer2}" % where)
    if check == "fits_underlay" and (not isinstance(d["fits_underlay"], dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in d["fits_underlay"].values())):
        raise RuleError("%s: fits_underlay: expected {tunnel Type: overhead bytes}, e.g. {vxlan: 50}" % where)
    if check == "agents_connected" and d["agents_connected"] is not True:
        raise RuleError("%s: agents_connected: expected true" % where)
    if d.get("per") and (d["per"] != "Host" or check != "expect"):
        raise RuleError("%s: per: only `per: Host` with an expect check is supported" % where)
    if d.get("hosts") and not d.get("per"):
        raise RuleError("%s: hosts: only with `per: Host`" % where)
    if "except_linked_within" in d and (check != "unique" or not isinstance(d["except_linked_within"], int)):
        raise RuleError("%s: except_linked_within: a number of hops, with a unique check only" % where)
    diff_keys = [k for k in ("changed_since", "changed_until", "ignore") if k in d]
    if diff_keys:
        if "changed_since" not in d:
            raise RuleError("%s: %s needs changed_since" % (where, diff_keys[0]))
        if check != "expect" or d.get("per"):
            raise RuleError("%s: changed_since works with an expect check only (no per)" % where)
        ign = d.get("ignore")
        if ign is not None and (not isinstance(ign, list) or not all(isinstance(k, str) for k in ign)):
            raise RuleError("%s: ignore: expected a list of metadata keys" % where)
    rule = Rule(d, where)
    return rule


def parse_files(files, validate_query):
    """files: [{"Name": str, "Rules": <the file's content>, "Lines": {rule name: line}}]."""
    out = []
    if not isinstance(files, list):
        raise RuleError("Files: expected a list of rule files")
    for i, f in enumerate(files):
        if not isinstance(f, dict) or not isinstance(f.get("Name"), str) or not f["Name"]:
            raise RuleError("Files[%d]: expected {\"Name\": <file name>, \"Rules\": {\"rules\": [...]}}" % i)
        name, content = f["Name"], f.get("Rules")
        if not isinstance(content, dict) or not isinstance(content.get("rules"), list):
            raise RuleError("%s: expected a mapping with a `rules` list" % name)
        extra = sorted(set(content) - {"rules"})
        if extra:
            raise RuleError("%s: unknown top-level key %s (a rule file holds `rules:` only)" % (name, ", ".join(extra)))
        rules, seen = [], set()
        lines = f.get("Lines") if isinstance(f.get("Lines"), dict) else {}
        for j, d in enumerate(content["rules"]):
            rule = _check_rule(d, "%s: rules[%d]" % (name, j), validate_query)
            if rule.name in seen:
                raise RuleError("%s: rule name %s appears twice" % (name, rule.name))
            seen.add(rule.name)
            line = lines.get(rule.name)
            rule.line = line if isinstance(line, int) else 0
            rules.append(rule)
        out.append(RuleFile(name, rules))
    return out


def load_rule_text(text, name):
    """{"Name", "Rules", "Lines"} of a YAML rule file's text (Lines: rule name -> line number)."""
    import yaml
    try:
        content = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RuleError("%s: not YAML: %s" % (name, str(exc).replace("\n", " "))) from None
    lines = {}
    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if k.value == "rules" and isinstance(v, yaml.SequenceNode):
                for item in v.value:
                    if isinstance(item, yaml.MappingNode):
                        for ik, iv in item.value:
                            if ik.value == "name" and isinstance(iv, yaml.ScalarNode):
                                lines[iv.value] = item.start_mark.line + 1
    return {"Name": name, "Rules": content, "Lines": lines}


def read_rule_file(path):
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise RuleError("%s: cannot read: %s" % (path, exc.strerror)) from None
    except UnicodeDecodeError:
        raise RuleError("%s: not UTF-8 text" % path) from None
    return load_rule_text(text, path)


BUILTIN_NAME = "builtin"
_BUILTIN = []


def builtin_file():
    """The built-in pack, parsed once (callers do not modify it)."""
    if not _BUILTIN:
        import os
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin.yaml")
        f = read_rule_file(path)
        f["Name"] = BUILTIN_NAME
        _BUILTIN.append(f)
    return _BUILTIN[0]
