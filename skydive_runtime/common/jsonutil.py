"""JSON helpers: compact dumps and upstream's number normalisation."""

import json


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def pretty(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False)


def normalize_numbers(value):
    """Floats equal to an integer become ints, recursively (Go decoder behaviour)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2 ** 63:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: normalize_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_numbers(v) for v in value]
    return value


class JSONLimitError(ValueError):
    """A decoded JSON document breaks a limit (nesting depth) or is not valid Unicode."""


def _reject_constant(name):
    raise ValueError("invalid number %s" % name)


def check_document(value, max_depth):
    """Refuse lone surrogates in strings and keys ("\\ud800" escapes json accepts) and nesting
    deeper than max_depth (0: no depth limit). Iterative: a deep document cannot overflow."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            _check_string(v)
        elif isinstance(v, (dict, list)):
            if max_depth and depth > max_depth:
                raise JSONLimitError("JSON nested deeper than %d levels (http.max_json_depth)" % max_depth)
            if isinstance(v, dict):
                for k, x in v.items():
                    _check_string(k)
                    stack.append((x, depth + 1))
            else:
                stack.extend((x, depth + 1) for x in v)
    return value


def _check_string(s):
    if isinstance(s, str):
        try:
            s.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JSONLimitError("invalid UTF-8: lone surrogate %r at offset %d of a string"
                                 % (s[exc.start], exc.start)) from None


def strict_loads(raw, max_depth=0):
    """json.loads for untrusted input: NaN/Infinity refused (Go rejects them), strict UTF-8, depth
    bounded. Raises ValueError (JSONLimitError for the limits) with a message."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise JSONLimitError("JSON nested too deeply") from None
    return check_document(value, max_depth)
