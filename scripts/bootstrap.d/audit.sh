# Audit report tests (tests/audit): junitparser reads the JUnit XML as Jenkins/GitLab/Zuul do,
# jsonschema validates the SARIF against the vendored OASIS 2.1.0 schema. Test-only: the runtime
# does not import them.
PIP_PACKAGES+=(junitparser jsonschema)
PIP_IMPORTS+=(junitparser jsonschema)
