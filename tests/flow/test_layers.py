"""ExtraLayers parsers (flow/layers) on crafted messages, and the table only using them when asked."""

import random
import socket
import struct

from skydive_runtime.flow.layers import dhcpv4, dns, vrrp
from skydive_runtime.flow.table import FlowTable
from tests.flow_integration.conftest import _eth, _ipv4, _udp


def _dns_answer():
    q = b"\x04mail\x07example\x03org\x00" + struct.pack("!HH", 15, 1)
    body = struct.pack("!HHHHHH", 0xbeef, 0x8583, 1, 2, 0, 1) + q
    # MX 10 mx.example.org (the name compressed against the question), a CNAME, an unknown type 99
    mx = b"\x00\x0a\x02mx\xc0\x11"
    body += b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 300, len(mx)) + mx
    body += b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 2) + b"\xc0\x11"
    body += b"\x00" + struct.pack("!HHIH", 99, 1, 0, 3) + b"abc"
    return body


def test_dns_records_and_rcode():
    msg = _dns_answer()
    d = dns.parse(msg, 0, len(msg), 1700000000123456789)
    assert d["ID"] == 0xbeef and d["QR"] and d["AA"] and d["RD"] and d["RA"] and "TC" not in d
    assert d["response_code"] == "Non-Existent Domain" and d["op_code"] == "Query"
    assert d["questions"] == [{"name": "mail.example.org", "type": "MX", "class": "IN"}]
    assert d["answers"] == [
        {"name": "mail.example.org", "type": "MX", "class": "IN", "TTL": 300, "data_length": 7,
         "MX": {"preference": 10, "name": "mx.example.org"}},
        {"name": "mail.example.org", "type": "CNAME", "class": "IN", "TTL": 60, "data_length": 2,
         "c_name": "example.org"}]
    assert "additionals" not in d and d["a_r_count"] == 1          # type 99: not kept, as upstream
    assert d["timestamp"] == {"seconds": 1700000000, "nanos": 123456789}


def test_truncated_or_garbage_never_raises():
    msg = _dns_answer()
    rnd = random.Random(7)
    for n in range(len(msg)):
        d = dns.parse(msg, 0, n)
        assert d is None or isinstance(d, dict)
    loop = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c"        # a pointer to itself
    assert dns.parse(loop, 0, len(loop)) is None
    for dummy in range(300):
        junk = bytes(rnd.getrandbits(8) for dummy in range(rnd.randint(0, 300)))
        for parse in (dns.parse, dhcpv4.parse, vrrp.parse):
            parse(junk, 0, len(junk))


def _dhcp_offer(mac, yiaddr):
    fixed = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, 0x1234, 0, 0x8000, b"\0" * 4,
                        socket.inet_aton(yiaddr), socket.inet_aton("10.9.9.1"), b"\0" * 4,
                        mac + b"\0" * 10, b"srv", b"")
    return fixed + b"\x63\x82\x53\x63" + b"\x35\x01\x02" + b"\x01\x04\xff\xff\xff\x00\xff"


def test_dhcp_offer():
    mac = bytes.fromhex("02aabbccddee")
    msg = _dhcp_offer(mac, "10.9.9.50")
    assert dhcpv4.parse(msg, 0, len(msg)) == {
        "flags": 0x8000, "hardware_len": 6, "server_name": "c3J2", "xid": 0x1234, "operation": "Reply",
        "msg_type": "Offer", "client_hw_addr": "02:aa:bb:cc:dd:ee", "your_client_ip": "10.9.9.50",
        "server_ip": "10.9.9.1"}


def test_table_parses_only_when_asked():
    mac = bytes.fromhex("02aabbccddee")
    srv = bytes.fromhex("020000000001")
    offer = _eth(srv, mac, 0x0800, _ipv4("10.9.9.1", "10.9.9.50", 17, _udp(67, 68, _dhcp_offer(mac, "10.9.9.50"))))
    ack = offer.replace(b"\x35\x01\x02", b"\x35\x01\x05")
    msg = _dns_answer()
    query = _eth(mac, srv, 0x0800, _ipv4("10.9.9.50", "10.9.9.1", 17, _udp(5353, 53, msg)))
    for mask, expect in ((0, set()), (4, {"DHCPv4"}), (2, {"DNS"}), (7, {"DHCPv4", "DNS"})):
        t = FlowTable(extra_layers=mask)
        for i, fr in enumerate((offer, ack, query, query)):
            t.process(fr, (1700000000 + i) * 10 ** 9)
        flows = t.get_flows()
        assert {k for f in flows for k in ("DHCPv4", "DNS", "VRRPv2") if k in f} == expect
        for f in flows:
            if "DHCPv4" in f:
                assert f["DHCPv4"]["msg_type"] == "Offer"        # the flow's first message, as upstream
            if "DNS" in f:
                assert f["DNS"]["timestamp"]["seconds"] == 1700000003 and f["Metric"]["ABPackets"] == 2
        assert (t.process_block is None) == bool(mask)
