"""Neutron probe cost for 1,000 ports (needs root and the OpenStack packages of bootstrap.d/openstack.sh).

    .venv/bin/python benchmarks/neutron_probe.py [--ports 1000] [--real-ports 1000] [--minutes 1]

Starts a real Keystone, OVN NB/SB and Neutron (ML2/OVN) as the tests do (tests/fixtures/openstack.py),
creates `--real-ports` ports (bulk API) on one network, gives an agent graph `--ports` interfaces
(`ExtID.iface-id` = a port ID, as the ovsdb probe reports an OVS interface; beyond the real ports,
IDs Neutron does not know: the calls are the same, ML2/OVN port creation is slow), runs the real
neutron probe at its default interval (30 s) for `--minutes`, and prints: Neutron/Keystone calls
per minute, calls per poll by resource, poll duration, and the calls the same poll would take
with one call per interface (upstream: a port list, a network get, a subnet get per interface).
"""

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from skydive_runtime.agent.neutron_probe import NeutronClient, NeutronProbe  # noqa: E402
from skydive_runtime.graph import Graph  # noqa: E402
from tests.fixtures.openstack import Keystone, Neutron  # noqa: E402
from tests.fixtures.ovn import OVNCentral  # noqa: E402


def create_ports(neutron, net_id, subnet_id, count):
    ids = []
    t0 = time.monotonic()
    for i in range(0, count, 100):
        body = {"ports": [{"network_id": net_id, "name": "bench-%d" % j, "device_owner": "compute:bench",
                           "fixed_ips": [{"subnet_id": subnet_id}]} for j in range(i, min(count, i + 100))]}
        ids += [p["id"] for p in neutron.api("POST", "/v2.0/ports", body, timeout=900)["ports"]]
    return ids, time.monotonic() - t0


async def measure(keystone, port_ids, minutes, interval):
    g = Graph()
    for i, pid in enumerate(port_ids):
        g.new_node(metadata={"Name": "tap" + pid[:11], "Type": "system", "ExtID": {"iface-id": pid}})
    client = NeutronClient(keystone.url, "admin", keystone.admin_password, "admin", "Default", "RegionOne", "internal")
    probe = NeutronProbe(g, client, interval=interval)
    probe.start()
    polls = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < minutes * 60:
            await asyncio.sleep(1)
            if probe.last_poll and (not polls or polls[-1] is not probe.last_poll):
                polls.append(probe.last_poll)
        elapsed = time.monotonic() - t0
        status = probe.status()
    finally:
        await probe.stop()  # the coroutine stop() returns
    return elapsed, polls, status, client.auths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--real-ports", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=30.0)
    args = ap.parse_args()
    if os.geteuid() != 0 or not (Keystone.available() and Neutron.available() and OVNCentral.available()):
        print("needs root, keystone, neutron-server and OVN (scripts/bootstrap.d/openstack.sh, ovn.sh)")
        return 0
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))      # stop the services on TERM too
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    t0 = time.monotonic()
    ks = Keystone().start()
    ovn = OVNCentral().start()
    nt = None
    try:
        nt = Neutron(ks, ovn).start()
        print("lab up in %.1f s" % (time.monotonic() - t0))
        net = nt.api("POST", "/v2.0/networks", {"network": {"name": "bench"}})["network"]
        sub = nt.api("POST", "/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.200.0.0/20",
                                                          "ip_version": 4}})["subnet"]
        ids, took = create_ports(nt, net["id"], sub["id"], min(args.real_ports, args.ports))
        print("%d ports created in %.1f s (bulk, 100 per call)" % (len(ids), took))
        ids += [str(uuid.uuid4()) for i in range(args.ports - len(ids))]
        elapsed, polls, status, auths = asyncio.run(measure(ks, ids, args.minutes, args.interval))
        calls = sum(status["Calls"].values())
        print("probe ran %.0f s, interval %g s: %d polls, %d Neutron calls %s, %d Keystone token(s)"
              % (elapsed, args.interval, len(polls), calls, status["Calls"], auths))
        print("=> %.1f Neutron calls per minute for %d interfaces of ports (+ %d Keystone call(s) per token lifetime)"
              % (calls * 60.0 / elapsed, len(ids), auths))
        for p in polls:
            print("   poll: %.2f s, %d candidates, %d matched, calls %s" % (p["Seconds"], p["Candidates"], p["Matched"],
                                                                       p["Calls"]))
        naive = len(ids) * 3
        print("one call per interface instead: %d calls per poll = %.0f per minute" % (naive, naive * 60.0 / args.interval))
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    finally:
        if nt is not None:
            nt.stop()
        ovn.stop()
        ks.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
