"""Core steps: parse-time validation (upstream messages), the Reduce pass, and execution by
dispatch on the previous value (see values.py)."""

from ..graph import filters as F
from .errors import GremlinError
from .params import (ASC, DESC, FOREVER, NOW, Keyword, MetadataArg, fmt_params, params_to_filter)
from .timeparse import parse_duration, parse_time_context

MAX_INT32 = (1 << 31) - 1


def dispatch(prev, step, state):
    """Run step on prev by calling prev.step_<Name>(step, state)."""
    fn = getattr(prev, "step_" + step.name, None)
    if fn is None:
        kind = getattr(prev, "kind", None) or type(prev).__name__
        raise GremlinError("Invalid step '%s' on %s" % (step.name, kind))
    return fn(step, state)


class Step:
    """A parsed step. `params` are the raw arguments (literals, predicates, MetadataArg, Keyword).

    `stop`, when set by the Reduce pass (a following Limit/Range), is an upper bound on the
    number of items this step needs to produce; implementations may ignore it.
    """
    name = None
    returns_graph = False
    returns_raw_packets = False
    accepts_stop = False     # the Reduce pass may give it a stop hint

    def __init__(self, name, params, pos=0):
        if name is not None:
            self.name = name
        self.params = params
        self.pos = pos
        self.stop = None

    @property
    def page(self):
        return None if self.stop is None else (0, self.stop)

    def absorb(self, nxt):
        """Reduce pass: take over the next step (return True) or not."""
        return False

    def exec(self, prev, state):
        return dispatch(prev, self, state)

    def __repr__(self):
        return "%s%s" % (self.name, fmt_params(self.params))


def _strings(name, params, what="have to be string keys"):
    for p in params:
        if not isinstance(p, str):
            raise GremlinError("%s parameters %s : %s" % (name, what, fmt_params(params)))
    return list(params)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class GStep(Step):
    name = "G"
    returns_graph = True

    def exec(self, prev, state):
        if prev is None:
            from .values import GraphValue
            from .view import as_view
            return GraphValue(as_view(state.ctx.graph), root=True)
        return dispatch(prev, self, state)


class _FilterStep(Step):
    """Steps whose arguments are a key/value filter (Out, InE, SubGraph...)."""
    accepts_stop = True
    op = "and"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        self.flt = params_to_filter(params, self.op)

    def set_params(self, params):
        self.params = params
        self.flt = params_to_filter(params, self.op)

    def absorb(self, nxt):
        if isinstance(nxt, HasStep) and nxt.op == "and" and not self.params and nxt.params and self.stop is None:
            self.set_params(nxt.params)
            return True
        return False


class VStep(Step):
    name = "V"
    accepts_stop = True
    kind_word = "V"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        self.node_id = None
        self.flt = None
        if len(params) == 1:
            if not isinstance(params[0], str):
                raise GremlinError("%s parameter must be a string : %s" % (self.kind_word, fmt_params(params)))
            self.node_id = params[0]
        elif len(params) > 1:
            raise GremlinError("%s accepts at most one parameter : %s" % (self.kind_word, fmt_params(params)))

    def absorb(self, nxt):
        if isinstance(nxt, HasStep) and nxt.op == "and" and not self.params and len(nxt.params) >= 2 and self.stop is None:
            self.params = nxt.params
            self.flt = nxt.flt
            return True
        return False


class EStep(VStep):
    name = "E"
    kind_word = "E"


class HasStep(Step):
    name = "Has"
    accepts_stop = True
    op = "and"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if not params:
            raise GremlinError("At least one parameter must be provided")
        self.flt = params_to_filter(params, self.op)


class HasEitherStep(HasStep):
    name = "HasEither"
    op = "or"


class HasKeyStep(Step):
    name = "HasKey"
    accepts_stop = True

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if len(params) != 1 or not isinstance(params[0], str):
            raise GremlinError("%s accepts only one parameter of type string : %s" % (self.name, fmt_params(params)))
        self.key = params[0]
        self.flt = self._filter(self.key)

    @staticmethod
    def _filter(key):
        return F.HasKey(key)


class HasNotStep(HasKeyStep):
    name = "HasNot"

    @staticmethod
    def _filter(key):
        return F.Not(F.HasKey(key))


def _walk(step_name):
    return type(step_name + "Step", (_FilterStep,), {"name": step_name})


OutStep, InStep, BothStep = _walk("Out"), _walk("In"), _walk("Both")
OutVStep, InVStep, BothVStep = _walk("OutV"), _walk("InV"), _walk("BothV")
OutEStep, InEStep, BothEStep = _walk("OutE"), _walk("InE"), _walk("BothE")


class SubGraphStep(Step):
    name = "SubGraph"
    returns_graph = True

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        self.flt = params_to_filter(params)


class DedupStep(Step):
    name = "Dedup"
    accepts_stop = True

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        self.keys = _strings("Dedup", params)


class CountStep(Step):
    name = "Count"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if params:
            raise GremlinError("Count accepts no parameter : %s" % fmt_params(params))


class RangeStep(Step):
    name = "Range"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        self.lo, self.hi = self.bounds(params)

    @staticmethod
    def bounds(params):
        """Check the parameters; (lo, hi)."""
        if len(params) != 2:
            raise GremlinError("Range requires 2 parameters : %s" % fmt_params(params))
        for p in params:
            if not _is_int(p):
                raise GremlinError("%s is not an integer" % fmt_params([p])[1:-1])
        return params[0], params[1]


class LimitStep(RangeStep):
    name = "Limit"

    @staticmethod
    def bounds(params):
        if len(params) != 1:
            raise GremlinError("Limit requires 1 parameter : %s" % fmt_params(params))
        if not _is_int(params[0]):
            raise GremlinError("%s is not an integer" % fmt_params(params)[1:-1])
        return 0, params[0]


class SortStep(Step):
    name = "Sort"
    default_key = "CreatedAt"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        self.descending = False
        self.key = None
        if len(params) == 1:
            if not isinstance(params[0], str):
                raise GremlinError("Sort parameter has to be a string key : %s" % fmt_params(params))
            self.key = params[0]
        elif len(params) == 2:
            if params[0] == ASC:
                pass
            elif params[0] == DESC:
                self.descending = True
            else:
                raise GremlinError("Use ASC or DESC predicate : %s" % fmt_params(params[:1]))
            if not isinstance(params[1], str):
                raise GremlinError("Second sort parameter has to be a string key : %s" % fmt_params(params[1:]))
            self.key = params[1]
        elif params:
            raise GremlinError("Sort accepts 1 predicate and 1 string parameter : %s" % fmt_params(params))
        self.explicit_key = self.key
        if self.key is None:
            self.key = self.default_key


class ValuesStep(Step):
    name = "Values"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if len(params) != 1:
            raise GremlinError("Values requires 1 parameter : %s" % fmt_params(params))
        if not isinstance(params[0], str):
            raise GremlinError("Values parameter has to be a string key : %s" % fmt_params(params))
        self.key = params[0]


class ValueMapStep(Step):
    name = "ValueMap"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if not params:
            raise GremlinError("ValueMap requires at least one parameter : %s" % fmt_params(params))
        self.keys = _strings("ValueMap", params)


class KeysStep(Step):
    name = "Keys"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if params:
            raise GremlinError("Keys accepts no parameter : %s" % fmt_params(params))


class SumStep(Step):
    name = "Sum"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if len(params) > 1:
            raise GremlinError("Sum requires 1 parameter : %s" % fmt_params(params))
        if params and not isinstance(params[0], str):
            raise GremlinError("Sum parameter has to be a string key : %s" % fmt_params(params))
        self.key = params[0] if params else None


class AsStep(Step):
    name = "As"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if len(params) != 1:
            raise GremlinError("As requires 1 parameter : %s" % fmt_params(params))
        if not isinstance(params[0], str):
            raise GremlinError("As parameter has to be a string key : %s" % fmt_params(params))
        self.key = params[0]


class SelectStep(Step):
    name = "Select"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if not params:
            raise GremlinError("Select requires at least one key : %s" % fmt_params(params))
        self.keys = _strings("Select", params, "have to be strings")


class ShortestPathToStep(Step):
    name = "ShortestPathTo"

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if not params or len(params) > 2:
            raise GremlinError("ShortestPathTo predicate accepts only 1 or 2 parameters : %s" % fmt_params(params))
        for p in params:
            if not isinstance(p, MetadataArg):
                raise GremlinError("ShortestPathTo parameters have to be Metadata(...) : %s" % fmt_params(params))
        self.target_filter = params[0].as_filter()
        self.edge_filter = params[1].as_filter() if len(params) == 2 and params[1].pairs else None


class ContextStep(Step):
    """Context(t[, d]) / At(t[, d]): a time point, or the slice [t - d, t]."""
    name = "Context"
    returns_graph = True

    def __init__(self, params, pos=0):
        Step.__init__(self, None, params, pos)
        if not params:
            raise GremlinError("At least one parameter must be provided to 'Context'")
        if len(params) > 2:
            raise GremlinError("At most two parameters must be provided to 'Context'")
        t = params[0]
        if isinstance(t, str):
            if parse_time_context(t, 0) is None:
                raise GremlinError("Time must be in RFC1123 or in Go Duration format")
        elif not (_is_int(t) or t == NOW):
            raise GremlinError("Key 'Context' must be either an integer or a string")
        if len(params) == 2:
            d = params[1]
            if isinstance(d, str):
                if parse_duration(d) is None:
                    raise GremlinError("time: invalid duration \"%s\"" % d)
            elif not (_is_int(d) or d == FOREVER):
                raise GremlinError("Key 'Context' must be either an integer or a string")

    def resolve(self, now_ms):
        """(at_ms, duration_ms or None)."""
        t = self.params[0]
        if isinstance(t, str):
            at = parse_time_context(t, now_ms)
        elif isinstance(t, Keyword):
            at = now_ms
        elif t > MAX_INT32:
            at = t
        else:
            at = t * 1000
        if len(self.params) == 1:
            return at, None
        d = self.params[1]
        if isinstance(d, str):
            dur = parse_duration(d)
        elif isinstance(d, Keyword):
            dur = at        # FOREVER: back to the epoch
        else:
            dur = d * 1000
        return at, dur


CORE_STEPS = {
    "V": VStep, "E": EStep, "HAS": HasStep, "HASEITHER": HasEitherStep, "HASKEY": HasKeyStep,
    "HASNOT": HasNotStep, "OUT": OutStep, "IN": InStep, "BOTH": BothStep, "OUTV": OutVStep,
    "INV": InVStep, "BOTHV": BothVStep, "OUTE": OutEStep, "INE": InEStep, "BOTHE": BothEStep,
    "SUBGRAPH": SubGraphStep, "DEDUP": DedupStep, "COUNT": CountStep, "RANGE": RangeStep,
    "LIMIT": LimitStep, "SORT": SortStep, "VALUES": ValuesStep, "VALUEMAP": ValueMapStep,
    "KEYS": KeysStep, "SUM": SumStep, "AS": AsStep, "SELECT": SelectStep,
    "SHORTESTPATHTO": ShortestPathToStep, "CONTEXT": ContextStep, "AT": ContextStep,
}


def build_step(upper, registry):
    """The factory (params, pos) -> step for an upper-cased step name, or None if unknown."""
    cls = CORE_STEPS.get(upper)
    if cls is not None:
        return cls
    entry = registry.lookup(upper) if registry is not None else None
    if entry is None:
        return None
    name, factory = entry

    def make(params, pos):
        try:
            step = factory(params, pos)
        except GremlinError:
            raise
        except Exception as exc:   # an extension's own validation error
            raise GremlinError("%s: %s" % (name, exc)) from None
        if getattr(step, "name", None) is None:
            step.name = name
        return step
    return make


def reduce_steps(steps):
    """Upstream's Reduce pass: V().Has(k,v) -> V(k,v); Out().Has(..) -> Out(..) (and In, Both,
    OutV, InV, BothV, OutE, InE, BothE); a Limit/Range gives the step before it a stop hint."""
    out = []
    for step in steps:
        if out:
            last = out[-1]
            absorb = getattr(last, "absorb", None)
            if absorb is not None and absorb(step):
                continue
            if isinstance(step, RangeStep) and getattr(last, "accepts_stop", False) and last.stop is None:
                last.stop = max(step.hi, 0)
        out.append(step)
    return out
