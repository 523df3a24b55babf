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


def test_private_run_path_created_late(tmp_path, names):
    """agent.topology.netns.run_path that does not exist yet: watched once it appears; namespace
    files bind-mounted there (not by `ip netns`) are namespaces like any other."""
    run_path = tmp_path / "netns"
    nsfile = run_path / names("q")

    async def scenario():
        agent = Agent(Config({"host_id": "rp-%s" % names.tag, "agent": {
            "listen": "127.0.0.1:0", "topology": {"probes": [], "netns": {"run_path": str(run_path)}}}}))
        await agent.start()
        loop = asyncio.get_running_loop()
        mounted = False
        try:
            assert agent.netns.status()["State"].startswith("waiting")
            run_path.mkdir()
            nsfile.touch()
            await loop.run_in_executor(None, run, ["unshare", "--net=%s" % nsfile, "ip", "link", "set", "lo", "up"])
            mounted = True

            def netns_nodes():
                return [n for n in agent.graph.nodes.values()
                        if n.Metadata.get("Type") == "netns" and n.Metadata.get("Path") == str(nsfile)]
            for _ in range(100):
                if netns_nodes() and agent.netns.status()["State"] == "running":
                    break
                await asyncio.sleep(0.05)
            assert len(netns_nodes()) == 1
            ns_node = netns_nodes()[0]
            for _ in range(100):
                los = [c for c in agent.graph.children(ns_node) if c.Metadata.get("Name") == "lo"]
                if los and los[0].Metadata.get("State") == "UNKNOWN" and "UP" in los[0].Metadata["LinkFlags"]:
                    break
                await asyncio.sleep(0.05)
            assert los and "UP" in los[0].Metadata["LinkFlags"]
            lo_id = los[0].ID
            await loop.run_in_executor(None, run, ["umount", str(nsfile)])
            mounted = False
            nsfile.unlink()
            for _ in range(100):
                if not netns_nodes() and lo_id not in agent.graph.nodes:
                    break
                await asyncio.sleep(0.05)
            assert not netns_nodes() and lo_id not in agent.graph.nodes
        finally:
            if mounted:
                run(["umount", "-l", str(nsfile)], check=False)
            await agent.stop()
    asyncio.run(scenario())
