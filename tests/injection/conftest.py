"""Injection harness: the flow-integration stack (real `skydive analyzer` + `skydive agent`
subprocesses, tests/flow_integration/conftest.py) without Open vSwitch, one per test module, with
`agent.injection.stats_update: 1`; namespaces/veths/bridges per test through NetEnv."""

import os

import pytest
import requests

from tests.flow_integration.conftest import HAVE_TOOLS, FlowStack, names  # noqa: F401 (fixtures)


class InjectionStack(FlowStack):
    def __init__(self, workdir):
        FlowStack.__init__(self, workdir, ovsdb="unix:///nonexistent/db.sock")
        agent = self.agent_cfg["agent"]
        agent["topology"]["probes"] = []
        agent["injection"] = {"stats_update": 1}

    def create_injection(self, headers=None, **body):
        return requests.post(self.url + "/api/injectpacket", json=body, headers=headers or {}, timeout=10)

    def inject(self, **body):
        r = self.create_injection(**body)
        assert r.status_code == 201, r.text
        return r.json()

    def injections(self):
        r = requests.get(self.url + "/api/injectpacket", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def delete_injection(self, uid):
        return requests.delete(self.url + "/api/injectpacket/" + uid, timeout=10, headers={"Content-Type": "application/json"})

    def entries(self, name):
        """The PacketInjections of the node named `name` (on the analyzer), [] when none."""
        found = self.q("G.V().Has('Name','%s')" % name)
        if not found:
            return []
        return found[0]["Metadata"].get("PacketInjections") or []


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if os.geteuid() != 0 or not HAVE_TOOLS:
        pytest.skip("needs root, iproute2 and ping")
    s = InjectionStack(tmp_path_factory.mktemp("injstack"))
    try:
        s.start()
        yield s
    finally:
        s.stop()
