"""NetFlow v5 (flow/netflow.py): the codec round trip, malformed datagrams, and records of both
directions merged into one flow of a real FlowTable."""

import pytest

from skydive_runtime.flow.netflow import NetFlowError, NetFlowTable, decode_v5, encode_v5
from skydive_runtime.flow.table import FlowTable


def rec(src, dst, proto, sport, dport, pkts, octets, first, last):
    return {"SrcAddr": src, "DstAddr": dst, "Proto": proto, "SrcPort": sport, "DstPort": dport,
            "Packets": pkts, "Octets": octets, "First": first, "Last": last, "Input": 1, "Output": 2}


def test_round_trip():
    records = [rec("10.0.0.1", "10.0.0.2", 6, 40000, 80, 5, 400, 1000, 2000)]
    hdr, out = decode_v5(encode_v5(records, 5000, 1700000000123, 7))
    assert hdr["Count"] == 1 and hdr["SysUptime"] == 5000 and hdr["UnixMs"] == 1700000000123 and hdr["Sequence"] == 7
    assert {k: out[0][k] for k in records[0]} == records[0]
    assert out[0]["NextHop"] == "0.0.0.0" and out[0]["TCPFlags"] == 0


@pytest.mark.parametrize("data, message", [
    (b"\x00\x05", "shorter than a v5 header"),
    (b"\x00\x09" + b"\0" * 22, "NetFlow version 9: only v5 is decoded"),
    (encode_v5([rec("1.1.1.1", "2.2.2.2", 17, 1, 2, 1, 1, 0, 0)], 0, 0, 0)[:-1], "announces 1 records"),
])
def test_malformed(data, message):
    with pytest.raises(NetFlowError) as err:
        decode_v5(data)
    assert message in str(err.value)


def test_both_directions_make_one_flow():
    table = NetFlowTable(FlowTable(node_tid="tid", capture_id="cap"))
    boot = 1700000000000
    # same First on both (the exporter stamps them together): the echo request's sender is A
    reply = rec("10.0.0.2", "10.0.0.1", 1, 0, 0, 3, 294, 100, 300)
    request = rec("10.0.0.1", "10.0.0.2", 1, 0, 8 << 8, 3, 294, 100, 300)
    assert table.process(encode_v5([reply, request], 1000, boot + 1000, 1), 0) == 2
    table.process(encode_v5([dict(request, Packets=2, Octets=196, First=400, Last=600)], 1000, boot + 1000, 2), 0)
    flows = table.get_flows(boot + 2000)
    assert len(flows) == 1
    f = flows[0]
    assert (f["Network"]["A"], f["Network"]["B"]) == ("10.0.0.1", "10.0.0.2") and f["ICMP"]["Type"] == "ECHO"
    assert f["LayersPath"] == "IPv4/ICMPv4" and "Link" not in f
    m = f["Metric"]
    assert (m["ABPackets"], m["ABBytes"], m["BAPackets"], m["BABytes"]) == (5, 490, 3, 294)
    assert f["Start"] == boot + 100 and f["Last"] == boot + 600
    assert table.process(b"junk", 0) == 0 and table.errors == 1
