"""LLDPDU decoding (agent/lldp.py) on frames built here TLV by TLV: the TLVs lldpd does not send
in the namespace test (802.1 PVID, PPVID, VLAN names, link aggregation; 802.3 MTU) and the IDs."""

import struct
import uuid

from skydive_runtime.agent.lldp import decode_frame, decode_lldpdu


def tlv(typ, value):
    return struct.pack("!H", (typ << 9) | len(value)) + value


def org(oui, sub, info):
    return tlv(127, oui + bytes([sub]) + info)


def frame(*tlvs, tagged=False):
    eth = bytes.fromhex("0180c200000e") + bytes.fromhex("020000000001")
    if tagged:
        eth += struct.pack("!HH", 0x8100, 7)
    return eth + struct.pack("!H", 0x88CC) + b"".join(tlvs) + tlv(0, b"")


BASE = (tlv(1, b"\x04" + bytes.fromhex("02aabbccddee")), tlv(2, b"\x07" + b"port 12"), tlv(3, struct.pack("!H", 120)))


def oid(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(parts)))


def test_mandatory_only_ids_from_chassis_id():
    adv = decode_frame(frame(*BASE))
    assert adv.ttl == 120
    assert adv.chassis == {"LLDP": {"ChassisID": "02:aa:bb:cc:dd:ee", "ChassisIDType": "MAC Address"},
                           "Type": "switch", "Probe": "lldp", "Name": "02:aa:bb:cc:dd:ee"}
    assert adv.chassis_id == oid("02:aa:bb:cc:dd:ee", "MAC Address")
    assert adv.port["Name"] == "port 12" and adv.port["LLDP"] == {"PortID": "port 12", "PortIDType": "Local"}
    assert adv.port_id == oid(adv.chassis_id, "port 12", "Local")


def test_optional_tlvs():
    vlan_name = struct.pack("!HB", 100, 6) + b"vlan100"[:6]
    adv = decode_frame(frame(
        *BASE, tlv(4, b"xe-0/0/12"), tlv(5, b"tor1"), tlv(6, b"Big Switch OS"),
        tlv(8, bytes([5, 1, 10, 0, 0, 1, 2, 0, 0, 0, 1, 0])),
        org(b"\x00\x80\xc2", 1, struct.pack("!H", 42)),
        org(b"\x00\x80\xc2", 2, bytes([6]) + struct.pack("!H", 43)),
        org(b"\x00\x80\xc2", 3, vlan_name),
        org(b"\x00\x80\xc2", 7, bytes([3]) + struct.pack("!I", 9)),
        org(b"\x00\x12\x0f", 4, struct.pack("!H", 9216)), tagged=True))
    assert adv.chassis["Name"] == "tor1"
    assert adv.chassis["LLDP"] == {"ChassisID": "02:aa:bb:cc:dd:ee", "ChassisIDType": "MAC Address", "SysName": "tor1",
                                   "Description": "Big Switch OS", "MgmtAddress": "10.0.0.1"}
    assert adv.chassis_id == oid("tor1", "SysName", "10.0.0.1", "MgmtAddress")
    assert adv.port["Name"] == "xe-0/0/12" and adv.port["MTU"] == 9216
    assert adv.port["LLDP"] == {
        "PortID": "port 12", "PortIDType": "Local", "Description": "xe-0/0/12", "PVID": 42,
        "PPVIDs": [{"Enabled": True, "ID": 43, "Supported": True}], "VLANNames": [{"ID": 100, "Name": "vlan10"}],
        "LinkAgggregation": {"Enabled": True, "PortID": 9, "Supported": True}}


def test_invalid_frames():
    assert decode_frame(frame(BASE[0], BASE[2], BASE[1])) is None            # TLVs out of order
    assert decode_lldpdu(b"".join(BASE)[:-1]) is None                         # truncated TTL
    assert decode_frame(frame(*BASE)[:14] + b"\x08\x00") is None
    ip_frame = bytes(12) + b"\x08\x00" + bytes(20)
    assert decode_frame(ip_frame) is None
