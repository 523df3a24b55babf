"""Config audits: rule files (rules.py), their checks (checks.py), the run over a snapshot of the
topology (run.py, POST /api/audit) and the reports (report.py: table, JUnit XML, SARIF 2.1.0).
The built-in pack is builtin.yaml. docs/audits.md describes the rule format."""
