"""Fixtures for flow tests: two network namespaces joined by a veth pair (the private OVS is
`ovs`/`ovs_bridges` of tests/conftest.py).

Every name is unique (`fl` + random hex) so runs in parallel with other
engineers' tests never collide, and every fixture removes what it created
in a `finally`, even when the test fails.
"""

import os
import secrets
import subprocess

import pytest


def run(*cmd, check=True, timeout=30, **kw):
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, timeout=timeout, **kw)


def _kill_netns_pids(ns):
    r = run("ip", "netns", "pids", ns, check=False)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass


class VethPair(object):
    """ns_a:dev_a (10.X.Y.1) <-> ns_b:dev_b (10.X.Y.2)."""

    def __init__(self):
        tag = secrets.token_hex(3)
        self.tag = tag
        self.ns_a = "fl%sa" % tag
        self.ns_b = "fl%sb" % tag
        self.dev_a = "fl%sx" % tag
        self.dev_b = "fl%sy" % tag
        n = int(tag, 16)
        self.subnet = "10.%d.%d" % (100 + (n >> 16) % 100, (n >> 8) & 255)
        self.ip_a = self.subnet + ".1"
        self.ip_b = self.subnet + ".2"
        self.ip6_a = "fd00:%x::1" % (n & 0xFFFF)
        self.ip6_b = "fd00:%x::2" % (n & 0xFFFF)
        self.created = []

    def setup(self):
        run("ip", "netns", "add", self.ns_a)
        self.created.append(("netns", self.ns_a))
        run("ip", "netns", "add", self.ns_b)
        self.created.append(("netns", self.ns_b))
        run("ip", "link", "add", self.dev_a, "netns", self.ns_a, "type", "veth", "peer", "name", self.dev_b,
            "netns", self.ns_b)
        for ns, dev, ip, ip6 in ((self.ns_a, self.dev_a, self.ip_a, self.ip6_a),
                                 (self.ns_b, self.dev_b, self.ip_b, self.ip6_b)):
            run("ip", "-n", ns, "addr", "add", ip + "/24", "dev", dev)
            run("ip", "-n", ns, "addr", "add", ip6 + "/64", "dev", dev, "nodad")
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def mac(self, ns, dev):
        return run("ip", "-n", ns, "-o", "link", "show", dev).stdout.split("link/ether ")[1].split()[0]

    def exec_a(self, *cmd, **kw):
        return run("ip", "netns", "exec", self.ns_a, *cmd, **kw)

    def exec_b(self, *cmd, **kw):
        return run("ip", "netns", "exec", self.ns_b, *cmd, **kw)

    def teardown(self):
        for kind, name in reversed(self.created):
            if kind == "netns":
                _kill_netns_pids(name)
                run("ip", "netns", "del", name, check=False)


@pytest.fixture
def veth_pair():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    pair = VethPair()
    try:
        pair.setup()
        yield pair
    finally:
        pair.teardown()


def udp_send(pair, count, dport=7001, sport=40000, size=18, from_a=True, dst=None):
    """Send `count` UDP datagrams from one namespace with a Python socket."""
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('', int(sys.argv[3])))\n"
            "for i in range(int(sys.argv[4])): s.sendto(b'u'*int(sys.argv[5]), (sys.argv[1], int(sys.argv[2])))\n")
    target = dst or (pair.ip_b if from_a else pair.ip_a)
    ex = pair.exec_a if from_a else pair.exec_b
    ex("/usr/bin/python3", "-c", code, target, str(dport), str(sport), str(count), str(size))
