"""Extension steps: later layers add steps (Flows(), RawPackets(), Hops()...) here.

    from skydive_runtime.gremlin.registry import register_step, ExtensionStep

    class HopsStep(ExtensionStep):
        name = "Hops"
        def validate(self):            # parse time: check self.params, raise GremlinError
            if self.params:
                raise GremlinError("Hops accepts no parameter")
        # exec(prev, state) defaults to calling prev.step_Hops(self, state) and
        # raising `Invalid step 'Hops' on <kind>` when the previous value has no such method

    register_step("Hops", HopsStep)

A factory is any callable `factory(params, pos) -> step`; a step is any object with
`exec(prev, state) -> TraversalValue` (and optionally `absorb(next_step) -> bool`, `name`,
`returns_graph`, `returns_raw_packets`). Names are case-insensitive and cannot shadow core steps.
"""

import threading

from .steps import CORE_STEPS, Step, dispatch

__all__ = ["Registry", "ExtensionStep", "default_registry", "register_step", "unregister_step",
           "dispatch"]


class ExtensionStep(Step):
    """Convenience base class for extension steps: parse-time `validate()`, exec by dispatch."""

    def __init__(self, params, pos=0):
        Step.__init__(self, self.name, params, pos)
        self.validate()

    def validate(self):
        pass

    def exec(self, prev, state):
        return dispatch(prev, self, state)


class Registry:
    def __init__(self, parent=None):
        self._steps = {}
        self._lock = threading.Lock()
        self.parent = parent
        self._version = 0

    @property
    def version(self):
        return self._version + (self.parent.version if self.parent is not None else 0)

    def register_step(self, name, factory, replace=False):
        if not isinstance(name, str) or not name or not name.isalnum() or not name[0].isalpha():
            raise ValueError("invalid step name %r" % (name,))
        upper = name.upper()
        if upper in CORE_STEPS or upper == "G":
            raise ValueError("step %s is a core step" % name)
        if upper in _RESERVED_WORDS:
            raise ValueError("%s is a reserved word of the Gremlin dialect" % name)
        with self._lock:
            if upper in self._steps and not replace:
                raise ValueError("step %s already registered" % name)
            self._steps[upper] = (name, factory)
            self._version += 1

    def unregister_step(self, name):
        with self._lock:
            if self._steps.pop(name.upper(), None) is not None:
                self._version += 1

    def lookup(self, upper):
        entry = self._steps.get(upper)
        if entry is None and self.parent is not None:
            return self.parent.lookup(upper)
        return entry

    def names(self):
        out = set(n for n, dummy in self._steps.values())
        if self.parent is not None:
            out |= self.parent.names()
        return out


_RESERVED_WORDS = {"NE", "NEE", "LT", "GT", "LTE", "GTE", "INSIDE", "OUTSIDE", "BETWEEN", "WITHIN",
                   "WITHOUT", "REGEX", "IPV4RANGE", "ASC", "DESC", "NOW", "FOREVER", "TRUE",
                   "FALSE", "METADATA"}

default_registry = Registry()


def register_step(name, factory, replace=False):
    """Register an extension step in the default registry (the analyzer's)."""
    default_registry.register_step(name, factory, replace=replace)


def unregister_step(name):
    default_registry.unregister_step(name)
