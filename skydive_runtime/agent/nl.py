"""Raw rtnetlink: sockets, dumps and message decoding with `struct` (no pyroute2 on the hot path).

A raw RTM_GETLINK dump parsed here is ~25x faster than pyroute2 on a host with 400 links.
Everything returns plain dicts; errors of a vanished namespace/interface surface as OSError.
"""

import ctypes
import errno
import fcntl
import ipaddress
import os
import socket
import struct

NETLINK_ROUTE = 0
NLMSG_HDR = struct.Struct("=IHHII")
NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 2, 3, 4
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 1, 2, 4, 0x300
NLM_F_DUMP_INTR = 0x10

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_NEWNSID, RTM_DELNSID, RTM_GETNSID = 88, 89, 90

RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
ALL_GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
              | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE)

AF_UNSPEC, AF_INET, AF_BRIDGE, AF_INET6 = 0, 2, 7, 10

IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
NDMSG = struct.Struct("=BxxxiHBB")
RTATTR = struct.Struct("=HH")

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_STATS64, IFLA_LINK_NETNSID = 16, 18, 23, 37
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_VLAN_ID = 1
IFLA_VXLAN_ID = 1

IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_SRC, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_MULTIPATH, RTA_TABLE = 1, 2, 4, 5, 6, 7, 9, 15
RTM_F_CLONED = 0x200
NDA_DST, NDA_LLADDR, NDA_VLAN, NDA_VNI = 1, 2, 5, 7
NETNSA_NSID, NETNSA_FD = 1, 3

IFF_UP, IFF_BROADCAST, IFF_LOOPBACK, IFF_POINTOPOINT, IFF_MULTICAST = 0x1, 0x2, 0x8, 0x10, 0x1000
LINK_FLAGS = (("UP", IFF_UP), ("BROADCAST", IFF_BROADCAST), ("LOOPBACK", IFF_LOOPBACK),
              ("POINTTOPOINT", IFF_POINTOPOINT), ("MULTICAST", IFF_MULTICAST))

OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

# ARPHRD_* -> EncapType names as vishvananda/netlink prints them
ENCAP_TYPES = {
    0: "generic", 1: "ether", 2: "eether", 3: "ax25", 4: "pronet", 5: "chaos", 6: "ieee802", 7: "arcnet",
    15: "dlci", 19: "atm", 23: "metricom", 24: "ieee1394", 27: "eui64", 32: "infiniband",
    256: "slip", 512: "ppp", 513: "cisco", 516: "lapb", 768: "ipip", 769: "tunnel6", 770: "frad",
    772: "loopback", 774: "fddi", 776: "sit", 778: "gre", 779: "pimreg", 780: "hippi",
    783: "irda", 800: "ieee802_tr", 801: "ieee80211", 803: "ieee80211_radiotap", 804: "ieee802154",
    820: "phonet", 821: "phonet_pipe", 822: "caif", 823: "ip6gre", 824: "netlink", 825: "6lowpan",
    65534: "none", 65535: "void",
}

# link kinds renamed the way vishvananda/netlink's Link.Type() names them
KIND_NAMES = {"tun": "tuntap", "": "device"}

STATS64_FIELDS = ("RxPackets", "TxPackets", "RxBytes", "TxBytes", "RxErrors", "TxErrors", "RxDropped",
                  "TxDropped", "Multicast", "Collisions", "RxLengthErrors", "RxOverErrors",
                  "RxCrcErrors", "RxFrameErrors", "RxFifoErrors", "RxMissedErrors", "TxAbortedErrors",
                  "TxCarrierErrors", "TxFifoErrors", "TxHeartbeatErrors", "TxWindowErrors",
                  "RxCompressed", "TxCompressed")

NUD_STATES = (("NUD_INCOMPLETE", 0x01), ("NUD_REACHABLE", 0x02), ("NUD_STALE", 0x04), ("NUD_DELAY", 0x08),
              ("NUD_PROBE", 0x10), ("NUD_FAILED", 0x20), ("NUD_NOARP", 0x40), ("NUD_PERMANENT", 0x80))
NTF_FLAGS = (("NTF_USE", 0x01), ("NTF_SELF", 0x02), ("NTF_MASTER", 0x04), ("NTF_PROXY", 0x08),
             ("NTF_EXT_LEARNED", 0x10), ("NTF_OFFLOADED", 0x20), ("NTF_ROUTER", 0x80))

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd, nstype=CLONE_NEWNET):
    """Move the calling thread into the namespace open on fd."""
    if _libc.setns(fd, nstype) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


def _align(n):
    return (n + 3) & ~3


def parse_attrs(data, offset, end, wanted=None):
    """{type: bytes} of the rtattrs in data[offset:end] (nested flag stripped); only the types
    in `wanted` when given (a link carries ~40 attributes, we read 10)."""
    attrs = {}
    unpack = RTATTR.unpack_from
    while offset + 4 <= end:
        alen, atype = unpack(data, offset)
        if alen < 4:
            break
        atype &= 0x3FFF
        if wanted is None or atype in wanted:
            attrs[atype] = data[offset + 4:offset + alen]
        offset += (alen + 3) & ~3
    return attrs


def _u32(b):
    return struct.unpack("=I", b[:4])[0]


def _s32(b):
    return struct.unpack("=i", b[:4])[0]


def _str(b):
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def _mac(b):
    return ":".join("%02x" % c for c in b)


def _ip(family, b):
    if family == AF_INET and len(b) >= 4:
        return str(ipaddress.IPv4Address(b[:4]))
    if family == AF_INET6 and len(b) >= 16:
        return str(ipaddress.IPv6Address(b[:16]))
    return None


def encode_attr(atype, payload):
    return RTATTR.pack(4 + len(payload), atype) + payload + b"\0" * (_align(len(payload)) - len(payload))


# ---- decoding ---------------------------------------------------------------------------------
_LINK_ATTRS = frozenset((IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_OPERSTATE,
                         IFLA_LINKINFO, IFLA_STATS64, IFLA_LINK_NETNSID))
_STATS64 = struct.Struct("=%dQ" % len(STATS64_FIELDS))


def decode_link(data, off, end):
    _fam, arphrd, index, flags, _change = IFINFOMSG.unpack_from(data, off)
    a = parse_attrs(data, off + IFINFOMSG.size, end, _LINK_ATTRS)
    link = {"index": index, "flags": flags, "arphrd": arphrd,
            "name": _str(a[IFLA_IFNAME]) if IFLA_IFNAME in a else "",
            "mac": _mac(a[IFLA_ADDRESS]) if IFLA_ADDRESS in a else "",
            "mtu": _u32(a[IFLA_MTU]) if IFLA_MTU in a else 0,
            "link": _u32(a[IFLA_LINK]) if IFLA_LINK in a else 0,
            "master": _u32(a[IFLA_MASTER]) if IFLA_MASTER in a else 0,
            "operstate": a[IFLA_OPERSTATE][0] if IFLA_OPERSTATE in a else 0,
            "link_netnsid": _s32(a[IFLA_LINK_NETNSID]) if IFLA_LINK_NETNSID in a else None,
            "kind": "", "vlan": None, "vni": None, "stats": None}
    info = a.get(IFLA_LINKINFO)
    if info:
        ia = parse_attrs(info, 0, len(info))
        if IFLA_INFO_KIND in ia:
            link["kind"] = _str(ia[IFLA_INFO_KIND])
        idata = ia.get(IFLA_INFO_DATA)
        if idata and link["kind"] == "vlan":
            da = parse_attrs(idata, 0, len(idata))
            if IFLA_VLAN_ID in da:
                link["vlan"] = struct.unpack("=H", da[IFLA_VLAN_ID][:2])[0]
        elif idata and link["kind"] == "vxlan":
            da = parse_attrs(idata, 0, len(idata))
            if IFLA_VXLAN_ID in da:
                link["vni"] = _u32(da[IFLA_VXLAN_ID])
    st = a.get(IFLA_STATS64)
    if st and len(st) >= 8 * len(STATS64_FIELDS):
        link["stats"] = _STATS64.unpack_from(st, 0)
    return link


def decode_addr(data, off, end):
    family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(data, off)
    a = parse_attrs(data, off + IFADDRMSG.size, end)
    raw = a.get(IFA_LOCAL) if family == AF_INET and IFA_LOCAL in a else a.get(IFA_ADDRESS)
    ip = _ip(family, raw) if raw else None
    if ip is None:
        return None
    return {"index": index, "family": family, "cidr": "%s/%d" % (ip, prefixlen)}


def decode_route(data, off, end):
    family, dst_len, _src_len, tos, table, proto, scope, rtype, flags = RTMSG.unpack_from(data, off)
    if flags & RTM_F_CLONED or family not in (AF_INET, AF_INET6):
        return None
    a = parse_attrs(data, off + RTMSG.size, end)
    if RTA_TABLE in a:
        table = _u32(a[RTA_TABLE])
    dst = _ip(family, a[RTA_DST]) if RTA_DST in a else ("0.0.0.0" if family == AF_INET else "::")
    prefix = str(ipaddress.ip_network("%s/%d" % (dst, dst_len), strict=False))
    priority = _u32(a[RTA_PRIORITY]) if RTA_PRIORITY in a else 0
    hops = []
    if RTA_MULTIPATH in a:
        mp = a[RTA_MULTIPATH]
        o = 0
        while o + 8 <= len(mp):
            nlen, _nflags, _hops, ifindex = struct.unpack_from("=HBBi", mp, o)
            if nlen < 8:
                break
            na = parse_attrs(mp, o + 8, o + nlen)
            hops.append({"ifindex": ifindex, "gw": _ip(family, na[RTA_GATEWAY]) if RTA_GATEWAY in na else None})
            o += _align(nlen)
    else:
        hops.append({"ifindex": _u32(a[RTA_OIF]) if RTA_OIF in a else 0,
                     "gw": _ip(family, a[RTA_GATEWAY]) if RTA_GATEWAY in a else None})
    return {"key": (family, table, prefix, tos, priority, rtype), "table": table, "protocol": proto,
            "prefix": prefix, "priority": priority, "src": _ip(family, a[RTA_PREFSRC]) if RTA_PREFSRC in a else None,
            "hops": hops}


def decode_neigh(data, off, end):
    family, index, state, flags, _ntype = NDMSG.unpack_from(data, off)
    a = parse_attrs(data, off + NDMSG.size, end)
    ip = _ip(family, a[NDA_DST]) if NDA_DST in a else None
    mac = _mac(a[NDA_LLADDR]) if NDA_LLADDR in a else ""
    vlan = struct.unpack("=H", a[NDA_VLAN][:2])[0] if NDA_VLAN in a else 0
    vni = _u32(a[NDA_VNI]) if NDA_VNI in a else 0
    key = (family, index, ip if family != AF_BRIDGE else mac, vlan)
    return {"key": key, "family": family, "index": index, "ip": ip, "mac": mac, "state": state,
            "flags": flags, "vlan": vlan, "vni": vni}


def neigh_json(n):
    out = {}
    fl = [name for name, bit in NTF_FLAGS if n["flags"] & bit]
    if fl:
        out["Flags"] = fl
    out["MAC"] = n["mac"]
    if n["ip"]:
        out["IP"] = n["ip"]
    st = [name for name, bit in NUD_STATES if n["state"] & bit] or ["NUD_NONE"]
    out["State"] = st
    if n["vlan"]:
        out["Vlan"] = n["vlan"]
    if n["vni"]:
        out["VNI"] = n["vni"]
    out["IfIndex"] = n["index"]
    return out


def iter_messages(buf):
    """Yield (type, flags, seq, payload offset, end) of every netlink message in buf."""
    off = 0
    n = len(buf)
    while off + 16 <= n:
        mlen, mtype, mflags, seq, _pid = NLMSG_HDR.unpack_from(buf, off)
        if mlen < 16 or off + mlen > n:
            break
        yield mtype, mflags, seq, off + 16, off + mlen
        off += _align(mlen)


# ---- sockets ------------------------------------------------------------------------------------
class NetlinkSocket:
    """A NETLINK_ROUTE socket; groups != 0 makes it an event socket."""

    def __init__(self, groups=0, rcvbuf=8 << 20):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((0, groups))
        self.seq = 0
        self.buf = bytearray(1 << 20)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def request(self, mtype, payload, flags=NLM_F_REQUEST | NLM_F_DUMP):
        """Send one request and return the list of (type, data, off, end) answers (dump or single)."""
        self.seq += 1
        seq = self.seq
        msg = NLMSG_HDR.pack(16 + len(payload), mtype, flags, seq, 0) + payload
        self.sock.send(msg)
        out = []
        while True:
            n = self.sock.recv_into(self.buf)
            data = bytes(self.buf[:n])
            done = False
            for t, fl, s, off, end in iter_messages(data):
                if s != seq:
                    continue
                if t == NLMSG_DONE:
                    done = True
                    break
                if t == NLMSG_ERROR:
                    err = _s32(data[off:off + 4])
                    if err:
                        raise OSError(-err, "netlink: %s" % os.strerror(-err))
                    done = True
                    break
                out.append((t, data, off, end))
                if not (fl & NLM_F_MULTI):
                    done = True
            if done:
                return out

    def dump(self, mtype, family=AF_UNSPEC):
        if mtype == RTM_GETLINK:
            payload = IFINFOMSG.pack(family, 0, 0, 0, 0)
        elif mtype == RTM_GETADDR:
            payload = IFADDRMSG.pack(family, 0, 0, 0, 0)
        elif mtype == RTM_GETROUTE:
            payload = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        elif mtype == RTM_GETNEIGH:
            payload = NDMSG.pack(family, 0, 0, 0, 0)
        else:
            raise ValueError("no dump for message type %d" % mtype)
        for attempt in range(5):
            try:
                return self.request(mtype, payload)
            except OSError as exc:
                if exc.errno == errno.EINTR and attempt < 4:
                    continue
                raise

    def get_link(self, index):
        try:
            ans = self.request(RTM_GETLINK, IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0), flags=NLM_F_REQUEST)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        for t, data, off, end in ans:
            if t == RTM_NEWLINK:
                return decode_link(data, off, end)
        return None

    def get_nsid(self, fd):
        """The id this namespace gives to the namespace open on fd, or None when unassigned."""
        payload = struct.pack("=Bxxx", AF_UNSPEC) + encode_attr(NETNSA_FD, struct.pack("=I", fd))
        try:
            ans = self.request(RTM_GETNSID, payload, flags=NLM_F_REQUEST)
        except OSError:
            return None
        for t, data, off, end in ans:
            if t == RTM_NEWNSID:
                a = parse_attrs(data, off + 4, end)
                if NETNSA_NSID in a:
                    v = _s32(a[NETNSA_NSID])
                    return v if v >= 0 else None
        return None


# ---- ethtool ------------------------------------------------------------------------------------
SIOCETHTOOL = 0x8946
ETHTOOL_GSET, ETHTOOL_GDRVINFO = 0x1, 0x3
ETHTOOL_GSTRINGS, ETHTOOL_GSSET_INFO, ETHTOOL_GFEATURES = 0x1B, 0x37, 0x3A
ETH_SS_FEATURES = 4
_feature_names = None   # the kernel's feature strings: the same for every interface and namespace


class Ethtool:
    """ethtool ioctls on an AF_INET socket (open it inside the namespace it must look into)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._drv = ctypes.create_string_buffer(196)
        self._cmd = ctypes.create_string_buffer(44)

    def close(self):
        self.sock.close()

    def _ioctl(self, name, buf, cmd):
        struct.pack_into("=I", buf, 0, cmd)
        ifreq = struct.pack("16sP", name.encode()[:15], ctypes.addressof(buf)) + b"\0" * 16
        fcntl.ioctl(self.sock.fileno(), SIOCETHTOOL, ifreq)

    def driver(self, name):
        """(driver, bus_info) or ("", "")."""
        try:
            self._ioctl(name, self._drv, ETHTOOL_GDRVINFO)
        except OSError:
            return "", ""
        raw = self._drv.raw
        return _str(raw[4:36]), _str(raw[100:132])

    def _feature_strings(self, name):
        global _feature_names
        if _feature_names is not None:
            return _feature_names
        info = ctypes.create_string_buffer(4 + 4 + 8 + 4)
        struct.pack_into("=IIQ", info, 0, ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES)
        ifreq = struct.pack("16sP", name.encode()[:15], ctypes.addressof(info)) + b"\0" * 16
        fcntl.ioctl(self.sock.fileno(), SIOCETHTOOL, ifreq)
        count = struct.unpack_from("=I", info.raw, 16)[0]
        buf = ctypes.create_string_buffer(12 + 32 * count)
        struct.pack_into("=III", buf, 0, ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count)
        ifreq = struct.pack("16sP", name.encode()[:15], ctypes.addressof(buf)) + b"\0" * 16
        fcntl.ioctl(self.sock.fileno(), SIOCETHTOOL, ifreq)
        raw = buf.raw
        _feature_names = [_str(raw[12 + 32 * i:12 + 32 * (i + 1)]) for i in range(count)]
        return _feature_names

    def features(self, name):
        """{feature: active} as `ethtool -k` shows them (empty when unsupported)."""
        try:
            names = self._feature_strings(name)
            blocks = (len(names) + 31) // 32
            buf = ctypes.create_string_buffer(8 + 16 * blocks)
            struct.pack_into("=II", buf, 0, ETHTOOL_GFEATURES, blocks)
            ifreq = struct.pack("16sP", name.encode()[:15], ctypes.addressof(buf)) + b"\0" * 16
            fcntl.ioctl(self.sock.fileno(), SIOCETHTOOL, ifreq)
        except OSError:
            return {}
        raw = buf.raw
        out = {}
        for i, fname in enumerate(names):
            if not fname:
                continue
            active = struct.unpack_from("=I", raw, 8 + 16 * (i // 32) + 8)[0]
            out[fname] = bool(active & (1 << (i % 32)))
        return out

    def speed(self, name):
        try:
            self._ioctl(name, self._cmd, ETHTOOL_GSET)
        except OSError:
            return None
        raw = self._cmd.raw
        speed = struct.unpack_from("=H", raw, 12)[0] | (struct.unpack_from("=H", raw, 28)[0] << 16)
        if speed in (0xFFFFFFFF, 0xFFFF, 0):
            return None
        return speed
