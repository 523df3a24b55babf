"""`skydive client audit`: run rule files (and/or the built-in pack) on the analyzer, print or
write the report (table, json, junit, sarif); exit 0 when nothing at or above --fail-on fails,
1 when something does, 2 for a usage, rule-file or connection error."""

import sys

from ..api.audit.report import RENDERERS
from ..api.audit.rules import SEVERITIES, RuleError, read_rule_file
from ..common.jsonutil import pretty
from .rest import ClientError

FORMATS = ("table", "json", "junit", "sarif")


def add_parser(cs):
    a = cs.add_parser("audit", help="check the topology against rule files (exit 1 when a rule fails)")
    a.add_argument("--rules", action="append", default=[], metavar="FILE", help="YAML rule file (repeatable)")
    a.add_argument("--builtin", action="store_true", help="also run the built-in pack (docs/audits.md)")
    a.add_argument("--at", default=None, metavar="TIME",
                   help="audit the topology as it was then (RFC3339, RFC1123, epoch s/ms, or -10m)")
    a.add_argument("--scope", default=None, metavar="GREMLIN",
                   help="audit only what this query returns (a graph, e.g. ...SubGraph(), or nodes)")
    a.add_argument("--expect-agent", action="append", default=[], metavar="HOST",
                   help="a host whose agent must be connected (repeatable)")
    a.add_argument("--format", choices=FORMATS, default="table")
    a.add_argument("--output", "-o", default=None, metavar="FILE", help="write the report there (default: stdout)")
    a.add_argument("--fail-on", choices=SEVERITIES, default="error",
                   help="lowest severity whose failure makes the exit code 1 (default: error)")
    return a


def run(args, rest):
    if not args.rules and not args.builtin:
        print("skydive: audit needs --rules FILE or --builtin", file=sys.stderr)
        return 2
    try:
        files = [read_rule_file(path) for path in args.rules]
        body = {"Files": files, "Builtin": args.builtin, "At": args.at, "Scope": args.scope,
                "FailOn": args.fail_on, "ExpectedAgents": args.expect_agent}
        rest.timeout = max(rest.timeout, 120.0)
        report = rest.json("POST", "/api/audit", body)
    except (RuleError, ClientError) as exc:
        print("skydive: audit: %s" % exc, file=sys.stderr)
        return 2
    if not isinstance(report, dict) or "Files" not in report:
        print("skydive: audit: the analyzer answered no report", file=sys.stderr)
        return 2
    text = pretty(report) + "\n" if args.format == "json" else RENDERERS[args.format](report)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            print("skydive: audit: cannot write %s: %s" % (args.output, exc.strerror), file=sys.stderr)
            return 2
        if args.format != "table":
            sys.stdout.write(RENDERERS["table"](report))
    else:
        sys.stdout.write(text)
    return 1 if report.get("Failed") else 0
