"""Flow storage in the SQLite store: upsert, exact round trip, queries, metrics, retention."""

import json
import random
import time

import pytest

from skydive_runtime.graph.filters import (GT, LT, NE, And, Ipv4Range, KeyFilter, Not, Or, Regex, Within,
                                           filter_from_pairs)
from skydive_runtime.storage import FlowStorageNotConfigured, MemoryStore, SQLiteStore, StoreError
from skydive_runtime.storage import flowcodec
from skydive_runtime.storage.base import flow_matches, normalize_flow_filter
from tests.runtime.storage_backends import clickhouse, make_store, store  # noqa: F401  (fixtures: sqlite and clickhouse)

T0 = 1_760_000_000_000


def mkflow(i, a="10.0.0.1", b="10.0.0.2", node="tid-1", capture="cap-1", proto="TCP", start=None, last=None,
           lum=True, uuid=None):
    start = T0 + i * 1000 if start is None else start
    last = start + 5000 if last is None else last
    f = {"UUID": uuid or "%x" % (0x1000_0000_0000_0000 + i), "LayersPath": "Ethernet/IPv4/" + proto,
         "Application": proto,
         "Link": {"Protocol": "ETHERNET", "A": "02:00:00:00:00:%02x" % (i % 256), "B": "02:00:00:00:01:01", "ID": 0},
         "Network": {"Protocol": "IPV4", "A": a, "B": b, "ID": 0}}
    if proto in ("TCP", "UDP"):
        f["Transport"] = {"Protocol": proto, "A": 40000 + i, "B": 80, "ID": 0}
    else:
        f["ICMP"] = {"Type": "ECHO", "ID": i}
    if lum:
        tick = (last // 60_000 + 1) * 60_000
        f["LastUpdateMetric"] = {"ABPackets": i, "ABBytes": i * 100, "BAPackets": 2, "BABytes": 200,
                                 "Start": tick - 60_000, "Last": tick}
    f["Metric"] = {"ABPackets": i + 1, "ABBytes": (i + 1) * 100, "BAPackets": 2, "BABytes": 200,
                   "Start": start, "Last": last}
    f.update({"Start": start, "Last": last, "TrackingID": "%x" % (0xabc0_0000_0000 + i),
              "L3TrackingID": "%x" % (0xdef0_0000_0000 + i), "ParentUUID": "", "NodeTID": node,
              "CaptureID": capture, "RawPacketsCaptured": 0})
    return f


def _exact(a, b):
    """Same JSON, key order included."""
    return json.dumps(a) == json.dumps(b)


def test_round_trip_is_exact(store):
    flows = [mkflow(1), mkflow(2, proto="UDP"), mkflow(3, proto="ICMPv4"), mkflow(4, lum=False)]
    v6 = mkflow(5)
    v6["Network"] = {"Protocol": "IPV6", "A": "fd00::1", "B": "fd00::2", "ID": 0}
    v6["LastUpdateMetric"]["RTT"] = 12345
    v6["FinishType"] = "TCP_FIN"
    odd = {"UUID": "0ABC-not-hex", "LayersPath": "Ethernet/ARP", "TrackingID": "00ff", "Start": 5.5,
           "Last": T0, "Metric": {"ABPackets": 1.5, "Start": T0, "Last": None, "Big": 2 ** 70, "Neg": -(2 ** 40)},
           "LastUpdateMetric": {"ABPackets": 1, "Start": T0, "Extra": True},
           "Flags": [True, False, None, "x", "\x00slot", "\x01mark"], "Unicode": "café ✓", "Empty": {},
           "Application": 42, "Network": {"A": 7, "B": None}, "NodeTID": None, "Float": 1e300,
           "Zero": "0", "Hexish": "deadbeefdeadbeefdead", "CaptureID": ""}
    no_lum_fields = {"UUID": "1", "Start": T0, "Last": T0 + 1,
                     "LastUpdateMetric": {"ABPackets": 0, "ABBytes": 0, "BAPackets": 0, "BABytes": 0,
                                          "Start": T0 - 5, "Last": T0 + 55, "RTT": 0}}
    all_flows = flows + [v6, odd, no_lum_fields]
    store.store_flows(all_flows)
    got = {f["UUID"]: f for f in store.query_flows()}
    assert len(got) == len(all_flows)
    for f in all_flows:
        assert _exact(got[f["UUID"]], f), (got[f["UUID"]], f)


def test_upsert_latest_state_wins(store):
    f1 = mkflow(1, last=T0 + 10_000)
    store.store_flows([f1])
    f2 = dict(mkflow(1, last=T0 + 20_000), FinishType="TCP_FIN")
    store.store_flows([f2])
    assert _exact(store.query_flows(), [f2])
    stale = mkflow(1, last=T0 + 15_000)             # arrives late: older state, ignored
    store.store_flows([stale])
    assert _exact(store.query_flows(), [f2])
    # several updates of one flow in one batch: the last one wins
    a, b = mkflow(7, last=T0 + 1000), mkflow(7, last=T0 + 2000)
    b["Metric"]["ABPackets"] = 999
    store.store_flows([a, b])
    (got,) = store.query_flows(KeyFilter("UUID", a["UUID"]))
    assert got["Metric"]["ABPackets"] == 999


def _random_flows(n, seed):
    rnd = random.Random(seed)
    ips = ["10.0.%d.%d" % (x // 10, x % 10) for x in range(30)] + ["192.168.1.%d" % x for x in range(10)]
    out = []
    for i in range(n):
        a, b = rnd.sample(ips, 2)
        f = mkflow(i, a=a, b=b, node="tid-%d" % rnd.randint(0, 4), capture="cap-%d" % rnd.randint(0, 2),
                   proto=rnd.choice(("TCP", "UDP", "ICMPv4")), start=T0 + rnd.randint(0, 100_000),
                   lum=rnd.random() < 0.8)
        f["Last"] = f["Start"] + rnd.randint(0, 50_000)
        f["Metric"]["ABPackets"] = rnd.randint(0, 100)
        out.append(f)
    return out, ips


def _random_filter(rnd, flows, ips):
    f = rnd.choice(flows)
    choices = [
        lambda: KeyFilter("Network", rnd.choice(ips)),
        lambda: KeyFilter("Network.A", rnd.choice(ips)),
        lambda: KeyFilter("Metadata.Network.B", rnd.choice(ips)),
        lambda: KeyFilter("Network", Within(*rnd.sample(ips, 3))),
        lambda: KeyFilter("Network", Ipv4Range("10.0.1.0/24")),
        lambda: KeyFilter("NodeTID", "tid-%d" % rnd.randint(0, 5)),
        lambda: KeyFilter("CaptureID", "cap-%d" % rnd.randint(0, 3)),
        lambda: KeyFilter("Application", rnd.choice(("TCP", "UDP", "ICMPv4", "ARP"))),
        lambda: KeyFilter("UUID", rnd.choice((f["UUID"], "ffff"))),
        lambda: KeyFilter("TrackingID", rnd.choice((f["TrackingID"], "1234"))),
        lambda: KeyFilter("Link", f["Link"]["A"]),
        lambda: KeyFilter("Link.B", "02:00:00:00:01:01"),
        lambda: KeyFilter("Transport", GT(40050)),
        lambda: KeyFilter("Metric.ABPackets", LT(rnd.randint(0, 100))),
        lambda: KeyFilter("LayersPath", Regex("Ethernet/IPv4/.*P")),
        lambda: KeyFilter("Application", NE("TCP")),
        lambda: KeyFilter("ICMP.Type", "ECHO"),
        lambda: KeyFilter("Network.A", 10),                          # wrong type: never equal
    ]

    def build(depth):
        r = rnd.random()
        if depth < 2 and r < 0.25:
            return And(*(build(depth + 1) for _ in range(rnd.randint(1, 3))))
        if depth < 2 and r < 0.45:
            return Or(*(build(depth + 1) for _ in range(rnd.randint(1, 3))))
        if depth < 2 and r < 0.5:
            return Not(build(depth + 1))
        return rnd.choice(choices)()
    return build(0)


def test_queries_agree_with_brute_force(store):
    flows, ips = _random_flows(600, seed=3)
    for i in range(0, len(flows), 100):
        store.store_flows(flows[i:i + 100])
    rnd = random.Random(11)
    checked_nonempty = 0
    for _ in range(300):
        flt = _random_filter(rnd, flows, ips)
        window = rnd.choice([(None, None), (T0 + 20_000, T0 + 60_000), (None, T0 + 10_000), (T0 + 140_000, None)])
        norm = normalize_flow_filter(flt)
        expected = [f for f in flows if flow_matches(norm, f)
                    and (window[1] is None or f["Start"] <= window[1])
                    and (window[0] is None or f["Last"] >= window[0])]
        got = store.query_flows(flt, start_ms=window[0], end_ms=window[1])
        assert sorted(g["UUID"] for g in got) == sorted(e["UUID"] for e in expected), flt
        checked_nonempty += bool(expected)
    assert checked_nonempty > 100


def test_network_either_side_and_pushdown_values(store):
    store.store_flows([mkflow(1, a="10.0.0.1", b="10.0.0.2"), mkflow(2, a="10.0.0.3", b="10.0.0.1"),
                       mkflow(3, a="10.0.0.3", b="10.0.0.4")])
    assert sorted(f["UUID"] for f in store.query_flows(filter_from_pairs("Network", "10.0.0.1"))) == \
        [mkflow(1)["UUID"], mkflow(2)["UUID"]]
    assert [f["Network"]["A"] for f in store.query_flows(KeyFilter("Network.A", "10.0.0.1"))] == ["10.0.0.1"]
    assert store.query_flows(KeyFilter("Network", "10.9.9.9")) == []       # value never stored
    assert len(store.query_flows(KeyFilter("Network", Within("10.0.0.4", "10.0.0.2", "1.1.1.1")))) == 2
    assert len(store.query_flows(filter_from_pairs("Network", "10.0.0.3", "Network", "10.0.0.1"))) == 1


def test_limit_and_time_window(store):
    store.store_flows([mkflow(i, start=T0 + i * 10_000, last=T0 + i * 10_000 + 5000) for i in range(10)])
    assert len(store.query_flows(limit=3)) == 3
    assert store.query_flows(limit=0) == []
    got = store.query_flows(start_ms=T0 + 32_000, end_ms=T0 + 61_000)     # flows 3 (30-35 s) .. 6 (60-65 s)
    assert sorted(f["Start"] for f in got) == [T0 + 30_000, T0 + 40_000, T0 + 50_000, T0 + 60_000]
    with pytest.raises(StoreError, match="limit"):
        store.query_flows(limit=-1)
    # a flow without Start/Last counts as [0, 0], as the Python filter sees it
    store.store_flows([{"UUID": "abc", "LayersPath": "Ethernet/ARP"}, {"UUID": "abd", "Last": T0 + 1}])
    assert {"abc", "abd"} <= {f["UUID"] for f in store.query_flows(end_ms=T0)}
    assert [f["UUID"] for f in store.query_flows(start_ms=T0 - 10, end_ms=T0 - 5)] == ["abd"]
    assert "abc" not in {f["UUID"] for f in store.query_flows(start_ms=1)}


def test_flow_metrics_history(store):
    f = mkflow(1, start=T0, last=T0 + 1000)
    u = f["UUID"]
    for k in range(4):   # four update ticks of one minute
        f = json.loads(json.dumps(f))
        f["Last"] = T0 + 1000 + k * 60_000
        f["LastUpdateMetric"] = {"ABPackets": 10 + k, "ABBytes": 1000 + k, "BAPackets": k, "BABytes": k * 100,
                                 "Start": T0 + k * 60_000, "Last": T0 + (k + 1) * 60_000}
        if k == 2:
            f["LastUpdateMetric"]["RTT"] = 777
        store.store_flows([f])
    other = mkflow(2)
    store.store_flows([other])
    got = store.flow_metrics([u, other["UUID"], "nope"])
    assert list(got) == [u, other["UUID"]]
    assert [m["ABPackets"] for m in got[u]] == [10, 11, 12, 13]
    assert got[u][2] == {"ABPackets": 12, "ABBytes": 1002, "BAPackets": 2, "BABytes": 200,
                         "Start": T0 + 120_000, "Last": T0 + 180_000, "RTT": 777}
    window = store.flow_metrics(u, T0 + 70_000, T0 + 130_000)
    assert [m["Start"] for m in window[u]] == [T0 + 60_000, T0 + 120_000]
    # the stored flow keeps its latest LastUpdateMetric
    (latest,) = store.query_flows(KeyFilter("UUID", u))
    assert latest["LastUpdateMetric"]["ABPackets"] == 13 and _exact(latest, f)


def test_flows_survive_reopen(make_store):
    s = make_store()
    flows = [mkflow(i, a="10.0.0.%d" % i) for i in range(50)]
    s.store_flows(flows)
    s.close()
    s2 = make_store()
    try:
        assert _exact(s2.query_flows(KeyFilter("Network", "10.0.0.7")), [flows[7]])
        assert len(s2.query_flows()) == 50
        assert list(s2.flow_metrics(flows[3]["UUID"])) == [flows[3]["UUID"]]
        # new flows after reopen reuse the string dictionary
        s2.store_flows([mkflow(100, a="10.0.0.7")])
        assert len(s2.query_flows(KeyFilter("Network", "10.0.0.7"))) == 2
    finally:
        s2.close()


def test_retention_prunes_flows_and_metrics(make_store):
    s = make_store(retention="1h")
    try:
        now = int(time.time() * 1000)
        old = mkflow(1, start=now - 3 * 3_600_000, last=now - 2 * 3_600_000)
        live = mkflow(2, start=now - 3 * 3_600_000, last=now - 3 * 3_600_000 + 1000)
        live["LastUpdateMetric"].update(Start=now - 3 * 3_600_000, Last=now - 3 * 3_600_000 + 60_000)
        s.store_flows([old, live])
        # the long-lived flow also has an old metric row
        live2 = json.loads(json.dumps(live))
        live2["Last"] = now
        live2["LastUpdateMetric"] = dict(live["LastUpdateMetric"], Start=now - 60_000, Last=now)
        s.store_flows([live2])
        assert len(s.flow_metrics(live["UUID"])[live["UUID"]]) == 2
        counts = s.prune()
        assert counts == {"revisions": 0, "flows": 1, "metrics": 2}
        assert [f["UUID"] for f in s.query_flows()] == [live["UUID"]]
        assert [m["Start"] for m in s.flow_metrics(live["UUID"])[live["UUID"]]] == [now - 60_000]
        assert _exact(s.query_flows(), [live2])
    finally:
        s.close()


def test_too_many_shapes_falls_back_to_json_records(tmp_path):
    s = SQLiteStore(str(tmp_path / "f.db"), max_flow_shapes=1)
    try:
        flows = [mkflow(1), mkflow(2, proto="UDP"), mkflow(3, proto="ICMPv4")]
        s.store_flows(flows)
        assert all(_exact(a, b) for a, b in zip(s.query_flows(), flows))
        codecs = [r[0][0] for r in s._reader().execute("SELECT data FROM flows ORDER BY id")]
        assert codecs == [2, 1, 1]
    finally:
        s.close()


def test_bad_flows(store):
    with pytest.raises(StoreError, match="needs a non-empty string UUID"):
        store.store_flows([{"Start": 1}])
    with pytest.raises(StoreError, match="must be a dict"):
        store.store_flows(["x"])
    good = mkflow(1)
    store.store_flows([{"UUID": "bad", "Weird": {1, 2}}, good])
    assert _exact(store.query_flows(), [good])
    assert store.stats["flows_rejected"] == 1


def test_memory_backend_has_no_flow_storage():
    m = MemoryStore()
    m.store_flows([mkflow(1)])
    with pytest.raises(FlowStorageNotConfigured, match="^No storage backend has been configured$"):
        m.query_flows()
    with pytest.raises(FlowStorageNotConfigured):
        m.flow_metrics(["x"])


@pytest.mark.parametrize("values", [
    [0, 1, 127, 128, 300, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -1, -(2 ** 63), -(2 ** 64), 10 ** 30, -(10 ** 30)],
    ["", "a", "0", "00", "ff", "FF", "0ff", "ffffffffffffffff", "1ffffffffffffffff", "x" * 300, "é✓"],
    [True, False, 0.5, -0.0, 1e300, float("inf")],
])
def test_codec_values_round_trip(values):
    skeleton, blob = flowcodec.split({"v": values})
    sk = flowcodec.Skeleton(skeleton)
    back = sk.build(flowcodec.decode_values(blob, sk.slots), {})
    assert back == {"v": values}
    assert [type(x) for x in back["v"]] == [type(x) for x in values]


def test_codec_rejects_truncated_records():
    skeleton, blob = flowcodec.split({"a": 1000, "b": "deadbeef"})
    sk = flowcodec.Skeleton(skeleton)
    with pytest.raises(ValueError):
        flowcodec.decode_values(blob[:-1], sk.slots)
    with pytest.raises(ValueError, match="trailing"):
        flowcodec.decode_values(blob + b"\x01", sk.slots)


def test_failed_batch_is_reported_and_the_store_stays_consistent(tmp_path):
    s = SQLiteStore(str(tmp_path / "f.db"), max_size_mb=0.5, retention="1h")
    try:
        now = int(time.time() * 1000)
        old = [mkflow(i, a="10.1.0.%d" % i, start=now - 3 * 3_600_000, last=now - 2 * 3_600_000)
               for i in range(200)]
        s.store_flows(old)
        s.flush()
        # far too much for 0.5 MB, with new strings (IPs) that the failed batch assigns
        big = [mkflow(1000 + i, a="172.16.%d.%d" % (i // 250, i % 250), node="n%d" % i, capture="c%d" % i)
               for i in range(6000)]
        s.store_flows(big)
        with pytest.raises(StoreError, match="full"):
            s.flush()
        s.flush()                                         # reported once
        assert len(s.query_flows()) == 200                # the failed batch left nothing behind
        assert s.prune()["flows"] == 200                  # make room
        again = big[:50]                                  # same strings as the failed batch
        s.store_flows(again)
        got = {f["UUID"]: f for f in s.query_flows()}
        assert len(got) == 50 and all(_exact(got[f["UUID"]], f) for f in again)
        assert len(s.query_flows(KeyFilter("Network", "172.16.0.7"))) == 1
    finally:
        s.close()
