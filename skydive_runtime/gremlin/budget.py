"""The time and size budget of one query execution (analyzer.query.timeout / max_results).

The step engine checks it cooperatively: `tick()` from the graph view on every adjacency lookup,
`collect()` where a step materialises its result, `check_size()` after every step. The budget of
the running query lives in a thread-local, so queries on the loop and in the worker thread each
see their own.
"""

import threading
import time
from itertools import islice

from .errors import GremlinError

_local = threading.local()
_CHUNK = 4096


class BudgetExceeded(GremlinError):
    """The query went over its time or result budget."""


class Budget:
    __slots__ = ("timeout", "max_results", "deadline", "ticks")

    def __init__(self, timeout=0.0, max_results=0):
        self.timeout = float(timeout or 0)
        self.max_results = int(max_results or 0)
        self.deadline = time.monotonic() + self.timeout if self.timeout > 0 else None
        self.ticks = 0

    def check_time(self):
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise BudgetExceeded("query timed out after %gs (analyzer.query.timeout)" % self.timeout)

    def check_size(self, n):
        if self.max_results and n > self.max_results:
            raise BudgetExceeded("query result exceeds %d elements (analyzer.query.max_results)" % self.max_results)


class active:   # pylint: disable=invalid-name
    """Context manager installing a Budget for the current thread's query."""

    def __init__(self, budget):
        self.budget = budget
        self.saved = None

    def __enter__(self):
        self.saved = getattr(_local, "budget", None)
        _local.budget = self.budget
        return self.budget

    def __exit__(self, *exc):
        _local.budget = self.saved
        return False


def current():
    return getattr(_local, "budget", None)


def tick():
    """One unit of traversal work; the clock is read every 256 ticks."""
    b = getattr(_local, "budget", None)
    if b is not None:
        b.ticks += 1
        if not b.ticks & 255:
            b.check_time()


def collect(iterable, lo=0, hi=None):
    """list(islice(iterable, lo, hi)) under the budget: the time and the size are checked every
    few thousand items, so neither a long nor a huge (path explosion) result gets far."""
    b = getattr(_local, "budget", None)
    it = iter(iterable) if lo == 0 and hi is None else islice(iterable, lo, hi)
    if b is None:
        return list(it)
    out = []
    while True:
        chunk = list(islice(it, _CHUNK))
        out.extend(chunk)
        b.check_size(len(out))
        b.check_time()
        if len(chunk) < _CHUNK:
            return out
