"""IPv4 defragmentation for a capture's `IPDefrag` (upstream flow/ipdefrag.go over gopacket's
ip4defrag): the fragments of a datagram are held until it is whole, then accounted once to the
flow of its first fragment (the one with the ports), with the bytes of every fragment's frame;
the flow's IPMetric counts its fragments, and the datagrams dropped incomplete (timeout,
overlapping or duplicated fragments) as FragmentErrors."""

TIMEOUT_MS = 30000          # a datagram not whole 30 s after its first fragment is dropped
MAX_DATAGRAMS = 4096        # datagrams being reassembled at once; beyond, the oldest is dropped


class _Datagram(object):
    __slots__ = ("first", "pieces", "end", "frames", "length", "ms")

    def __init__(self, ms):
        self.first = None       # (packet, data, linktype) of the fragment at offset 0
        self.pieces = {}        # fragment offset (bytes) -> end offset
        self.end = None         # end offset of the last fragment (MF clear)
        self.frames = 0
        self.length = 0
        self.ms = ms

    def whole(self):
        if self.first is None or self.end is None:
            return False
        reached = 0
        for start in sorted(self.pieces):
            if start > reached:
                return False
            reached = max(reached, self.pieces[start])
        return reached >= self.end


class IPDefragger(object):
    """Datagrams in reassembly, keyed by (source, destination, IP identification)."""

    def __init__(self):
        self.pending = {}

    def add(self, p, data, linktype, length, ms):
        """Fragment `p` (`length`: what its frame counts). Returns (first packet, its data, its
        linktype, datagram length, fragments) when the datagram is whole, ("error", first) when
        it cannot be (first: as above or None), None while fragments are missing."""
        key = (p.net_src, p.net_dst, p.ip_id)
        d = self.pending.get(key)
        if d is None:
            if len(self.pending) >= MAX_DATAGRAMS:
                oldest = next(iter(self.pending))
                return self._error(oldest)
            d = self.pending[key] = _Datagram(ms)
        start = p.frag_offset * 8
        end = start + p.ip_len - p.ip_hl
        if end < start or start in d.pieces or (not p.ip_mf and d.end is not None):
            if start == 0 and d.first is None:
                d.first = (p, data, linktype)
            return self._error(key)
        d.pieces[start] = end
        if not p.ip_mf:
            d.end = end
        if start == 0:
            d.first = (p, data, linktype)
        d.frames += 1
        d.length += length
        if not d.whole():
            return None
        del self.pending[key]
        first = d.first
        return first[0], first[1], first[2], d.length, d.frames

    def _error(self, key):
        d = self.pending.pop(key)
        return "error", d.first

    def expire(self, now_ms):
        """The first fragments (packet, data, linktype) of the datagrams dropped for their age."""
        old = [k for k, d in self.pending.items() if now_ms - d.ms >= TIMEOUT_MS]
        return [self._error(k)[1] for k in old]
