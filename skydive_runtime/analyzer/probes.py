"""The analyzer's topology probes by name (`analyzer.topology.probes`).

`fabric` (static nodes of `analyzer.topology.fabric`, analyzer/fabric_probe.py) always runs, as
upstream's; `ovn` (the OVN Northbound database, analyzer/ovn_probe.py) when named; upstream's peering,
k8s and istio are not implemented, and any other name is refused at start. Adding one: a module with
`create(analyzer)` returning a `common.parts.Probe`, and one `PROBES.register(name, ".module")` line here.
"""

from ..common.parts import ProbeRegistry

PROBES = ProbeRegistry("analyzer.topology.probes", __package__, always_on=("fabric",))
PROBES.register("ovn", ".ovn_probe")
PROBES.register("fabric", ".fabric_probe")
