"""The agent's topology probes by name (`agent.topology.probes`; netlink and netns always run).

Each module named here has `create(agent)` returning a `common.parts.Probe`; a probe may use the
ones listed before it (`agent.probes[name]`). Adding a probe: a new module, and one line here.
"""

from ..common.parts import ProbeRegistry

PROBES = ProbeRegistry("agent.topology.probes", __package__, always_on=("netlink", "netns"))
PROBES.register("netlink", ".netlink_probe")
PROBES.register("netns", ".netns_probe")
PROBES.register("ovsdb", ".ovsdb_probe")
PROBES.register("lldp", ".lldp_probe")
PROBES.register("docker", ".docker_probe")
PROBES.register("neutron", ".neutron_probe")
