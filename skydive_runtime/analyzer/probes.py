"""The analyzer's topology probes by name (`analyzer.topology.probes`).

Upstream's analyzer probes (fabric, peering, k8s, istio, ovn) are not implemented yet, so the
registry is empty and any name is refused at start. Adding one: a module with `create(analyzer)`
returning a `common.parts.Probe`, and one `PROBES.register(name, ".module")` line here.
"""

from ..common.parts import ProbeRegistry

PROBES = ProbeRegistry("analyzer.topology.probes", __package__)
