"""lldp probe against the real lldpd (Debian's) playing a ToR switch in a namespace, at the other
end of two veth pairs: one switch node, two switchport nodes each linked to its local veth, with
the announced values and upstream's IDs; updated when lldpd's configuration changes; removed on
lldpd's shutdown frame and, after a SIGKILL, when the TTL runs out. A second agent on a third link
to the same lldpd shares the one switch node: it stays while either agent still sees it."""

import os
import shutil
import signal
import subprocess
import tempfile
import uuid

import pytest
import requests

from tests.agent.conftest import agent_config, agent_stack
from tests.fixtures.processes import SkydiveProcess, wait_until
from tests.fixtures.topology import NetEnv, Names, run

pytestmark = [pytest.mark.needs_root,
              pytest.mark.skipif(shutil.which("lldpd") is None, reason="needs lldpd (apt install lldpd)")]

SYSNAME = "tor-%s" % os.urandom(2).hex()
MGMT = "192.0.2.61"


def oid(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(parts)))


class Switch:
    """lldpd in namespace `ns` on interfaces `ports`, controlled through its own socket."""

    def __init__(self, net, ns, ports, workdir):
        self.net, self.ns, self.ports = net, ns, ports
        # lldpcli is set-uid _lldpd: its socket must be in a directory that user can traverse
        os.chmod(workdir, 0o755)
        self.sock = os.path.join(workdir, "lldpd.sock")
        self.proc = None

    def start(self):
        os.makedirs("/run/lldpd", exist_ok=True)       # lldpd's privilege-separation chroot
        conf = os.path.join(os.path.dirname(self.sock), "lldpd.conf")
        lines = ["configure lldp tx-interval 1",        # TTL = 4 s (tx-hold 4)
                 "configure lldp portidsubtype ifname",
                 "configure system hostname %s" % SYSNAME,
                 "configure system ip management pattern %s" % MGMT]
        lines += ["configure ports %s lldp portdescription Ethernet1/%d" % (p, i + 1) for i, p in enumerate(self.ports)]
        with open(conf, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(conf, 0o644)
        # lldpd applies the file (through lldpcli) before it sends its first frame
        self.proc = self.net.spawn(["lldpd", "-d", "-u", self.sock, "-O", conf, "-I", ",".join(self.ports),
                                    "-S", "ToR in a namespace"], netns=self.ns)
        wait_until(lambda: self.cli("show", "configuration", check=False).returncode == 0, timeout=10,
                   message="lldpd answering on its control socket")

    def cli(self, *args, check=True):
        return run(["ip", "netns", "exec", self.ns, "lldpcli", "-u", self.sock] + list(args), check=check)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def lldp_env(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    names = Names("ll")
    local = [names("a"), names("a")]
    remote = [names("b"), names("b")]
    ns = names("n")
    net = NetEnv()
    workdir = tmp_path_factory.mktemp("lldp")
    sockdir = tempfile.mkdtemp(prefix="skydive-lldp-")
    stack = agent_stack(workdir)
    stack.agent_cfg["agent"]["topology"]["probes"] = ["lldp"]
    stack.agent_cfg["agent"]["topology"]["lldp"] = {"interfaces": local}
    try:
        net.add_netns(ns)
        for a, b in zip(local, remote):
            net.add_veth(a, b, netns_b=ns)
            net.ip("link", "set", a, "up")
            net.ip("link", "set", b, "up", netns=ns)
        net.ip("addr", "add", MGMT + "/24", "dev", remote[0], netns=ns)
        stack.start()
        yield stack, Switch(net, ns, remote, sockdir), local, remote, (net, names, sockdir)
    finally:
        stack.stop()
        net.cleanup()
        shutil.rmtree(sockdir, ignore_errors=True)


def _switch_query():
    return "G.V().Has('Type','switch','Name','%s')" % SYSNAME


def _wait_linked(stack, local):
    for a in local:
        stack.wait_count(_switch_query() + ".Out('Type','switchport').Dedup().Out('Name','%s')" % a, 1, timeout=20)


def test_lldpd_switch_and_ports(lldp_env):
    stack, switch, local, remote, _env = lldp_env
    switch.start()
    try:
        _wait_linked(stack, local)
        chassis = stack.q(_switch_query())[0]
        md = chassis["Metadata"]
        assert md["Probe"] == "lldp"
        assert md["LLDP"]["SysName"] == SYSNAME and md["LLDP"]["Description"] == "ToR in a namespace"
        assert md["LLDP"]["MgmtAddress"] == MGMT and md["LLDP"]["ChassisIDType"] == "MAC Address"
        macs = [run(["ip", "netns", "exec", switch.ns, "cat", "/sys/class/net/%s/address" % b]).stdout.strip()
                for b in remote]
        assert md["LLDP"]["ChassisID"] in macs
        assert chassis["ID"] == oid(SYSNAME, "SysName", MGMT, "MgmtAddress")
        # one switch for both links, a port per link, each linked to its own veth
        assert stack.count(_switch_query()) == 1
        for i, (a, b) in enumerate(zip(local, remote)):
            port = stack.q("G.V().Has('Name','%s').In('Type','switchport')" % a)[0]
            pmd = port["Metadata"]
            assert port["ID"] == oid(chassis["ID"], b, "Interface Name")
            assert pmd["Name"] == "Ethernet1/%d" % (i + 1) and pmd["Probe"] == "lldp"
            assert pmd["LLDP"]["PortID"] == b and pmd["LLDP"]["PortIDType"] == "Interface Name"
            assert pmd["LLDP"]["Description"] == "Ethernet1/%d" % (i + 1)
            assert pmd["LLDP"]["LinkAgggregation"] == {"Enabled": False, "Supported": True}
            assert stack.count("G.V('%s').InE().Has('RelationType','ownership')" % port["ID"]) == 1
        status = requests.get(stack.agent.url + "/api/status", timeout=5).json()["TopologyProbes"]["lldp"]
        assert status["Interfaces"] == sorted(local) and status["Ports"] == 2 and "Errors" not in status
        # lldpd's configuration changes reach the nodes
        switch.cli("configure", "system", "description", "ToR renamed")
        switch.cli("configure", "ports", remote[0], "lldp", "portdescription", "Ethernet9/9")
        stack.wait_count(_switch_query() + ".Has('LLDP.Description','ToR renamed')", 1, timeout=15)
        stack.wait_count("G.V().Has('Type','switchport','Name','Ethernet9/9').Out('Name','%s')" % local[0], 1,
                         timeout=15)
    finally:
        switch.stop()                  # lldpd sends a shutdown frame (TTL 0)
    stack.wait_count(_switch_query(), 0, timeout=5)
    stack.wait_count("G.V().Has('Type','switchport').Out('Name',Within('%s','%s'))" % tuple(local), 0, timeout=5)


def test_lldp_ttl_expiry(lldp_env):
    stack, switch, local, _remote, _env = lldp_env
    switch.start()
    try:
        _wait_linked(stack, local)
    finally:
        switch.stop(signal.SIGKILL)    # no shutdown frame: the 4 s TTL removes them
    stack.wait_count(_switch_query(), 0, timeout=10)
    assert stack.count("G.V().Has('Type','switchport').Out('Name',Within('%s','%s'))" % tuple(local)) == 0


def test_lldp_switch_shared_by_two_agents(lldp_env, tmp_path):
    stack, first, local, remote, (net, names, sockdir) = lldp_env
    mine, theirs = names("c"), names("d")
    net.add_veth(mine, theirs, netns_b=first.ns)
    net.ip("link", "set", mine, "up")
    net.ip("link", "set", theirs, "up", netns=first.ns)
    switch = Switch(net, first.ns, remote + [theirs], sockdir)
    cfg = agent_config(None, host_id="lldp-b-%s" % os.urandom(2).hex(), analyzers=[stack.analyzer.address])
    cfg["agent"]["topology"] = {"probes": ["lldp"], "lldp": {"interfaces": [mine]}}
    second = SkydiveProcess("agent", str(tmp_path / "agent2"), cfg)
    ports = _switch_query() + ".Out('Type','switchport').Dedup()"
    try:
        second.start()
        switch.start()
        _wait_linked(stack, local + [mine])
        assert stack.count(_switch_query()) == 1 and stack.count(ports) == 3
        # the second agent's link goes down: its port goes, the switch stays; back up: shared again
        net.ip("link", "set", mine, "down")
        stack.wait_count(ports, 2, timeout=10)
        assert stack.count(_switch_query()) == 1
        net.ip("link", "set", mine, "up")
        _wait_linked(stack, [mine])
        # the first agent's links go down: the switch stays for the second agent
        for a in local:
            net.ip("link", "set", a, "down")
        stack.wait_count(ports, 1, timeout=10)
        assert stack.count(ports + ".Out('Name','%s')" % mine) == 1
        # the second agent stops (its elements go with its connection): no agent sees the switch
        second.stop()
        stack.wait_count(_switch_query(), 0, timeout=10)
    finally:
        switch.stop()
        second.stop()
        for a in local:
            net.ip("link", "set", a, "up")
