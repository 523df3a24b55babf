"""An audit run: the rules evaluated over one snapshot of the topology.

    POST /api/audit {"Files": [{"Name", "Rules", "Lines"}], "Builtin": true, "At": T, "Scope": "G...",
                     "FailOn": "error", "ExpectedAgents": ["compute-0"], "Formats": ["junit", "sarif", "table"]}
    -> the report (docs/audits.md), with "Rendered": {format: text} for the Formats asked

The snapshot is the live graph (or `G.At(At)` from the history store), restricted to what `Scope`
returns, copied into a private graph; every rule runs on that copy, so all of them see the same
instant. Rules with `changed_since` run on the analyzer's history (api/topology_diff.py).
"""

import asyncio
import pickle
import time

from ...common.timeutil import now_ms
from ...graph import Graph
from ...graph.diff import DEFAULT_IGNORED, diff_count
from ..query import QueryEngine, QueryError, at_query
from ..timespec import TimeSpecError, parse_time_ms
from ..topology_diff import DiffError, topology_diff
from . import checks
from .report import RENDERERS
from .rules import RANK, SEVERITIES, RuleError, builtin_file, parse_files


class AuditError(ValueError):
    """A 400 with this message (bad request, rule file, scope)."""


def _copy(query, result):
    """The scope's elements, serialised while the graph lock is held (pickle copies the
    metadata deeply, in C: the live elements may change once the lock is released)."""
    kind = getattr(result, "kind", None)
    if kind == "graph":
        nodes, edges = list(result.view.all_nodes()), list(result.view.all_edges())
    elif kind == "nodes":
        nodes, edges = list(result.items), []
    else:
        raise QueryError("the audit scope %s must return a graph or nodes" % query)
    return pickle.dumps((nodes, edges), protocol=pickle.HIGHEST_PROTOCOL)


def build_graph(blob):
    nodes, edges = pickle.loads(blob)
    g = Graph(host_id="audit", origin="audit")
    for n in nodes:
        g.add_node(n)
    for e in edges:
        if e.Parent in g.nodes and e.Child in g.nodes:
            g.add_edge(e)
    return g


class AuditRequest:
    def __init__(self, data, now):
        if not isinstance(data, dict):
            raise AuditError("the body must be an object {\"Files\": [...], \"Builtin\": true, ...}")
        self.now = now
        files = data.get("Files") or []
        if not isinstance(files, list):
            raise AuditError("Files: expected a list of rule files [{\"Name\": ..., \"Rules\": {\"rules\": [...]}}]")
        self.builtin = data.get("Builtin", False)
        if not isinstance(self.builtin, bool):
            raise AuditError("Builtin: expected true or false")
        if not files and not self.builtin:
            raise AuditError("no rules: give rule files (Files) or the built-in pack (Builtin: true)")
        try:
            self.at = None if data.get("At") in (None, "") else parse_time_ms(data["At"], now, "At")
        except TimeSpecError as exc:
            raise AuditError(str(exc)) from None
        self.scope = data.get("Scope") or "G"
        if not isinstance(self.scope, str):
            raise AuditError("Scope: expected a Gremlin query")
        self.fail_on = data.get("FailOn") or "error"
        if self.fail_on not in SEVERITIES:
            raise AuditError("FailOn: one of %s, got %r" % (", ".join(SEVERITIES), self.fail_on))
        self.formats = data.get("Formats") or []
        if not isinstance(self.formats, list) or any(f not in RENDERERS for f in self.formats):
            raise AuditError("Formats: a list of %s" % ", ".join(sorted(RENDERERS)))
        self.expected_agents = data.get("ExpectedAgents") or []
        if not isinstance(self.expected_agents, list) or not all(isinstance(h, str) for h in self.expected_agents):
            raise AuditError("ExpectedAgents: expected a list of host names")
        self.files_data = ([builtin_file()] if self.builtin else []) + list(files)


class Auditor:
    def __init__(self, engine):
        self.engine = engine        # the analyzer's QueryEngine (live graph + history)

    async def run(self, data, now=None):
        now = now_ms() if now is None else now
        req = AuditRequest(data, now)
        try:
            files = parse_files(req.files_data, self.engine.validate)
        except RuleError as exc:
            raise AuditError(str(exc)) from None
        started = time.monotonic()
        query = at_query(req.scope, req.at) if req.at is not None else req.scope
        try:
            blob = await self.engine.run_off_loop(query, lambda r: _copy(req.scope, r))
        except QueryError as exc:
            raise AuditError("Scope: %s" % exc) from None
        loop = asyncio.get_running_loop()
        graph = await loop.run_in_executor(None, build_graph, blob)
        private = QueryEngine(graph, timeout=self.engine.timeout, max_results=self.engine.max_results)
        out_files = []
        for f in files:
            results = []
            for rule in f.rules:
                if rule.changed_since is not None:
                    results.append(await self._diff_rule(rule, req))
                else:
                    results.append(await loop.run_in_executor(None, self._rule, private, graph, rule, req))
            out_files.append({"Name": f.name, "Rules": results})
        report = make_report(out_files, req, now, time.monotonic() - started, len(graph.nodes))
        report["Rendered"] = {fmt: RENDERERS[fmt](report) for fmt in req.formats}
        return report

    @staticmethod
    def _rule(private, graph, rule, req):
        t0 = time.monotonic()
        res = rule.to_json()
        try:
            if rule.when and not checks.items_of(private.run(rule.when))[2]:
                return dict(res, Status="skipped", Message="not applicable: `when` (%s) found nothing" % rule.when,
                            Violations=[], Duration=time.monotonic() - t0)
            if rule.check == "agents_connected":
                if not req.expected_agents:
                    return dict(res, Status="skipped", Violations=[], Duration=time.monotonic() - t0,
                                Message="no expected agents given (--expect-agent / ExpectedAgents)")
                violations = checks.check_agents(graph, req.expected_agents)
            else:
                kind, items, number = checks.items_of(private.run(rule.query))
                violations = _check(private, graph, rule, kind, items, number)
        except (QueryError, checks.CheckError) as exc:
            return dict(res, Status="error", Message=str(exc), Violations=[], Duration=time.monotonic() - t0)
        return dict(res, Status="failed" if violations else "passed", Violations=violations,
                    Message="%d violation%s" % (len(violations), "" if len(violations) == 1 else "s") if violations else "",
                    Duration=time.monotonic() - t0)

    async def _diff_rule(self, rule, req):
        t0 = time.monotonic()
        res = rule.to_json()
        try:
            t1 = parse_time_ms(rule.changed_since, req.now, "changed_since")
            t2 = parse_time_ms(rule.changed_until, req.now, "changed_until") if rule.changed_until else req.at
            ignore = rule.ignore if rule.ignore is not None else list(DEFAULT_IGNORED)
            diff = await topology_diff(self.engine, t1, t2, rule.query, ignore)
        except (TimeSpecError, DiffError) as exc:
            return dict(res, Status="error", Message=str(exc), Violations=[], Duration=time.monotonic() - t0)
        changes = _diff_violations(diff)
        violations = checks.check_expect(None, rule.expect, "diff", [], diff_count(diff))
        if rule.expect[0] == "empty":
            violations = changes
        return dict(res, Status="failed" if violations else "passed", Violations=violations, Diff=diff,
                    Message="%d change%s" % (len(changes), "" if len(changes) == 1 else "s"),
                    Duration=time.monotonic() - t0)


def _check(private, graph, rule, kind, items, number):
    if rule.check == "expect":
        if rule.per:
            hosts = private.nodes(rule.hosts)
            return checks.check_per_host(graph, rule.expect, kind, items, hosts)
        return checks.check_expect(graph, rule.expect, kind, items, number)
    if rule.check == "same":
        return checks.check_same(graph, rule.arg, kind, items)
    if rule.check == "unique":
        return checks.check_unique(graph, rule.arg, kind, items, rule.except_linked_within)
    if rule.check == "linked":
        return checks.check_linked(graph, rule.arg, kind, items)
    return checks.check_fits_underlay(graph, rule.arg, kind, items)


def _diff_violations(diff):
    out = []
    for part, label in (("Nodes", "node"), ("Edges", "edge")):
        for key in ("Added", "Removed"):
            for el in diff[part][key]:
                md = el.get("Metadata") or {}
                name = md.get("Name") or md.get("RelationType") or el["ID"]
                out.append({"Message": "%s %s: %s@%s" % (label, key.lower(), name, el.get("Host") or "-"),
                            "Nodes": [{"ID": el["ID"], "Host": el.get("Host", ""), "Name": md.get("Name"),
                                       "Type": md.get("Type"), "TID": md.get("TID")}] if part == "Nodes" else [],
                            "Values": {}})
        for ch in diff[part]["Changed"]:
            text = ", ".join("%s %r -> %r" % (k, v["Old"], v["New"]) for k, v in sorted(ch["Changes"].items()))
            node = {k: ch.get(k) for k in ("ID", "Host", "Name", "Type", "TID")} if part == "Nodes" else None
            out.append({"Message": "%s changed: %s@%s: %s" % (label, ch.get("Name") or ch["ID"], ch.get("Host") or "-", text),
                        "Nodes": [node] if node else [], "Values": ch["Changes"]})
    return out


def make_report(files, req, now, duration, graph_size):
    summary = {"Rules": 0, "Passed": 0, "Failed": 0, "Skipped": 0, "Errors": 0, "Violations": 0,
               "FailedBySeverity": {s: 0 for s in SEVERITIES}}
    failed = False
    for f in files:
        for r in f["Rules"]:
            summary["Rules"] += 1
            key = {"passed": "Passed", "failed": "Failed", "skipped": "Skipped", "error": "Errors"}[r["Status"]]
            summary[key] += 1
            summary["Violations"] += len(r["Violations"])
            if r["Status"] in ("failed", "error"):
                summary["FailedBySeverity"][r["Severity"]] += 1
                if RANK[r["Severity"]] >= RANK[req.fail_on]:
                    failed = True
    return {"Time": now, "At": req.at, "Scope": req.scope, "FailOn": req.fail_on, "Failed": failed,
            "Nodes": graph_size, "Duration": duration, "Summary": summary, "Files": files}


def mount_audit(app, engine, guard):
    from ..http import HTTPError, json_response, read_body
    auditor = Auditor(engine)

    async def handle(request):
        guard(request, "topology", "read")
        data = await read_body(request)
        try:
            return json_response(await auditor.run(data))
        except AuditError as exc:
            raise HTTPError(400, str(exc)) from None
    app.router.add_post("/api/audit", handle)
    app.router.add_post("/api/audit/", handle)
    return auditor
