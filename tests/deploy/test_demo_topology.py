"""playbooks/files/demo-topology with Open vSwitch (what `make run` and `scripts/run-allinone
--remove` do to this machine's OVS): `up` starts an OVS when none runs and `down` stops that one
again, but leaves alone an OVS it found running. Each scenario runs in a namespace of its own,
with OVS's run, database and configuration directories in a temp dir (ovs-ctl honours
OVS_RUNDIR/OVS_DBDIR/OVS_SYSCONFDIR/OVS_LOGDIR), so a deployed OVS is never touched."""

import os
import shutil
import subprocess
import uuid

import pytest

from tests.fixtures.processes import REPO
from tests.fixtures.topology import pids_in_netns, run

SCRIPT = os.path.join(REPO, "playbooks", "files", "demo-topology")
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"

pytestmark = [pytest.mark.needs_root,
              pytest.mark.skipif(not os.path.exists(OVS_CTL), reason="Open vSwitch is not installed")]


@pytest.fixture
def host(tmp_path):
    """A namespace standing for the machine, with a private OVS directory; everything removed."""
    tag = uuid.uuid4().hex[:4]
    ns, prefix = "dm%s" % tag, "d%s" % tag       # prefix: d1a2b-veth1 stays under 15 characters
    ovsdir = str(tmp_path / "ovs")
    os.makedirs(ovsdir)
    env = {"OVS_RUNDIR": ovsdir, "OVS_DBDIR": ovsdir, "OVS_LOGDIR": ovsdir, "OVS_SYSCONFDIR": ovsdir,
           "DEMO_PREFIX": prefix, "DEMO_NET": "10.215.%d" % (os.getpid() % 250)}
    run(["ip", "netns", "add", ns])

    def sh(*cmd):
        return subprocess.run(["ip", "netns", "exec", ns, "env"] + ["%s=%s" % kv for kv in env.items()] + list(cmd),
                              capture_output=True, text=True, timeout=60)

    def ovs_pids():
        return [p for p in pids_in_netns(ns) if os.path.basename(os.readlink("/proc/%d/exe" % p)) in
                ("ovsdb-server", "ovs-vswitchd")]
    try:
        yield sh, ovs_pids
    finally:
        sh(SCRIPT, "down")
        sh(OVS_CTL, "stop")
        for pid in pids_in_netns(ns):
            os.kill(pid, 9)
        for i in (1, 2, 3):
            run(["ip", "netns", "del", "%s-ns%d" % (prefix, i)], check=False)
        run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(ovsdir, ignore_errors=True)


def test_down_stops_the_ovs_up_started(host):
    sh, ovs_pids = host
    up = sh(SCRIPT, "up")
    assert up.stdout.split() == ["created"], up.stderr
    assert len(ovs_pids()) >= 2
    assert "-ovs0" in sh("ovs-vsctl", "list-br").stdout
    down = sh(SCRIPT, "down")
    assert down.stdout.split() == ["deleted"], down.stderr
    assert ovs_pids() == []
    assert "ovs-netdev" not in sh("ip", "-br", "link").stdout
    assert sh(SCRIPT, "down").stdout.split() == ["unchanged"]


def test_down_leaves_an_ovs_that_was_running(host):
    sh, ovs_pids = host
    assert sh(OVS_CTL, "start", "--system-id=random").returncode == 0
    before = sorted(ovs_pids())
    assert before
    assert sh(SCRIPT, "up").stdout.split() == ["created"]
    down = sh(SCRIPT, "down")
    assert down.stdout.split() == ["deleted"], down.stderr
    assert sorted(ovs_pids()) == before
    assert sh("ovs-vsctl", "list-br").stdout.strip() == ""
