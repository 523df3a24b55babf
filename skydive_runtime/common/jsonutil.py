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
