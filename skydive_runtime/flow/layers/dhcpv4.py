"""DHCPv4 (RFC 2131) message: upstream's fields plus the message type, client MAC and offered address.

Upstream (flow.go newApplicationLayer) fills file, flags, hardware_len, hardware_opts, server_name,
secs; this parser adds xid (a field of upstream's proto it leaves empty) and, as extensions,
operation, msg_type (option 53), client_hw_addr, client_ip, your_client_ip (the offered address)
and server_ip.  server_name and file are base64 (Go []byte) without their NUL padding.
"""

import base64
import socket
import struct

_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_COOKIE = b"\x63\x82\x53\x63"
MSG_TYPES = {1: "Discover", 2: "Offer", 3: "Request", 4: "Decline", 5: "Ack", 6: "Nak", 7: "Release", 8: "Inform"}
OPERATIONS = {1: "Request", 2: "Reply"}


def _msg_type(data, off, end):
    while off < end:
        code = data[off]
        if code == 255:
            break
        if code == 0:
            off += 1
            continue
        if off + 1 >= end:
            break
        size = data[off + 1]
        if code == 53 and size >= 1 and off + 2 < end:
            return data[off + 2]
        off += 2 + size
    return 0


def parse(data, off, end, ts_ns=0):
    if end - off < _FIXED.size:
        return None
    op, dummy_htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, dummy_giaddr, chaddr, sname, file_ = \
        _FIXED.unpack_from(data, off)
    if op not in OPERATIONS or hlen > 16:
        return None
    del ts_ns
    out = {}
    sname = sname.rstrip(b"\0")
    file_ = file_.rstrip(b"\0")
    if file_:
        out["file"] = base64.b64encode(file_).decode()
    for name, value in (("flags", flags), ("hardware_len", hlen), ("hardware_opts", hops)):
        if value:
            out[name] = value
    if sname:
        out["server_name"] = base64.b64encode(sname).decode()
    if secs:
        out["secs"] = secs
    if xid:
        out["xid"] = xid
    out["operation"] = OPERATIONS[op]
    opts = off + _FIXED.size
    if data[opts:opts + 4] == _COOKIE:
        mt = _msg_type(data, opts + 4, end)
        if mt:
            out["msg_type"] = MSG_TYPES.get(mt, "Unknown(%d)" % mt)
    if hlen:
        out["client_hw_addr"] = chaddr[:hlen].hex(":")
    for name, addr in (("client_ip", ciaddr), ("your_client_ip", yiaddr), ("server_ip", siaddr)):
        if addr != b"\0\0\0\0":
            out[name] = socket.inet_ntoa(addr)
    return out
