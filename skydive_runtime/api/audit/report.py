"""Audit reports from the report JSON (run.py): a text table, JUnit XML, SARIF 2.1.0.

JUnit: <testsuites> with one <testsuite> per rule file, one <testcase> per rule (classname = the
file, name = the rule), one <failure> per violation (type = the rule's severity), <error> for a
rule that could not run, <skipped> for a rule not applicable. SARIF: one run, the rules as
`tool.driver.rules`, one result per violation located at its rule (rule file and line) and at
the nodes (logical locations `host/namespace/name`).
"""

import datetime
import json
import xml.etree.ElementTree as ET

from ... import __version__

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
INFO_URI = "https://github.com/skydive-project/skydive"


def _iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000.0, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def table(report):
    s = report["Summary"]
    lines = ["audit of %d nodes%s%s: %d rules, %d passed, %d failed, %d skipped, %d errors, %d violations" % (
        report["Nodes"], " at %s" % _iso(report["At"]) if report["At"] is not None else "",
        " (scope %s)" % report["Scope"] if report["Scope"] != "G" else "", s["Rules"], s["Passed"], s["Failed"],
        s["Skipped"], s["Errors"], s["Violations"])]
    width = max([len(r["Name"]) for f in report["Files"] for r in f["Rules"]] + [4])
    for f in report["Files"]:
        lines.append("")
        lines.append(f["Name"])
        for r in f["Rules"]:
            message = r["Message"] if r["Status"] != "passed" else ""
            lines.append("  %-7s %-7s %-*s %s" % (r["Status"].upper(), r["Severity"], width, r["Name"], message))
            for v in r["Violations"]:
                lines.append("      - %s" % v["Message"])
    lines.append("")
    lines.append("result: %s (fail on %s and above)" % ("FAILED" if report["Failed"] else "OK", report["FailOn"]))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _detail(v):
    out = [v["Message"]]
    for n in v.get("Nodes") or ():
        out.append("  node %s host=%s name=%s type=%s tid=%s%s" % (
            n.get("ID"), n.get("Host"), n.get("Name"), n.get("Type"), n.get("TID"),
            " namespace=%s" % n["Namespace"] if n.get("Namespace") else ""))
    if v.get("Values"):
        out.append("  values: %s" % ", ".join("%s=%r" % kv for kv in sorted(v["Values"].items())))
    return "\n".join(out)


def junit(report):
    root = ET.Element("testsuites", name="skydive audit")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    stamp = _iso(report["At"] if report["At"] is not None else report["Time"])
    for f in report["Files"]:
        rules = f["Rules"]
        counts = {"tests": len(rules), "failures": sum(r["Status"] == "failed" for r in rules),
                  "errors": sum(r["Status"] == "error" for r in rules),
                  "skipped": sum(r["Status"] == "skipped" for r in rules),
                  "time": sum(r["Duration"] for r in rules)}
        suite = ET.SubElement(root, "testsuite", name=f["Name"], timestamp=stamp, hostname="skydive-analyzer",
                              **{k: ("%.3f" % v if k == "time" else str(v)) for k, v in counts.items()})
        for k in totals:
            totals[k] += counts[k]
        for r in rules:
            case = ET.SubElement(suite, "testcase", classname=f["Name"], name=r["Name"], time="%.3f" % r["Duration"])
            if r["Status"] == "failed":
                for v in r["Violations"]:
                    el = ET.SubElement(case, "failure", message=v["Message"], type=r["Severity"])
                    el.text = _detail(v)
            elif r["Status"] == "error":
                ET.SubElement(case, "error", message=r["Message"], type="RuleError").text = r["Message"]
            elif r["Status"] == "skipped":
                ET.SubElement(case, "skipped", message=r["Message"])
            if r.get("Description") or r.get("Query"):
                ET.SubElement(case, "system-out").text = "%s\nquery: %s" % (r.get("Description") or "", r.get("Query"))
    for k, v in totals.items():
        root.set(k, "%.3f" % v if k == "time" else str(v))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _uri(name):
    return "skydive-builtin-rules.yaml" if name == "builtin" else name


def sarif(report):
    rules, index, results = [], {}, []
    for f in report["Files"]:
        for r in f["Rules"]:
            rid = "%s/%s" % (f["Name"], r["Name"]) if f["Name"] != "builtin" else r["Name"]
            index[rid] = len(rules)
            rule = {"id": rid, "name": r["Name"],
                    "shortDescription": {"text": r.get("Description") or r["Name"]},
                    "defaultConfiguration": {"level": SARIF_LEVEL[r["Severity"]]},
                    "properties": {"query": r.get("Query") or "", "check": r.get("Check")}}
            if r.get("Why"):
                rule["fullDescription"] = {"text": r["Why"]}
                rule["help"] = {"text": r["Why"]}
            rules.append(rule)
            region = {"startLine": r["Line"]} if r.get("Line") else None
            physical = {"artifactLocation": {"uri": _uri(f["Name"])}}
            if region:
                physical["region"] = region
            for v in r["Violations"]:
                logical = [{"name": n.get("Name") or n["ID"], "kind": "resource",
                            "fullyQualifiedName": "/".join(x for x in (n.get("Host"), n.get("Namespace"), n.get("Name") or n["ID"]) if x)}
                           for n in v.get("Nodes") or ()]
                loc = {"physicalLocation": physical}
                if logical:
                    loc["logicalLocations"] = logical
                results.append({"ruleId": rid, "ruleIndex": index[rid], "level": SARIF_LEVEL[r["Severity"]],
                                "message": {"text": v["Message"]}, "locations": [loc],
                                "properties": {"nodes": v.get("Nodes") or [], "values": v.get("Values") or {}}})
            if r["Status"] == "error":
                results.append({"ruleId": rid, "ruleIndex": index[rid], "level": "error", "kind": "fail",
                                "message": {"text": "the rule could not run: %s" % r["Message"]},
                                "locations": [{"physicalLocation": physical}]})
    run = {"tool": {"driver": {"name": "skydive-audit", "version": __version__, "informationUri": INFO_URI,
                               "rules": rules}},
           "invocations": [{"executionSuccessful": True,
                            "startTimeUtc": _iso(report["Time"]) + "Z"}],
           "properties": {"at": report["At"], "scope": report["Scope"], "nodes": report["Nodes"]},
           "results": results}
    # compact: json's indented output runs in pure Python, ten times slower on large reports
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, separators=(",", ":")) + "\n"


RENDERERS = {"table": table, "junit": junit, "sarif": sarif}
