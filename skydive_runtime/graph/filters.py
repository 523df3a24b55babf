"""Predicates and element filters shared by the graph indexes, Gremlin and the stores."""

import ipaddress
import re

try:   # Python >= 3.11: the parser behind re, without the deprecation warning
    from re import _constants as sre_constants, _parser as sre_parse
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants
    import sre_parse

from .metadata import get_values


class FilterError(ValueError):
    """A predicate that cannot be built (bad regex, bad CIDR...)."""


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def values_equal(a, b):
    """Upstream equality: numbers compare numerically (1.0 == 1), bools only with bools."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        return a == b
    return type(a) is type(b) and a == b


def _as_int(v):
    if _is_num(v):
        return v
    return None


class Predicate:
    """A test on one value. `match_missing` tells the result when the key is absent."""

    match_missing = False
    name = "?"

    def match(self, value):
        raise NotImplementedError

    def match_values(self, values):
        if values is None:
            return self.match_missing
        for v in values:
            if self.match(v):
                return True
        return False

    def __repr__(self):
        return "%s(%s)" % (self.name, ", ".join(repr(a) for a in self.args()))

    def args(self):
        return ()


class Eq(Predicate):
    name = "Eq"

    def __init__(self, value):
        self.value = value

    def match(self, value):
        return values_equal(value, self.value)

    def args(self):
        return (self.value,)


class NE(Predicate):
    """Key present and no value equal (on a list: no element equal)."""
    name = "NE"

    def __init__(self, value):
        self.value = value

    def match(self, value):
        return not values_equal(value, self.value)

    def match_values(self, values):
        if values is None:
            return self.match_missing
        return not any(values_equal(v, self.value) for v in values)

    def args(self):
        return (self.value,)


class NEE(NE):
    """No value equal, or key absent."""
    name = "NEE"
    match_missing = True


class _Compare(Predicate):
    def __init__(self, value):
        if not _is_num(value):
            raise FilterError("%s expects a number, got %r" % (self.name, value))
        self.value = value

    def args(self):
        return (self.value,)


class GT(_Compare):
    name = "GT"

    def match(self, value):
        v = _as_int(value)
        return v is not None and v > self.value


class GTE(_Compare):
    name = "GTE"

    def match(self, value):
        v = _as_int(value)
        return v is not None and v >= self.value


class LT(_Compare):
    name = "LT"

    def match(self, value):
        v = _as_int(value)
        return v is not None and v < self.value


class LTE(_Compare):
    name = "LTE"

    def match(self, value):
        v = _as_int(value)
        return v is not None and v <= self.value


class _Range(Predicate):
    def __init__(self, low, high):
        if not (_is_num(low) and _is_num(high)):
            raise FilterError("%s expects two numbers, got %r, %r" % (self.name, low, high))
        self.low, self.high = low, high

    def args(self):
        return (self.low, self.high)


class Inside(_Range):
    """low < x < high"""
    name = "Inside"

    def match(self, value):
        v = _as_int(value)
        return v is not None and self.low < v < self.high


class Between(_Range):
    """low <= x < high"""
    name = "Between"

    def match(self, value):
        v = _as_int(value)
        return v is not None and self.low <= v < self.high


class Within(Predicate):
    name = "Within"

    def __init__(self, *values):
        self.values = values

    def match(self, value):
        return any(values_equal(value, v) for v in self.values)

    def args(self):
        return self.values


class Without(Within):
    """No value equal to any of the given ones; also true when the key is absent."""
    name = "Without"
    match_missing = True

    def match(self, value):
        return not any(values_equal(value, v) for v in self.values)

    def match_values(self, values):
        if values is None:
            return True
        return not any(Within.match(self, v) for v in values)


class Regex(Predicate):
    """Implicitly anchored regular expression; explicit ^ or $ anchors are refused like upstream.

    Python's engine backtracks: patterns that can backtrack exponentially are refused (see
    check_regex), so matching stays linear-ish in the value's length."""
    name = "Regex"

    def __init__(self, pattern):
        if not isinstance(pattern, str):
            raise FilterError("Regex expects a string, got %r" % (pattern,))
        if pattern.startswith("^") or pattern.endswith("$"):
            raise FilterError("Regex %r: '^' and '$' are implicit, remove them" % pattern)
        try:
            self.regex = re.compile("(?:%s)\\Z" % pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            raise FilterError("invalid regex %r: %s" % (pattern, exc)) from None
        self.degree = check_regex(pattern)
        self.pattern = pattern

    def match(self, value):
        if not isinstance(value, str):
            return False
        # k unbounded repeats can cost len(value) ** k steps: refuse where that is too much
        if self.degree > 1 and len(value) ** self.degree > REGEX_MAX_WORK:
            raise FilterError("Regex %r: a value of %d characters is too long for a pattern with %d unbounded "
                              "repeats" % (self.pattern, len(value), self.degree))
        return self.regex.match(value) is not None

    def args(self):
        return (self.pattern,)


class Ipv4Range(Predicate):
    """A string IPv4 address (optionally with /nn) inside the given network."""
    name = "Ipv4Range"

    def __init__(self, cidr):
        try:
            self.network = ipaddress.IPv4Network(cidr, strict=False)
        except (ValueError, TypeError) as exc:
            raise FilterError("invalid IPv4 range %r: %s" % (cidr, exc)) from None
        self.cidr = cidr
        self._lo = int(self.network.network_address)
        self._hi = int(self.network.broadcast_address)

    def match(self, value):
        if not isinstance(value, str):
            return False
        addr = value.split("/", 1)[0]
        try:
            n = int(ipaddress.IPv4Address(addr))
        except ValueError:
            return False
        return self._lo <= n <= self._hi

    def args(self):
        return (self.cidr,)


def as_predicate(value):
    return value if isinstance(value, Predicate) else Eq(value)


class ElementFilter:
    """Base class: a test on a whole graph element."""

    def match(self, element):
        raise NotImplementedError

    def equalities(self):
        """(key, value) equality pairs that must all hold: what an index can serve."""
        return ()


class KeyFilter(ElementFilter):
    def __init__(self, key, predicate):
        self.key = key
        self.predicate = as_predicate(predicate)

    def match(self, element):
        return self.predicate.match_values(get_values(element, self.key))

    def equalities(self):
        if isinstance(self.predicate, Eq):
            return ((self.key, self.predicate.value),)
        return ()

    def __repr__(self):
        return "KeyFilter(%r, %r)" % (self.key, self.predicate)


class HasKey(ElementFilter):
    def __init__(self, key):
        self.key = key

    def match(self, element):
        return get_values(element, self.key) is not None


class And(ElementFilter):
    def __init__(self, *filters):
        self.filters = filters

    def match(self, element):
        for f in self.filters:
            if not f.match(element):
                return False
        return True

    def equalities(self):
        out = []
        for f in self.filters:
            out.extend(f.equalities())
        return out


class Or(ElementFilter):
    def __init__(self, *filters):
        self.filters = filters

    def match(self, element):
        for f in self.filters:
            if f.match(element):
                return True
        return False


class Not(ElementFilter):
    def __init__(self, inner):
        self.inner = inner

    def match(self, element):
        return not self.inner.match(element)


class MatchAll(ElementFilter):
    def match(self, element):
        return True


def filter_from_pairs(*args):
    """Has-style arguments (k, v, k, v, ...) to an And of KeyFilters."""
    if len(args) % 2:
        raise FilterError("odd number of key/value arguments")
    return And(*(KeyFilter(args[i], args[i + 1]) for i in range(0, len(args), 2)))


def filter_from_dict(md):
    """A metadata dict {k: v} as an equality filter (used by rules and ShortestPathTo)."""
    return And(*(KeyFilter(k, v) for k, v in md.items()))


# ---- regular expressions that cannot blow up ------------------------------------------------
REGEX_MAX_LENGTH = 1000
REGEX_MAX_UNBOUNDED = 4          # repeats with more than REGEX_SMALL_REPEAT iterations
REGEX_SMALL_REPEAT = 16
REGEX_MAX_WORK = 10 ** 7          # len(value) ** unbounded repeats allowed per match
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None))


def check_regex(pattern):
    """Refuse what makes a backtracking engine exponential: a large repeat of something that
    itself repeats or alternates (`(a+)+`, `(a|a)*`), backreferences, and very long patterns or
    many unbounded repeats. Raises FilterError naming the construct; returns the number of
    unbounded repeats (the polynomial degree of the worst case)."""
    if len(pattern) > REGEX_MAX_LENGTH:
        raise FilterError("Regex longer than %d characters refused" % REGEX_MAX_LENGTH)
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise FilterError("invalid regex %r: %s" % (pattern, exc)) from None

    def walk(items, in_large_repeat):
        """Checks items; returns how many large repeats they hold (bounded repeats multiply)."""
        n = 0
        for op, av in items:
            if op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
                raise FilterError("Regex %r: backreferences are refused" % pattern)
            if op in _REPEATS:
                hi, sub = av[1], av[2]
                large = hi == sre_constants.MAXREPEAT or hi > REGEX_SMALL_REPEAT
                if in_large_repeat and hi > 1:
                    raise FilterError("Regex %r: nested quantifiers (a repeat inside a repeat) are refused: "
                                      "they can backtrack exponentially" % pattern)
                inner = walk(sub, in_large_repeat or large)
                n += 1 if large else inner * max(hi, 1)
            elif op == sre_constants.BRANCH:
                if in_large_repeat:
                    raise FilterError("Regex %r: alternation inside a repeat is refused: it can backtrack "
                                      "exponentially (use a character class)" % pattern)
                n += max([walk(alt, in_large_repeat) for alt in av[1]] or [0])
            elif op == sre_constants.SUBPATTERN:
                n += walk(av[-1], in_large_repeat)
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                n += walk(av[1], in_large_repeat)
            elif op == getattr(sre_constants, "ATOMIC_GROUP", None):
                n += walk(av, in_large_repeat)
        return n
    degree = walk(parsed, False)
    if degree > REGEX_MAX_UNBOUNDED:
        raise FilterError("Regex %r: more than %d unbounded repeats refused" % (pattern, REGEX_MAX_UNBOUNDED))
    return degree
