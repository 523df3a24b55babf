"""The analyzer's topology probes by name (`analyzer.topology.probes`).

`ovn` (the OVN Northbound database, analyzer/ovn_probe.py) is implemented; upstream's fabric, peering,
k8s and istio are not, and any other name is refused at start. Adding one: a module with
`create(analyzer)` returning a `common.parts.Probe`, and one `PROBES.register(name, ".module")` line here.
"""

from ..common.parts import ProbeRegistry

PROBES = ProbeRegistry("analyzer.topology.probes", __package__)
PROBES.register("ovn", ".ovn_probe")
