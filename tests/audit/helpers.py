"""Shared by the audit tests: run `skydive client audit`, parse its JUnit with junitparser and
validate its SARIF against the vendored OASIS 2.1.0 schema (tests/audit/schemas)."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SARIF_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas", "sarif-schema-2.1.0.json")


def cli(address, *args, timeout=120):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "skydive_runtime.cli.main", "client", "--analyzer", address]
                          + list(args), capture_output=True, text=True, env=env, timeout=timeout)


def junit_failures(path):
    """{(suite, case): [failure messages]} read by junitparser (what Jenkins/GitLab read)."""
    from junitparser import Error, Failure, JUnitXml, Skipped
    xml = JUnitXml.fromfile(str(path))
    out = {}
    for suite in xml:
        for case in suite:
            results = case.result
            out[(suite.name, case.name)] = {
                "failures": sorted(r.message for r in results if isinstance(r, Failure)),
                "errors": [r.message for r in results if isinstance(r, Error)],
                "skipped": any(isinstance(r, Skipped) for r in results)}
    return out, xml


def sarif_results(path):
    """The SARIF report, validated against the 2.1.0 schema; {ruleId: [messages]}."""
    import jsonschema
    with open(SARIF_SCHEMA) as fh:
        schema = json.load(fh)
    with open(str(path)) as fh:
        doc = json.load(fh)
    jsonschema.Draft4Validator(schema).validate(doc)
    out = {}
    for r in doc["runs"][0]["results"]:
        out.setdefault(r["ruleId"], []).append(r["message"]["text"])
    return out, doc
