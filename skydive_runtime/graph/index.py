"""Value indexes over chosen metadata keys: key -> value -> element IDs.

Memory matters (the analyzer holds every node of a cloud): a value held by one element maps
to its ID string directly; only shared values get a dict (an ordered set) of IDs. Strings are
used as keys as they are; numbers and booleans are wrapped so that True and 1 stay apart.
"""

from .metadata import get_values

DEFAULT_NODE_KEYS = ("Type", "Name", "TID", "MAC", "IPV4", "IPV6", "@Host", "UUID", "PeerIntfMAC")
DEFAULT_EDGE_KEYS = ("RelationType",)


def index_token(value):
    """A hashable token, or None when the value is not indexable."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    return None


class ValueIndex:
    __slots__ = ("keys", "_maps")

    def __init__(self, keys):
        self.keys = tuple(keys)
        self._maps = {k: {} for k in self.keys}

    @staticmethod
    def _tokens(element, key):
        values = get_values(element, key)
        if not values:
            return ()
        if len(values) == 1:
            t = index_token(values[0])
            return (t,) if t is not None else ()
        toks = {index_token(v) for v in values}
        toks.discard(None)
        return toks

    def add(self, element):
        eid = element.ID
        for key, m in self._maps.items():
            for tok in self._tokens(element, key):
                bucket = m.get(tok)
                if bucket is None:
                    m[tok] = eid
                elif isinstance(bucket, str):
                    if bucket != eid:
                        m[tok] = {bucket: None, eid: None}
                else:
                    bucket[eid] = None

    def remove(self, element):
        eid = element.ID
        for key, m in self._maps.items():
            for tok in self._tokens(element, key):
                bucket = m.get(tok)
                if bucket is None:
                    continue
                if isinstance(bucket, str):
                    if bucket == eid:
                        del m[tok]
                    continue
                bucket.pop(eid, None)
                if len(bucket) == 1:
                    m[tok] = next(iter(bucket))
                elif not bucket:
                    del m[tok]

    def candidates(self, equalities):
        """IDs that may match all the equalities, or None when no indexed key is involved."""
        best = None
        for key, value in equalities:
            m = self._maps.get(key)
            if m is None:
                continue
            tok = index_token(value)
            if tok is None:
                continue
            bucket = m.get(tok)
            if bucket is None:
                return ()
            if isinstance(bucket, str):
                return (bucket,)
            if best is None or len(bucket) < len(best):
                best = bucket
        return best
