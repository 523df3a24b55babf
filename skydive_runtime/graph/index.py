"""Value indexes over chosen metadata keys: key -> value -> ordered set of element IDs."""

from .metadata import get_values

DEFAULT_NODE_KEYS = ("Type", "Name", "TID", "MAC", "IPV4", "IPV6", "@Host", "UUID", "PeerIntfMAC")
DEFAULT_EDGE_KEYS = ("RelationType",)


def index_token(value):
    """A hashable token, or None when the value is not indexable."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return None


class ValueIndex:
    __slots__ = ("keys", "_maps")

    def __init__(self, keys):
        self.keys = tuple(keys)
        self._maps = {k: {} for k in self.keys}

    def _tokens(self, element, key):
        values = get_values(element, key)
        if not values:
            return ()
        toks = set()
        for v in values:
            t = index_token(v)
            if t is not None:
                toks.add(t)
        return toks

    def add(self, element):
        eid = element.ID
        for key, m in self._maps.items():
            for tok in self._tokens(element, key):
                bucket = m.get(tok)
                if bucket is None:
                    m[tok] = {eid: None}
                else:
                    bucket[eid] = None

    def remove(self, element):
        eid = element.ID
        for key, m in self._maps.items():
            for tok in self._tokens(element, key):
                bucket = m.get(tok)
                if bucket is not None:
                    bucket.pop(eid, None)
                    if not bucket:
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
            if not bucket:
                return ()
            if best is None or len(bucket) < len(best):
                best = bucket
        return best
