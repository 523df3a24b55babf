"""The netlink monitor in-process: event socket overflow (ENOBUFS) ends in an exact graph."""

import asyncio

import pytest

from skydive_runtime.agent.nlmonitor import NetlinkMonitor
from skydive_runtime.agent.service import Agent
from skydive_runtime.config import Config
from tests.fixtures.topology import run

pytestmark = pytest.mark.needs_root


def test_event_overflow_resyncs(net, names, tmp_path, monkeypatch):
    monkeypatch.setattr(NetlinkMonitor, "EVENT_RCVBUF", 1024)   # the kernel rounds it up to ~2 KB
    pairs = [(names("o"), names("p")) for _ in range(60)]
    batch = tmp_path / "add.batch"
    batch.write_text("".join("link add %s type veth peer name %s\nlink set %s up\n" % (a, b, a) for a, b in pairs))
    net.links.extend((None, a) for a, _ in pairs)

    async def scenario():
        agent = Agent(Config({"host_id": "ovf-%s" % names.tag, "agent": {"listen": "127.0.0.1:0",
                                                                       "topology": {"probes": []}}}))
        await agent.start()
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: run(["ip", "-batch", str(batch)], timeout=60))
            wanted = {n for p in pairs for n in p}
            for _ in range(200):
                names_now = {n.Metadata.get("Name") for n in agent.graph.nodes.values()}
                if wanted <= names_now:
                    break
                await asyncio.sleep(0.05)
            assert wanted <= names_now
            assert agent.netlink.monitor.stats["resyncs"] >= 1
            # every veth pair linked once, ups applied
            g = agent.graph
            by_name = {n.Metadata.get("Name"): n for n in g.nodes.values()}
            for a, b in pairs:
                assert g.find_link(by_name[a], by_name[b], "layer2") or g.find_link(by_name[b], by_name[a], "layer2")
                assert "UP" in by_name[a].Metadata["LinkFlags"]
            await loop.run_in_executor(None, lambda: run(["ip", "-force", "-batch", "-"], check=False,
                                                         input="".join("link del %s\n" % a for a, _ in pairs)))
            for _ in range(200):
                if not {n.Metadata.get("Name") for n in g.nodes.values()} & wanted:
                    break
                await asyncio.sleep(0.05)
            assert not {n.Metadata.get("Name") for n in g.nodes.values()} & wanted
        finally:
            await agent.stop()
    asyncio.run(scenario())
