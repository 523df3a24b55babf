"""How a resource kind declares its `skydive client <command> create` flags (upstream's names).

Each `Flag` is an argparse flag and the body field its value fills (dotted for a nested key, e.g.
`Metadata.Name`); `to` converts the value first; a value left at None leaves the field out; a map
(`--metadata`) goes under the keys earlier flags set. What no field can say (a header, an ID) is
the kind's `cli_body`.
"""

import base64
import json

import yaml


class CLIError(ValueError):
    """A `skydive client` usage error (one line, exit code 1)."""


class Flag:
    def __init__(self, *names, field=None, to=None, **options):
        self.names = names
        self.field = field
        self.to = to
        self.options = options

    @property
    def dest(self):
        return self.options.get("dest") or self.names[0].lstrip("-").replace("-", "_")

    def add_to(self, parser):
        parser.add_argument(*self.names, **self.options)

    def fill(self, body, args):
        value = getattr(args, self.dest)
        if self.field is None or value is None:
            return
        if self.to is not None:
            value = self.to(value)
        cur = body
        parts = self.field.split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        last = parts[-1]
        if isinstance(value, dict) and isinstance(cur.get(last), dict):
            value = dict(value, **cur[last])     # what earlier flags set (--node-name...) wins
        cur[last] = value


def build_body(kind, args):
    """(body, headers) of `skydive client <kind> create` from the parsed flags."""
    body = {}
    for flag in kind.flags:
        flag.fill(body, args)
    return kind.cli_body(body, args)


def decode_value(value):
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_metadata(text, decode_values=False):
    """'k1=v1, k2.sub=v2' -> nested dict; values JSON-decoded when asked (numbers, booleans...)."""
    md = {}
    if not text:
        return md
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise CLIError("invalid metadata %r: expected key=value" % item)
        key, value = (s.strip() for s in item.split("=", 1))
        if not key:
            raise CLIError("invalid metadata %r: empty key" % item)
        if decode_values:
            value = decode_value(value)
        cur = md
        parts = key.split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
            if not isinstance(cur, dict):
                raise CLIError("invalid metadata: %s is both a value and a map" % part)
        cur[parts[-1]] = value
    return md


def read_base64(path):
    """The content of a file as base64 text (None for no file)."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            return base64.b64encode(fh.read()).decode()
    except OSError as exc:
        raise CLIError("cannot read pcap file %s: %s" % (path, exc.strerror)) from None


def read_yaml_map(path, what):
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise CLIError("cannot read %s file %s: %s" % (what, path, exc.strerror)) from None
    except yaml.YAMLError as exc:
        raise CLIError("%s file %s is not valid YAML: %s" % (what, path, exc)) from None
    if not isinstance(data, dict):
        raise CLIError("%s file %s must hold a map" % (what, path))
    return data
