"""The `skydive` command line: services (analyzer, agent, allinone) and the REST client."""
