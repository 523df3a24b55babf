"""VRRPv2 advertisement (RFC 3768): version, router ID, priority, advertisement interval."""


def parse(data, off, end, ts_ns=0):
    if end - off < 8:
        return None
    version = data[off] >> 4
    if data[off] & 0x0F != 1:           # type 1: advertisement, the only one
        return None
    out = {}
    for name, value in (("version", version), ("virtual_rtrID", data[off + 1]),
                        ("priority", data[off + 2]), ("adver_int", data[off + 5])):
        if value:
            out[name] = value
    return out
