"""LLDP frames (IEEE 802.1AB) decoded into the chassis and port metadata upstream's lldp probe writes.

    adv = decode_frame(frame)        # Advertisement, or None when the frame is no valid LLDPDU
    adv.chassis_id / adv.port_id     # graph node IDs, as upstream derives them
    adv.chassis / adv.port           # node metadata: {"Name", "Type", "Probe", "LLDP": {...}, ["MTU"]}
    adv.ttl                          # seconds (0: the sender is shutting down)

IDs (topology/probes/lldp/lldp.go): chassis = GenID(SysName, "SysName"[, MgmtAddress, "MgmtAddress"]),
or GenID(ChassisID, ChassisIDType) when neither is sent; port = GenID(chassis node ID, PortID,
PortIDType). Upstream's JSON keys are kept, "LinkAgggregation" spelling included.
"""

import ipaddress
import struct

from ..common.ids import gen_id

ETH_P_LLDP = 0x88CC
OUI_8021 = b"\x00\x80\xc2"
OUI_8023 = b"\x00\x12\x0f"

CHASSIS_SUBTYPES = {0: "Reserved", 1: "Chassis Component", 2: "Interface Alias", 3: "Port Component",
                    4: "MAC Address", 5: "Network Address", 6: "Interface Name", 7: "Local"}
PORT_SUBTYPES = {0: "Reserved", 1: "Interface Alias", 2: "Port Component", 3: "MAC Address",
                 4: "Network Address", 5: "Interface Name", 6: "Agent Circuit ID", 7: "Local"}
MAC_CHASSIS, MAC_PORT = 4, 3
FAMILY_IPV4, FAMILY_IPV6, FAMILY_DISTNAME = 1, 2, 17


class Advertisement:
    __slots__ = ("chassis_id", "chassis", "port_id", "port", "ttl", "port_description")

    def __init__(self, chassis_id, chassis, port_id, port, ttl, port_description):
        self.chassis_id = chassis_id
        self.chassis = chassis
        self.port_id = port_id
        self.port = port
        self.ttl = ttl
        self.port_description = port_description


def _text(b):
    return b.strip(b"\x00").decode("utf-8", "replace")


def _mac(b):
    return ":".join("%02x" % c for c in b)


def tlvs(payload):
    """[(type, value bytes)] up to the End TLV; ValueError on a truncated TLV."""
    out = []
    off = 0
    while off + 2 <= len(payload):
        head, = struct.unpack_from("!H", payload, off)
        typ, length = head >> 9, head & 0x1FF
        off += 2
        if off + length > len(payload):
            raise ValueError("truncated LLDP TLV %d" % typ)
        if typ == 0:
            break
        out.append((typ, payload[off:off + length]))
        off += length
    return out


def _mgmt_address(value):
    alen = value[0]
    family, addr = value[1], value[2:1 + alen]
    if family == FAMILY_IPV4 and len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if family == FAMILY_IPV6 and len(addr) == 16:
        return str(ipaddress.IPv6Address(addr))
    if family == FAMILY_DISTNAME:
        return _text(addr)
    return ""


def _link_aggregation(info):
    status, port = info[0], struct.unpack_from("!I", info, 1)[0]
    md = {"Enabled": bool(status & 2), "Supported": bool(status & 1)}
    if port:
        md["PortID"] = port
    return md


def _dot1(sub, info, port_lldp):
    if sub == 1 and len(info) >= 2:
        pvid = struct.unpack_from("!H", info)[0]
        if pvid:
            port_lldp["PVID"] = pvid
    elif sub == 2 and len(info) >= 3:
        port_lldp.setdefault("PPVIDs", []).append(
            {"Enabled": bool(info[0] & 4), "ID": struct.unpack_from("!H", info, 1)[0], "Supported": bool(info[0] & 2)})
    elif sub == 3 and len(info) >= 3:
        vid, nlen = struct.unpack_from("!HB", info)
        port_lldp.setdefault("VLANNames", []).append({"ID": vid, "Name": _text(info[3:3 + nlen])})
    elif sub == 5 and len(info) >= 4:
        digest = struct.unpack_from("!I", info)[0]
        if digest:
            port_lldp["VIDUsageDigest"] = digest
    elif sub == 6 and len(info) >= 2:
        vid = struct.unpack_from("!H", info)[0]
        if vid:
            port_lldp["ManagementVID"] = vid
    elif sub == 7 and len(info) >= 5:
        agg = _link_aggregation(info)
        if agg["Supported"]:
            port_lldp["LinkAgggregation"] = agg


def decode_lldpdu(payload):
    """The Advertisement of one LLDPDU (the Ethernet payload), or None if a mandatory TLV is missing."""
    try:
        items = tlvs(payload)
    except ValueError:
        return None
    if len(items) < 3 or [t for t, _value in items[:3]] != [1, 2, 3] or len(items[0][1]) < 2 \
            or len(items[1][1]) < 2 or len(items[2][1]) < 2:
        return None
    cval, pval, tval = (value for _typ, value in items[:3])
    csub, psub = CHASSIS_SUBTYPES.get(cval[0], "Unknown"), PORT_SUBTYPES.get(pval[0], "Unknown")
    chassis_value = _mac(cval[1:]) if cval[0] == MAC_CHASSIS else _text(cval[1:])
    port_value = _mac(pval[1:]) if pval[0] == MAC_PORT else _text(pval[1:])
    ttl = struct.unpack_from("!H", tval)[0]
    chassis_lldp = {"ChassisID": chassis_value, "ChassisIDType": csub}
    port_lldp = {"PortID": port_value, "PortIDType": psub}
    chassis = {"LLDP": chassis_lldp, "Type": "switch", "Probe": "lldp", "Name": chassis_value}
    port = {"LLDP": port_lldp, "Type": "switchport", "Probe": "lldp", "Name": port_value}
    discriminators = []
    mgmt = ""
    port_description = ""
    dot3_agg = None
    for typ, value in items[3:]:
        if typ == 4 and value:
            port_description = _text(value)
            port_lldp["Description"] = port_description
            port["Name"] = port_description
        elif typ == 5 and _text(value):
            chassis_lldp["SysName"] = chassis["Name"] = _text(value)
        elif typ == 6 and _text(value):
            chassis_lldp["Description"] = _text(value)
        elif typ == 8 and len(value) >= 2 and 2 <= value[0] <= len(value) - 1:
            mgmt = _mgmt_address(value) or mgmt       # the last one sent wins, as upstream
        elif typ == 127 and len(value) >= 4:
            oui, sub, info = value[:3], value[3], value[4:]
            if oui == OUI_8021:
                _dot1(sub, info, port_lldp)
            elif oui == OUI_8023 and sub == 4 and len(info) >= 2:
                mtu = struct.unpack_from("!H", info)[0]
                if mtu:
                    port["MTU"] = mtu
            elif oui == OUI_8023 and sub == 3 and len(info) >= 5:
                dot3_agg = _link_aggregation(info)
    if "LinkAgggregation" not in port_lldp and dot3_agg is not None and dot3_agg["Supported"]:
        port_lldp["LinkAgggregation"] = dot3_agg
    if "SysName" in chassis_lldp:
        discriminators += [chassis_lldp["SysName"], "SysName"]
    if mgmt:
        chassis_lldp["MgmtAddress"] = mgmt
        discriminators += [mgmt, "MgmtAddress"]
    if not discriminators:
        discriminators = [chassis_value, csub]
    chassis_id = gen_id(*discriminators)
    port_id = gen_id(chassis_id, port_value, psub)
    return Advertisement(chassis_id, chassis, port_id, port, ttl, port_description)


def decode_frame(frame):
    """An Ethernet frame (optionally 802.1Q tagged) carrying an LLDPDU -> Advertisement or None."""
    off = 12
    while len(frame) >= off + 2:
        ethertype = struct.unpack_from("!H", frame, off)[0]
        if ethertype in (0x8100, 0x88A8):
            off += 4
            continue
        if ethertype != ETH_P_LLDP:
            return None
        return decode_lldpdu(frame[off + 2:])
    return None
