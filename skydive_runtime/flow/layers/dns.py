"""DNS message (RFC 1035) as upstream's flow layer (flow/layers/dns.go over gopacket's DNS):
header flags and counts, questions, answers, authorities, additionals (records of the types
upstream keeps: A, AAAA, NS, CNAME, PTR, MX, SOA, SRV, TXT, HINFO, OPT), names as gopacket
spells the types, classes, opcodes and response codes."""

import base64
import socket
import struct

_HDR = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")

TYPES = {1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
         11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
         41: "OPT", 256: "URI"}
CLASSES = {1: "IN", 2: "CS", 3: "CH", 4: "HS", 255: "Any"}
OPCODES = {0: "Query", 1: "IQuery", 2: "Status", 4: "Notify", 5: "Update"}
RCODES = {0: "No Error", 1: "Format Error", 2: "Server Failure ", 3: "Non-Existent Domain",
          4: "Not Implemented", 5: "Query Refused", 6: "Name Exists when it should not",
          7: "RR Set Exists when it should not", 8: "RR Set that should exist does not",
          9: "Server Not Authoritative for zone", 10: "Name not contained in zone"}
_KEPT = (1, 2, 5, 6, 12, 13, 15, 16, 28, 33, 41)


class _Bad(Exception):
    pass


def _name(data, pos, start, end):
    """(name, position after it): labels joined by '.', compression pointers followed."""
    labels = []
    after = None
    jumps = 0
    while True:
        if pos >= end:
            raise _Bad()
        n = data[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= end or jumps > 32:
                raise _Bad()
            if after is None:
                after = pos + 2
            pos = start + (((n & 0x3F) << 8) | data[pos + 1])
            jumps += 1
            continue
        if n & 0xC0:
            raise _Bad()
        if n == 0:
            break
        if pos + 1 + n > end:
            raise _Bad()
        labels.append(data[pos + 1:pos + 1 + n].decode("latin-1"))
        pos += 1 + n
    return ".".join(labels), (after if after is not None else pos + 1)


def _strings(data, pos, end):
    out = []
    while pos < end:
        n = data[pos]
        out.append(data[pos + 1:pos + 1 + n].decode("latin-1"))
        pos += 1 + n
    return out


def _record(data, pos, start, end):
    name, pos = _name(data, pos, start, end)
    if pos + 10 > end:
        raise _Bad()
    rtype, rclass, ttl, size = _RR.unpack_from(data, pos)
    pos += 10
    rd, rend = pos, pos + size
    if rend > end:
        raise _Bad()
    if rtype not in _KEPT:
        return None, rend
    r = {}
    if name:
        r["name"] = name
    r["type"] = TYPES[rtype]
    if rtype != 41:
        r["class"] = CLASSES.get(rclass, "Unknown")
    if ttl:
        r["TTL"] = ttl
    if size:
        r["data_length"] = size
    if rtype == 1 and size == 4:
        r["IP"] = socket.inet_ntoa(data[rd:rend])
    elif rtype == 28 and size == 16:
        r["IP"] = socket.inet_ntop(socket.AF_INET6, data[rd:rend])
    elif rtype in (2, 5, 12):
        r[{2: "NS", 5: "c_name", 12: "PTR"}[rtype]] = _name(data, rd, start, end)[0]
    elif rtype == 15 and size >= 3:
        mx = {"name": _name(data, rd + 2, start, end)[0]}
        pref = struct.unpack_from("!H", data, rd)[0]
        if pref:
            mx["preference"] = pref
        r["MX"] = mx
    elif rtype == 33 and size >= 7:
        prio, weight, port = struct.unpack_from("!HHH", data, rd)
        srv = {k: v for k, v in (("priority", prio), ("weight", weight), ("port", port)) if v}
        srv["name"] = _name(data, rd + 6, start, end)[0]
        r["SRV"] = srv
    elif rtype == 6:
        mname, p = _name(data, rd, start, end)
        rname, p = _name(data, p, start, end)
        if p + 20 > rend:
            raise _Bad()
        vals = struct.unpack_from("!IIIII", data, p)
        soa = {"m_name": mname, "r_name": rname}
        soa.update((k, v) for k, v in zip(("serial", "refresh", "retry", "expire", "minimum"), vals) if v)
        r["SOA"] = {k: v for k, v in soa.items() if v}
    elif rtype in (13, 16):
        r["TXTs"] = _strings(data, rd, rend)
    elif rtype == 41:
        opts = []
        p = rd
        while p + 4 <= rend:
            code, olen = struct.unpack_from("!HH", data, p)
            o = {"code": str(code)}
            if olen:
                o["data"] = base64.b64encode(data[p + 4:p + 4 + olen]).decode()
            opts.append(o)
            p += 4 + olen
        if opts:
            r["OPT"] = opts
    return r, rend


def parse(data, off, end, ts_ns=0):
    """The DNS JSON of the message in data[off:end] (None if it is not one)."""
    if end - off < 12:
        return None
    ident, flags, qd, an, ns, ar = _HDR.unpack_from(data, off)
    out = {}
    if ident:
        out["ID"] = ident
    for name, bit in (("QR", 0x8000), ("AA", 0x0400), ("TC", 0x0200), ("RD", 0x0100), ("RA", 0x0080)):
        if flags & bit:
            out[name] = True
    out["op_code"] = OPCODES.get((flags >> 11) & 0xF, "Unknown")
    if (flags >> 4) & 7:
        out["z"] = (flags >> 4) & 7
    out["response_code"] = RCODES.get(flags & 0xF, "Unknown")
    for name, n in (("q_d_count", qd), ("a_n_count", an), ("n_s_count", ns), ("a_r_count", ar)):
        if n:
            out[name] = n
    pos = off + 12
    try:
        questions = []
        for dummy in range(qd):
            qname, pos = _name(data, pos, off, end)
            if pos + 4 > end:
                raise _Bad()
            qtype, qclass = struct.unpack_from("!HH", data, pos)
            pos += 4
            questions.append({"name": qname, "type": TYPES.get(qtype, "Unknown"),
                              "class": CLASSES.get(qclass, "Unknown")})
        sections = []
        for count in (an, ns, ar):
            records = []
            for dummy in range(count):
                r, pos = _record(data, pos, off, end)
                if r is not None:
                    records.append(r)
            sections.append(records)
    except (_Bad, IndexError, struct.error, ValueError):
        return None
    if questions:
        out["questions"] = questions
    for name, records in zip(("answers", "authorities", "additionals"), sections):
        if records:
            out[name] = records
    if ts_ns:
        out["timestamp"] = {"seconds": ts_ns // 1000000000, "nanos": ts_ns % 1000000000}
    return out
