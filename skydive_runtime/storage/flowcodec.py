"""Compact flow records for the embedded store.

A flow dict is split in two:

- a *skeleton*: its JSON with every free value replaced by a slot marker. Structure, key
  order, nulls, empty strings and the categorical strings (LayersPath, Protocol, ICMP Type,
  FinishType) stay in it. Flows of one kind share one skeleton, which the store keeps once
  in its string dictionary and refers to by number;
- the *values*: the slot values in order, in a small binary form (small ints in one byte,
  varints, canonical hex ids in 8 bytes, UTF-8 strings with a length).

Fields the store keeps in columns (UUID, TrackingID, NodeTID, ...) are replaced by named
markers resolved from the columns when decoding, so nothing is stored twice.
"""

import json
import struct

SLOT = "\x00"                # a value slot in a skeleton
MARK = "\x01"                # prefix of a named marker ("\x01S" = the flow's Start column...)
CATEGORICAL_KEYS = frozenset(("LayersPath", "Protocol", "Type", "FinishType"))

_T_VARINT, _T_NEG, _T_STR, _T_HEX, _T_FLOAT, _T_TRUE, _T_FALSE, _T_BIGINT = range(0x80, 0x88)
_pack_d = struct.Struct(">d").pack
_unpack_d = struct.Struct(">d").unpack_from
_U64 = 1 << 64


class Marker:
    """Put in a flow dict (copy) in place of a value held elsewhere; becomes MARK + name."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = MARK + name


def _varint(out, v):
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _encode_value(out, v):
    t = type(v)
    if t is int:
        if 0 <= v < 0x80:
            out.append(v)
        elif 0 <= v < _U64:
            out.append(_T_VARINT)
            _varint(out, v)
        elif -_U64 < v < 0:
            out.append(_T_NEG)
            _varint(out, -v)
        else:
            b = str(v).encode()
            out.append(_T_BIGINT)
            _varint(out, len(b))
            out += b
    elif t is str:
        n = len(v)
        if 0 < n <= 16:
            try:
                x = int(v, 16)
            except ValueError:
                x = None
            if x is not None and format(x, "x") == v:
                out.append(_T_HEX)
                out += x.to_bytes(8, "big")
                return
        b = v.encode("utf-8", "surrogatepass")
        out.append(_T_STR)
        _varint(out, len(b))
        out += b
    elif t is bool:
        out.append(_T_TRUE if v else _T_FALSE)
    elif t is float:
        out.append(_T_FLOAT)
        out += _pack_d(v)
    else:
        raise TypeError("unsupported flow value %r" % (v,))


def _split(obj, key, values):
    t = type(obj)
    if t is dict:
        return {k: _split(v, k, values) for k, v in obj.items()}
    if t is list:
        return [_split(v, key, values) for v in obj]
    if obj is None:
        return None
    if t is Marker:
        return obj.name
    if t is str and (obj == "" or key in CATEGORICAL_KEYS) and obj[:1] not in (SLOT, MARK) and len(obj) <= 64:
        return obj
    values.append(obj)
    return SLOT


def split(flow):
    """(skeleton JSON text, values bytes) of a flow dict (Markers allowed in it)."""
    values = []
    skeleton = _split(flow, None, values)
    out = bytearray()
    for v in values:
        _encode_value(out, v)
    return json.dumps(skeleton, separators=(",", ":"), ensure_ascii=False), bytes(out)


def decode_values(buf, count):
    out = []
    i = 0
    n = len(buf)
    for dummy in range(count):
        if i >= n:
            raise ValueError("flow record truncated")
        b = buf[i]
        i += 1
        if b < 0x80:
            out.append(b)
        elif b == _T_VARINT or b == _T_NEG or b == _T_STR or b == _T_BIGINT:
            v = shift = 0
            while True:
                c = buf[i]
                i += 1
                v |= (c & 0x7F) << shift
                if c < 0x80:
                    break
                shift += 7
            if b == _T_VARINT:
                out.append(v)
            elif b == _T_NEG:
                out.append(-v)
            else:
                s = bytes(buf[i:i + v]).decode("utf-8", "surrogatepass")
                i += v
                out.append(s if b == _T_STR else int(s))
        elif b == _T_HEX:
            out.append(format(int.from_bytes(buf[i:i + 8], "big"), "x"))
            i += 8
        elif b == _T_FLOAT:
            out.append(_unpack_d(buf, i)[0])
            i += 8
        elif b == _T_TRUE:
            out.append(True)
        elif b == _T_FALSE:
            out.append(False)
        else:
            raise ValueError("flow record: unknown value tag 0x%02x" % b)
    if i != n:
        raise ValueError("flow record: %d trailing bytes" % (n - i))
    return out


class Skeleton:
    """A parsed skeleton, ready to rebuild flows."""

    __slots__ = ("tree", "slots")

    def __init__(self, text):
        self.tree = json.loads(text)
        self.slots = _count_slots(self.tree)

    def build(self, values, marks):
        it = iter(values)

        def fill(node):
            t = type(node)
            if t is dict:
                return {k: fill(v) for k, v in node.items()}
            if t is str:
                if node == SLOT:
                    return next(it)
                if node[:1] == MARK:
                    return marks.get(node[1:])
                return node
            if t is list:
                return [fill(v) for v in node]
            return node
        return fill(self.tree)


def _count_slots(node):
    t = type(node)
    if t is dict:
        return sum(_count_slots(v) for v in node.values())
    if t is list:
        return sum(_count_slots(v) for v in node)
    return 1 if node == SLOT else 0
