"""Argument values of steps: literals, predicates, Metadata(...) and the bare keywords."""

import math
import re

from ..graph import filters as F
from .errors import GremlinError


class Keyword:
    """A bare keyword argument: ASC, DESC, NOW, FOREVER."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name

    def __eq__(self, other):
        return isinstance(other, Keyword) and other.name == self.name

    def __hash__(self):
        return hash(("kw", self.name))


ASC = Keyword("ASC")
DESC = Keyword("DESC")
NOW = Keyword("NOW")
FOREVER = Keyword("FOREVER")


class MetadataArg:
    """Metadata(k, v, ...): an ordered list of (key, value-or-predicate) pairs."""
    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs

    def as_filter(self):
        return F.And(*(F.KeyFilter(k, v) for k, v in self.pairs))

    def as_dict(self):
        return dict(self.pairs)

    def __repr__(self):
        return "Metadata(%s)" % ", ".join("%r, %r" % kv for kv in self.pairs)


def fmt_params(params):
    return "[" + " ".join(fmt_value(p) for p in params) + "]"


def fmt_value(v):
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def is_literal(v):
    return isinstance(v, (str, int, float, bool))


def norm_number(v):
    """A float equal to an integer becomes that integer (upstream casts numbers to int64)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 63:
        return int(v)
    return v


_INT_RE = re.compile(r"[+-]?[0-9]{1,19}")


def to_int64(v, what):
    """spf13/cast.ToInt64E: numbers, numeric strings and bools; anything else is an error."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise GremlinError("%s values should be of int64 type" % what)
        return int(v)
    if isinstance(v, str) and _INT_RE.fullmatch(v.strip()):
        return int(v.strip())
    raise GremlinError("%s values should be of int64 type" % what)


def _pred_error(exc):
    return GremlinError(str(exc))


def build_predicate(name, args):
    """The predicate object for NAME(args...) in argument position (name upper-case)."""
    def one():
        if len(args) != 1:
            raise GremlinError("One parameter expected with %s: %s" % (name, fmt_params(args)))
        return args[0]

    def two():
        if len(args) != 2:
            raise GremlinError("Two parameters expected with %s: %s" % (name, fmt_params(args)))
        return args

    for a in args:
        if not is_literal(a):
            raise GremlinError("%s expects literal values (strings, numbers, booleans), got: %s"
                               % (name, fmt_value(a)))
    try:
        if name == "NE":
            return F.NE(norm_number(one()))
        if name == "NEE":
            return F.NEE(norm_number(one()))
        if name in ("LT", "GT", "LTE", "GTE"):
            v = to_int64(one(), name)
            return {"LT": F.LT, "GT": F.GT, "LTE": F.LTE, "GTE": F.GTE}[name](v)
        if name == "INSIDE":
            a, b = two()
            return F.Inside(to_int64(a, "Inside"), to_int64(b, "Inside"))
        if name == "BETWEEN":
            a, b = two()
            return F.Between(to_int64(a, "Between"), to_int64(b, "Between"))
        if name == "WITHIN":
            return F.Within(*(norm_number(a) for a in args))
        if name == "WITHOUT":
            return F.Without(*(norm_number(a) for a in args))
        if name == "REGEX":
            v = one()
            if not isinstance(v, str):
                raise GremlinError("REGEX predicate expects a string as parameter, got: %s" % fmt_value(v))
            if v.startswith("^") or v.endswith("$"):
                raise GremlinError("Regex are anchored by default, ^ and $ don't have to be provided")
            return F.Regex(v)
        if name == "IPV4RANGE":
            v = one()
            if not isinstance(v, str):
                raise GremlinError("Ipv4Range value has to be a string")
            return F.Ipv4Range(v)
    except GremlinError:
        raise
    except F.FilterError as exc:
        raise _pred_error(exc) from None
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise GremlinError("invalid %s predicate: %s" % (name, exc)) from None
    raise GremlinError("Unknown predicate %s" % name)


def value_to_filter_value(k, v):
    """Check one value of a (key, value) pair of Has/Out/...: a literal or a predicate."""
    if isinstance(v, F.Predicate):
        return v
    if isinstance(v, bool) or isinstance(v, str) or isinstance(v, int):
        return v
    if isinstance(v, float):
        return norm_number(v)
    raise GremlinError("Invalid value for key '%s': %s" % (k, fmt_value(v)))


def params_to_filter(params, op="and"):
    """Upstream ParamsToFilter: one key = key exists; else AND/OR of key/value pairs.

    Returns None for no params (match everything)."""
    if not params:
        return None
    if len(params) == 1:
        k = params[0]
        if not isinstance(k, str):
            raise GremlinError("Key must be a string")
        return F.HasKey(k)
    if len(params) % 2:
        raise GremlinError("params should be a list of key,value")
    flts = []
    for i in range(0, len(params), 2):
        k = params[i]
        if not isinstance(k, str):
            raise GremlinError("keys should be of string type")
        flts.append(F.KeyFilter(k, value_to_filter_value(k, params[i + 1])))
    return F.And(*flts) if op == "and" else F.Or(*flts)


def metadata_from_params(params):
    if len(params) % 2:
        raise GremlinError("slice must be defined by pair k,v: %s" % fmt_params(params))
    pairs = []
    for i in range(0, len(params), 2):
        k = params[i]
        if not isinstance(k, str):
            raise GremlinError("keys should be of string type")
        pairs.append((k, value_to_filter_value(k, params[i + 1])))
    return MetadataArg(pairs)
