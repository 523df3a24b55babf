"""Gremlin flow steps (spec §4.4), registered by the analyzer (`register()`).

Flows come from the query context extras: `flow_cache` (analyzer/flows.py FlowCache: live flows
received from the agents) and `flow_store` (the flow store: `G.At(...).Flows()`).

    G.Flows([k, v...])                     all live flows (G.At(..): stored flows alive in the window)
    G.V(..).Flows(..) / ...ShortestPathTo(..).Flows(..)   flows captured on those nodes (NodeTID)
    .Has / .HasEither                       bare Network/Link/Transport match either A or B
    .Dedup([k]) (TrackingID)  .Sort([ASC|DESC,] [k]) (Last)  .Count() .Values(k) .Keys() .Sum(k)
    .Limit(n) .Range(a, b)
    .Hops() / .CaptureNode() / .Node()     the capture node of each flow
    .Nodes()                                capture node + nodes whose MAC is Link.A / Link.B
    .In() / .Out() / .Both()                nodes whose MAC or PeerIntfMAC is Link.A / Link.B / either
    .Metrics()                              [{uuid: [FlowMetric...]}] (+ .Aggregates() .Sum() .Count())
    .RawPackets() [.BPF(expr)]              [{uuid: [{Timestamp, Index, Data, LinkType}]}], pcap output
    .Group() [.MoreThan([n])]               [{TrackingID: [flows]}]
"""

import base64
import io

from ..gremlin.errors import GremlinError
from ..gremlin.metrics import MetricsValue
from ..gremlin.params import fmt_params, params_to_filter
from ..gremlin.registry import ExtensionStep, default_registry
from ..gremlin.steps import HasStep
from ..gremlin.values import (GraphValue, ListValue, NodesValue, PathsValue, TraversalValue, dedup_elements,
                              dedup_key, sort_elements, values_of)
from ..graph import filters as F
from ..graph.metadata import MISSING, flatten_keys, get_raw
from ..storage.base import FlowView, flow_pushdown, normalize_flow_filter

NO_STORAGE = "No storage backend has been configured"


def _and(flts):
    flts = [f for f in flts if f is not None]
    if not flts:
        return None
    return flts[0] if len(flts) == 1 else F.And(*flts)


def _public(f):
    if "LastRawPackets" in f:
        return {k: v for k, v in f.items() if k != "LastRawPackets"}
    return f


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plain(key):
    return not key.startswith("@") and not key.startswith("Metadata.")


def _path(f, path):
    v = f
    for p in path:
        if not isinstance(v, dict):
            return MISSING
        v = v.get(p, MISSING)
        if v is MISSING:
            return MISSING
    return v


class FlowsValue(TraversalValue):
    kind = "flows"

    def __init__(self, flows, graph):
        self.flows = flows          # list of Flow JSON dicts (read only)
        self.graph = graph          # the GraphValue they relate to (live or history)

    def elements(self):
        return self.flows

    def to_json_value(self):
        return [_public(f) for f in self.flows]

    def _new(self, flows):
        return FlowsValue(flows, self.graph)

    @property
    def history(self):
        return self.graph is not None and self.graph.time_slice is not None

    # ---- filtering / shaping -------------------------------------------------------------------
    def step_Has(self, step, state):
        flt = normalize_flow_filter(step.flt)
        if flt is None:
            return self
        return self._new([f for f in self.flows if flt.match(FlowView(f))])

    step_HasEither = step_Has
    step_HasKey = step_Has
    step_HasNot = step_Has

    def step_Dedup(self, step, state):
        keys = step.keys or ["TrackingID"]
        if not all(_plain(k) for k in keys):
            views = dedup_elements([FlowView(f) for f in self.flows], keys)
            return self._new([v.Metadata for v in views])
        paths = [k.split(".") for k in keys]
        seen, out = set(), []
        for f in self.flows:
            vals = [v for v in (_path(f, p) for p in paths) if v is not MISSING]
            if not vals:
                out.append(f)             # flows lacking every key are never removed
                continue
            try:
                hk = tuple(vals)
                hash(hk)
            except TypeError:
                hk = dedup_key(vals)
            if hk in seen:
                continue
            seen.add(hk)
            out.append(f)
        return self._new(out)

    def step_Sort(self, step, state):
        key = step.explicit_key or "Last"
        if not _plain(key):
            views = sort_elements([FlowView(f) for f in self.flows], key, step.descending)
            return self._new([v.Metadata for v in views])
        path = key.split(".")
        vals = [_path(f, path) for f in self.flows]
        first = next((v for v in vals if v is not MISSING), MISSING)
        if first is MISSING:
            return self
        numeric = _num(first)
        keyed, rest = [], []
        for f, v in zip(self.flows, vals):
            if v is MISSING or (numeric and not _num(v)):
                rest.append(f)
            elif numeric:
                keyed.append((v, f))
            else:
                keyed.append((v if isinstance(v, str) else dedup_key(v), f))
        keyed.sort(key=lambda kv: kv[0], reverse=step.descending)
        return self._new([f for dummy, f in keyed] + rest)

    def step_Range(self, step, state):
        return self._new(self.flows[step.lo:max(step.lo, step.hi)])

    step_Limit = step_Range

    def step_Count(self, step, state):
        return ListValue(len(self.flows))

    def step_Values(self, step, state):
        return ListValue(values_of([FlowView(f) for f in self.flows], step.key))

    def step_Keys(self, step, state):
        seen = {}
        for f in self.flows:
            for k in flatten_keys(_public(f)):
                seen[k] = None
        return ListValue(list(seen) or None)

    def step_Sum(self, step, state):
        if step.key is None:
            raise GremlinError("Sum requires 1 parameter")
        total = 0
        for f in self.flows:
            v = get_raw(FlowView(f), step.key)
            if v is MISSING:
                continue
            if not _num(v):
                raise GremlinError("Sum: value of '%s' on flow %s is not a number" % (step.key, f.get("UUID")))
            total += v
        return ListValue(total)

    # ---- nodes ---------------------------------------------------------------------------------
    def _view(self):
        if self.graph is None:
            raise GremlinError("no graph to look nodes up")
        return self.graph.view

    def _nodes_by(self, key, value):
        if not value:
            return []
        return list(self._view().lookup_nodes(F.KeyFilter(key, value)))

    def _capture_nodes(self):
        out, seen, cache = [], set(), {}
        for f in self.flows:
            tid = f.get("NodeTID")
            if not tid:
                continue
            nodes = cache.get(tid)
            if nodes is None:
                nodes = cache[tid] = self._nodes_by("TID", tid)
            for n in nodes[:1]:
                out.append(n)
        return out, seen

    def step_Hops(self, step, state):
        nodes = self._capture_nodes()[0]
        return NodesValue(_dedup_nodes(nodes), self.graph)

    step_CaptureNode = step_Hops
    step_Node = step_Hops

    def _link_nodes(self, side, flt=None):
        out = []
        for f in self.flows:
            link = f.get("Link")
            if not isinstance(link, dict):
                continue
            for s in side:
                mac = link.get(s)
                if not mac:
                    continue
                for n in self._nodes_by("MAC", mac) + self._nodes_by("PeerIntfMAC", mac):
                    if flt is None or flt.match(n):
                        out.append(n)
        return _dedup_nodes(out)

    def step_Nodes(self, step, state):
        nodes = self._capture_nodes()[0]
        return NodesValue(_dedup_nodes(nodes + self._link_nodes("AB")), self.graph)

    def step_In(self, step, state):
        return NodesValue(self._link_nodes("A", step.flt), self.graph)

    def step_Out(self, step, state):
        return NodesValue(self._link_nodes("B", step.flt), self.graph)

    def step_Both(self, step, state):
        return NodesValue(self._link_nodes("AB", step.flt), self.graph)

    # ---- metrics, raw packets, groups ------------------------------------------------------------
    def step_Metrics(self, step, state):
        if self.history:
            store = state.ctx.get("flow_store")
            if store is None:
                raise GremlinError(NO_STORAGE)
            start, end = self.graph.time_slice
            uuids = [f["UUID"] for f in self.flows if f.get("UUID")]
            try:
                found = store.flow_metrics(uuids, start, end) if uuids else {}
            except Exception as exc:
                raise GremlinError(str(exc) or type(exc).__name__) from None
            metrics = {u: found[u] for u in uuids if found.get(u)}
            return MetricsValue(metrics, self.graph)
        metrics = {}
        for f in self.flows:
            m = f.get("LastUpdateMetric") or f.get("Metric")
            if isinstance(m, dict):
                metrics.setdefault(f.get("UUID", ""), []).append(m)
        return MetricsValue(metrics, self.graph)

    def step_RawPackets(self, step, state):
        out = {}
        for f in self.flows:
            raws = f.get("LastRawPackets")
            if raws:
                out[f.get("UUID", "")] = list(raws)
        return RawPacketsValue(out)

    def step_Group(self, step, state):
        groups = {}
        for f in self.flows:
            groups.setdefault(f.get("TrackingID", ""), []).append(f)
        return GroupValue(groups)


def _dedup_nodes(nodes):
    seen, out = set(), []
    for n in nodes:
        if n.ID not in seen:
            seen.add(n.ID)
            out.append(n)
    return out


class RawPacketsValue(TraversalValue):
    kind = "rawpackets"
    is_raw_packets = True

    def __init__(self, packets):
        self.packets = packets      # uuid -> [{"Timestamp", "Index", "Data" (base64), "LinkType"}]

    def elements(self):
        return [p for ps in self.packets.values() for p in ps]

    def to_json_value(self):
        return [self.packets] if self.packets else []

    def step_Count(self, step, state):
        return ListValue(len(self.elements()))

    def step_BPF(self, step, state):
        out = {}
        matchers = {}
        for u, ps in self.packets.items():
            kept = []
            for p in ps:
                lt = p.get("LinkType", 1)
                m = matchers.get(lt)
                if m is None:
                    m = matchers[lt] = step.matcher(lt)
                if m.match(_raw(p)):
                    kept.append(p)
            if kept:
                out[u] = kept
        return RawPacketsValue(out)

    def to_pcap(self):
        from ..flow.pcapfile import PcapWriter
        pkts = sorted(self.elements(), key=lambda p: (p.get("Timestamp", 0), p.get("Index", 0)))
        buf = io.BytesIO()
        lt = pkts[0].get("LinkType", 1) if pkts else 1
        w = PcapWriter(buf, linktype=lt)
        for p in pkts:
            if p.get("LinkType", 1) == lt:
                w.write(_raw(p), int(p.get("Timestamp", 0)) * 1000000)
        w.close()
        return buf.getvalue()


def _raw(p):
    try:
        return base64.b64decode(p.get("Data") or "")
    except (ValueError, TypeError):
        return b""


class GroupValue(TraversalValue):
    kind = "groups"

    def __init__(self, groups):
        self.groups = groups

    def elements(self):
        return list(self.groups.values())

    def to_json_value(self):
        return [{k: [_public(f) for f in v] for k, v in self.groups.items()}] if self.groups else []

    def step_MoreThan(self, step, state):
        return GroupValue({k: v for k, v in self.groups.items() if len(v) > step.n})

    def step_Count(self, step, state):
        return ListValue(len(self.groups))


# ---- steps ----------------------------------------------------------------------------------------
class FlowsStep(ExtensionStep):
    name = "Flows"

    def validate(self):
        self.flt = params_to_filter(self.params)
        self.extra = []

    def absorb(self, nxt):
        # Has/HasEither right after Flows() are merged into the flow search (pushed to the store)
        if isinstance(nxt, HasStep) and self.stop is None:
            self.extra.append(nxt.flt)
            return True
        return False

    def _filter(self):
        return normalize_flow_filter(_and([self.flt] + self.extra))

    def exec(self, prev, state):
        if isinstance(prev, GraphValue):
            return self._query(prev, None, state)
        if isinstance(prev, (NodesValue, PathsValue)):
            nodes = prev.items if isinstance(prev, NodesValue) else prev.nodes()
            tids = set()
            for n in nodes:
                tid = n.Metadata.get("TID")
                if isinstance(tid, str) and tid:
                    tids.add(tid)
            return self._query(prev.graph, tids, state)
        return ExtensionStep.exec(self, prev, state)

    def _query(self, graph, tids, state):
        flt = self._filter()
        if tids is not None and not tids:
            return FlowsValue([], graph)
        ts = graph.time_slice if graph is not None else None
        if ts is None:
            cache = state.ctx.get("flow_cache")
            if cache is None:
                return FlowsValue([], graph)
            constraints = flow_pushdown(flt) if flt is not None else []
            if tids is not None:
                constraints = constraints + [[("NodeTID", frozenset(tids))]]
            flows = cache.candidates(constraints)
            if flt is not None:
                flows = [f for f in flows if flt.match(FlowView(f))]
            return FlowsValue(flows, graph)
        store = state.ctx.get("flow_store")
        if store is None:
            raise GremlinError(NO_STORAGE)
        if tids is not None:
            flt = _and([F.KeyFilter("NodeTID", F.Within(*sorted(tids))), flt])
        try:
            flows = store.query_flows(flt, ts[0], ts[1])
        except Exception as exc:
            raise GremlinError(str(exc) or type(exc).__name__) from None
        return FlowsValue(flows, graph)


class _NoParamStep(ExtensionStep):
    def validate(self):
        if self.params:
            raise GremlinError("%s accepts no parameter : %s" % (self.name, fmt_params(self.params)))


class HopsStep(_NoParamStep):
    name = "Hops"


class CaptureNodeStep(_NoParamStep):
    name = "CaptureNode"


class NodeStep(_NoParamStep):
    name = "Node"


class NodesStep(_NoParamStep):
    name = "Nodes"


class RawPacketsStep(_NoParamStep):
    name = "RawPackets"
    returns_raw_packets = True


class GroupStep(_NoParamStep):
    name = "Group"


class BPFStep(ExtensionStep):
    name = "BPF"
    returns_raw_packets = True

    def validate(self):
        if len(self.params) != 1 or not isinstance(self.params[0], str):
            raise GremlinError("BPF requires one string parameter : %s" % fmt_params(self.params))
        self.expr = self.params[0]
        from ..flow import bpf
        try:
            bpf.BPFMatcher(self.expr).close()
        except bpf.BPFError as exc:
            raise GremlinError("invalid BPF filter %r: %s" % (self.expr, exc)) from None

    def matcher(self, linktype):
        from ..flow import bpf
        try:
            return bpf.BPFMatcher(self.expr, linktype)
        except bpf.BPFError as exc:
            raise GremlinError("invalid BPF filter %r: %s" % (self.expr, exc)) from None


class MoreThanStep(ExtensionStep):
    name = "MoreThan"

    def validate(self):
        if len(self.params) > 1 or (self.params and (not isinstance(self.params[0], int)
                                                     or isinstance(self.params[0], bool))):
            raise GremlinError("MoreThan accepts at most one integer parameter : %s" % fmt_params(self.params))
        self.n = self.params[0] if self.params else 1


def _loop_only(classes):
    """These steps read the flow cache, which the event loop updates: their queries run on the loop."""
    for cls in classes:
        cls.loop_only = True
    return classes


STEPS = _loop_only((FlowsStep, HopsStep, CaptureNodeStep, NodeStep, NodesStep, RawPacketsStep, GroupStep, BPFStep,
                    MoreThanStep))


def register(registry=None):
    """Register the flow steps (idempotent)."""
    reg = registry or default_registry
    for cls in STEPS:
        reg.register_step(cls.name, cls, replace=True)
