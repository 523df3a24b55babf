"""Capture type `ovssflow`: an sFlow collector on the agent and an OVS `sFlow` row on the bridge
sending to it (ovs-vsctl against `ovs.ovsdb`); stopping the capture clears the bridge's sflow.
"""

import json
import shutil
import subprocess

from .capabilities import Opened
from .sflow import collector

DEFAULT_OVSDB = "unix:///var/run/openvswitch/db.sock"


def ovsdb_remote(addr):
    """Config `ovs.ovsdb` (unix:///path, tcp://h:p, h:p, unix:/path, tcp:h:p, /path) -> the OVS
    remote syntax of ovs-vsctl --db and of the IDL."""
    if addr.startswith("unix://"):
        return "unix:" + addr[len("unix://"):]
    if addr.startswith("tcp://"):
        return "tcp:" + addr[len("tcp://"):]
    if addr.startswith(("unix:", "tcp:", "ssl:")):
        return addr
    if addr.startswith("/"):
        return "unix:" + addr
    return "tcp:" + addr


def agent_tag(host_id):
    """The ovs-vsctl column setting that marks a row as this agent's (flow/ovs_stale.py)."""
    return "external_ids:skydive-agent=%s" % json.dumps(host_id)


def vsctl(ovsdb, *args):
    exe = shutil.which("ovs-vsctl")
    if exe is None:
        raise RuntimeError("ovs-vsctl is not installed")
    p = subprocess.run([exe, "--db=" + ovsdb_remote(ovsdb), "--timeout=10"] + list(args),
                       capture_output=True, text=True, timeout=20, check=False)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip() or "ovs-vsctl failed (%d)" % p.returncode)
    return p.stdout


def available(config):
    return None if shutil.which("ovs-vsctl") else "ovs-vsctl is not installed"


def open_capture(ctx):
    src = collector(ctx)
    ovsdb = ctx.config.get_string("ovs.ovsdb") or DEFAULT_OVSDB
    bridge = ctx.node.Metadata.get("Name")
    c = ctx.capture

    def setup():
        try:
            vsctl(ovsdb, "--", "--id=@s", "create", "sflow", "agent=lo", 'target="%s"' % src.address,
                  "header=%d" % int(c.get("HeaderSize") or 128), "sampling=%d" % int(c.get("SamplingRate") or 1),
                  "polling=%d" % int(c.get("PollingInterval") or 10),
                  "external_ids:skydive-capture=%s" % json.dumps(c.get("UUID", "")), agent_tag(ctx.host_id),
                  "--", "set", "bridge", bridge, "sflow=@s")
        except Exception as exc:
            raise RuntimeError("cannot configure sFlow on %s: %s" % (bridge, exc)) from None

    return Opened(src, setup=setup, cleanup=lambda: vsctl(ovsdb, "--if-exists", "clear", "bridge", bridge, "sflow"))
