"""CaptureRunner with live sources (afpacket, libpcap) in namespaces."""

import asyncio
import os
import time

import pytest

from skydive_runtime.flow.afpacket import AFPacketSource, CaptureError
from skydive_runtime.flow.capture import CaptureRunner
from skydive_runtime.flow.pcap import PcapSource
from skydive_runtime.flow.table import FlowTable
from tests.fixtures.processes import wait_until
from tests.flow.conftest import udp_send


def latest(flows):
    out = {}
    for f in flows:
        out[f["UUID"]] = f
    return out


@pytest.mark.parametrize("kind", ["afpacket", "pcap"])
def test_runner_batches_updates_and_stats(veth_pair, kind):
    cls = AFPacketSource if kind == "afpacket" else PcapSource
    src = cls(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="udp dst port 7100")
    got, stats = [], []
    r = CaptureRunner(src, FlowTable(node_tid="tid", capture_id="cid"), on_flows=lambda fl: got.append(fl),
                      on_stats=stats.append, update_ms=200, stats_ms=200)
    r.start()
    try:
        udp_send(veth_pair, 40, dport=7100)
        wait_until(lambda: sum(f["LastUpdateMetric"]["ABPackets"] for b in got for f in b) >= 40)
        udp_send(veth_pair, 7, dport=7100)
        wait_until(lambda: sum(f["LastUpdateMetric"]["ABPackets"] for b in got for f in b) >= 47)
        wait_until(lambda: stats and stats[-1]["PacketsReceived"] == 47)
        snap = []
        r.request_snapshot(snap.append)
        wait_until(lambda: snap)
        assert [f["Metric"]["ABPackets"] for f in snap[0]] == [47]
    finally:
        r.stop()
    assert r.error is None and not r.running
    batches = [b for b in got if b]
    assert len(batches) >= 2                        # two update ticks at least
    # per-tick deltas add up to the exact total, every batch carries the same flow
    assert sum(f["LastUpdateMetric"]["ABPackets"] for b in batches for f in b) == 47
    final = latest(f for b in got for f in b)
    assert len(final) == 1
    f = list(final.values())[0]
    assert f["Metric"]["ABPackets"] == 47 and f["CaptureID"] == "cid" and f["NodeTID"] == "tid"
    st = r.stats()
    assert st["PacketsReceived"] == 47 and st["PacketsDropped"] == 0 and st["CaptureID"] == "cid"
    assert st["FlowCount"] == 0                      # flushed at stop


def test_runner_open_error_is_raised_by_start(veth_pair):
    r = CaptureRunner(AFPacketSource("fl-nodev", netns=veth_pair.ns_b), FlowTable())
    with pytest.raises(CaptureError, match="fl-nodev"):
        r.start()
    assert not r.running


def test_runner_callbacks_on_asyncio_loop(veth_pair):
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        thread_ids = []

        def on_flows(flows):
            thread_ids.append(os.getpid())
            if not fut.done() and any(f["Metric"]["ABPackets"] == 5 for f in flows):
                fut.set_result(flows)
        src = AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="udp dst port 7200")
        r = CaptureRunner(src, FlowTable(), on_flows=on_flows, update_ms=100, loop=loop)
        r.start()
        try:
            await loop.run_in_executor(None, udp_send, veth_pair, 5, 7200)
            flows = await asyncio.wait_for(fut, 10)
        finally:
            await loop.run_in_executor(None, r.stop)
        return flows
    flows = asyncio.run(main())
    assert flows[0]["Transport"]["B"] == 7200


def test_capture_on_interface_that_vanishes(veth_pair):
    src = AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="udp dst port 7300")
    errors = []
    got = []
    r = CaptureRunner(src, FlowTable(), update_ms=60000, on_error=errors.append, on_flows=got.extend)
    r.start()
    try:
        udp_send(veth_pair, 3, dport=7300)
        time.sleep(0.3)
        veth_pair.exec_a("ip", "link", "del", veth_pair.dev_a)
        # The ring socket reports ENETDOWN once the device is gone: the runner ends with an error.
        wait_until(lambda: not r.running, 5)
    finally:
        r.stop()
    assert not r.running
    assert isinstance(r.error, CaptureError), r.error
    assert veth_pair.dev_b in str(r.error)
    assert errors == [r.error]
    # the flows accounted before the failure are not lost
    assert [f["Metric"]["ABPackets"] for f in got] == [3]


def test_process_runner_exact_counts_snapshot_and_stop(veth_pair):
    from skydive_runtime.flow.capture import ProcessCaptureRunner
    src = AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b, bpf_filter="udp dst port 7400")
    got, stats = [], []
    r = ProcessCaptureRunner(src, FlowTable(node_tid="tid", capture_id="cid"), on_flows=got.extend,
                             on_stats=stats.append, update_ms=200, stats_ms=200)
    r.start()
    try:
        assert r.running and r.process.pid != os.getpid()
        udp_send(veth_pair, 33, dport=7400)
        wait_until(lambda: stats and stats[-1]["PacketsReceived"] == 33)
        snap = []
        r.request_snapshot(snap.append)
        wait_until(lambda: snap)
        assert [f["Metric"]["ABPackets"] for f in snap[0]] == [33]
    finally:
        r.stop()
    assert not r.running and r.error is None
    assert sum(f["LastUpdateMetric"]["ABPackets"] for f in got) == 33
    assert latest(got).popitem()[1]["CaptureID"] == "cid"
    assert r.cpu_seconds > 0


def test_process_runner_open_error_and_child_death(veth_pair):
    from skydive_runtime.flow.capture import ProcessCaptureRunner
    r = ProcessCaptureRunner(AFPacketSource("fl-nodev", netns=veth_pair.ns_b), FlowTable())
    with pytest.raises(CaptureError, match="fl-nodev"):
        r.start()
    errors = []
    r = ProcessCaptureRunner(AFPacketSource(veth_pair.dev_b, netns=veth_pair.ns_b), FlowTable(),
                             on_error=errors.append)
    r.start()
    try:
        os.kill(r.process.pid, 9)
        wait_until(lambda: errors, 5)
    finally:
        r.stop()
    assert "ended unexpectedly" in str(r.error) and not r.running
