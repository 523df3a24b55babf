"""Metrics() on nodes (interface counters, upstream gremlin/traversal/metrics.go + topology.go)
and the steps of metric values: Aggregates([seconds]), Sum([key]), Count(), Keys().

Metrics are JSON maps of integer counters plus `Start` and `Last` (ms). Metrics() on other
values (flows) is dispatched to their `step_Metrics` method; a flow-metrics value can reuse
MetricsValue for Aggregates/Sum/Count.
"""

from ..graph.metadata import MISSING, get_raw
from .errors import GremlinError
from .params import fmt_params
from .registry import ExtensionStep, register_step
from .values import ListValue, NodesValue, TraversalValue

DEFAULT_SLICE_MS = 30000
MAX_SLICES = 10000
_TIME_KEYS = ("Start", "Last")


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def counters(m):
    return {k: v for k, v in m.items() if k not in _TIME_KEYS and _num(v)}


def is_zero(m):
    return all(v == 0 for v in counters(m).values())


def add(a, b):
    """a + b: counters summed, Start/Last of a."""
    out = dict(counters(a))
    for k, v in counters(b).items():
        out[k] = out.get(k, 0) + v
    out["Start"] = a.get("Start", 0)
    out["Last"] = a.get("Last", 0)
    return out


def apply_ratio(m, ratio):
    out = {}
    for k, v in counters(m).items():
        out[k] = int(v * ratio) if isinstance(v, int) else v * ratio
    out["Start"] = m.get("Start", 0)
    out["Last"] = m.get("Last", 0)
    return out


def split(m, cut):
    s, last = m.get("Start", 0), m.get("Last", 0)
    if cut < s:
        return None, m
    if cut > last or s == last or cut == last:
        return m, None
    if cut == s:
        return None, m
    d = float(last - s)
    m1 = apply_ratio(m, (cut - s) / d)
    m1["Last"] = cut
    m2 = apply_ratio(m, (last - cut) / d)
    m2["Start"] = cut
    return m1, m2


def _slice3(m, start, last):
    s1, s2 = split(m, start)
    if s2 is None or is_zero(s2):
        return s1, None, None
    s2b, s3 = split(s2, last)
    if s2b is not None and is_zero(s2b) and start <= m.get("Start", 0) < last:
        return None, m, None
    return s1, s2b, s3


def omit_empty(m):
    """Go's omitempty on the counters; Start and Last are always present."""
    out = {k: v for k, v in m.items() if k in _TIME_KEYS or v != 0}
    out.setdefault("Start", 0)
    out.setdefault("Last", 0)
    return out


def aggregate_into(metrics, start, last, length, result):
    """Upstream aggregateMetrics: spread each metric over the slices [start + j*length, ...)
    pro rata of time, summing into result (slice index -> metric)."""
    nslices = -(-(last - start) // length) if last > start else 0
    ms = [dict(m) for m in metrics]
    i, j = 0, 0
    while j < nslices and i < len(ms):
        s_start = start + j * length
        s_last = min(s_start + length, last)
        m = ms[i]
        mstart, mlast = m.get("Start", 0), m.get("Last", 0)
        if mstart >= s_last:                 # the metric begins after this slice: jump to it
            j = max(j + 1, (mstart - start) // length)
            continue
        if mlast < s_start:                  # entirely before the slice
            i += 1
            continue
        dummy, s2, s3 = _slice3(m, s_start, s_last)
        if s2 is None:
            j += 1
            continue
        cur = result.get(j)
        if cur is None:
            if len(result) >= MAX_SLICES:
                raise GremlinError("Aggregates: more than %d slices, use a longer slice" % MAX_SLICES)
            cur = dict(s2)
            cur["Start"], cur["Last"] = s_start, s_last
            result[j] = cur
        else:
            result[j] = add(cur, s2)
        if s3 is not None and not is_zero(s3):
            ms[i] = s3
        else:
            i += 1


class MetricsValue(TraversalValue):
    """{"<id>": [metric, ...]} serialised as [that map], or [] when empty."""
    kind = "metrics"

    def __init__(self, metrics, graph=None):
        self.metrics = metrics
        self.graph = graph

    def elements(self):
        return [m for ms in self.metrics.values() for m in ms]

    def to_json_value(self):
        return [self.metrics] if self.metrics else []

    def step_Count(self, step, state):
        return ListValue(len(self.metrics))

    def step_Keys(self, step, state):
        for ms in self.metrics.values():
            if ms:
                return ListValue(list(ms[0].keys()))
        return ListValue(None)

    def step_Sum(self, step, state):
        if step.key is not None:
            total = 0
            for m in self.elements():
                v = m.get(step.key, 0)
                if not _num(v):
                    raise GremlinError("Sum: field %s is not a number" % step.key)
                total += v
            return ListValue(total)
        total = None
        for m in self.elements():
            if total is None:
                total = dict(m)
            else:
                start, last = total.get("Start", 0), total.get("Last", 0)
                total = add(total, m)
                total["Start"] = min(start, m.get("Start", 0))
                total["Last"] = max(last, m.get("Last", 0))
        return ListValue(omit_empty(total) if total is not None else None)

    def step_Aggregates(self, step, state):
        length = step.slice_ms
        ts = getattr(self.graph, "time_slice", None)
        if ts is not None and ts[1] > ts[0]:
            start, last = ts[0], ts[1]
        else:
            all_m = self.elements()
            if not all_m:
                return MetricsValue({"Aggregated": []}, self.graph)
            start = min(m.get("Start", 0) for m in all_m)
            last = max(m.get("Last", 0) for m in all_m)
        result = {}
        for ms in self.metrics.values():
            aggregate_into(sorted(ms, key=lambda m: m.get("Start", 0)), start, last, length, result)
        final = [omit_empty(result[j]) for j in sorted(result)]
        return MetricsValue({"Aggregated": final}, self.graph)


def interface_metrics(nodes_value, prefix):
    """Metrics() on nodes: LastUpdateMetric of each node (revision), deduplicated by (ID, Start),
    sorted by Start; inside a history slice only the metrics strictly within it."""
    keys = [prefix + ".LastUpdateMetric"] if prefix else ["LastUpdateMetric", "SFlow.LastUpdateMetric"]
    found = []
    for n in nodes_value.items:
        for k in keys:
            m = get_raw(n, k)
            if m is not MISSING and m is not None:
                if not isinstance(m, dict):
                    raise GremlinError("wrong interface metric type")
                found.append((n.ID, m))
                break
    seen, uniq = set(), []
    for nid, m in found:
        k = (nid, repr(m.get("Start")))
        if k not in seen:
            seen.add(k)
            uniq.append((nid, m))
    uniq.sort(key=lambda x: x[1].get("Start", 0) if _num(x[1].get("Start", 0)) else 0)
    ts = nodes_value.graph.time_slice
    metrics = {}
    for nid, m in uniq:
        if ts is None or (m.get("Start", 0) > ts[0] and m.get("Last", 0) < ts[1]):
            metrics.setdefault(nid, []).append(m)
    return MetricsValue(metrics, nodes_value.graph)


class MetricsStep(ExtensionStep):
    """Metrics(['SFlow'|'Ovs']) on nodes: interface metrics; on other values: their step_Metrics."""
    name = "Metrics"

    def validate(self):
        if len(self.params) > 1 or (self.params and not isinstance(self.params[0], str)):
            raise GremlinError("Metrics accepts at most one string parameter : %s" % fmt_params(self.params))
        self.prefix = self.params[0] if self.params else None

    def exec(self, prev, state):
        if isinstance(prev, NodesValue):
            return interface_metrics(prev, self.prefix)
        return ExtensionStep.exec(self, prev, state)


class AggregatesStep(ExtensionStep):
    """Aggregates([seconds]): sum metrics over time slices (default 30 s)."""
    name = "Aggregates"

    def validate(self):
        self.slice_ms = DEFAULT_SLICE_MS
        if len(self.params) > 1:
            raise GremlinError("Aggregates accepts at most one parameter : %s" % fmt_params(self.params))
        if self.params:
            sl = self.params[0]
            if not isinstance(sl, int) or isinstance(sl, bool) or sl <= 0:
                raise GremlinError("Aggregates parameter has to be a positive number")
            self.slice_ms = sl * 1000


register_step("Metrics", MetricsStep)
register_step("Aggregates", AggregatesStep)
