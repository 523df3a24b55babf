"""Pure-Python xxHash64 (the algorithm upstream Skydive uses for flow keys).

Only the one-shot form is needed: flow identifiers hash short byte strings
(a few dozen bytes), once per flow and once per serialisation.
Verified against the reference test vectors in tests/flow/test_xxhash.py.
"""

_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
_M = 0xFFFFFFFFFFFFFFFF

import struct as _struct

_Q = _struct.Struct("<Q").unpack_from
_I = _struct.Struct("<I").unpack_from


def _round(acc, lane):
    acc = (acc + lane * _P2) & _M
    acc = ((acc << 31) | (acc >> 33)) & _M
    return (acc * _P1) & _M


def _merge(acc, val):
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _M


def xxh64(data, seed=0):
    """xxHash64 of `data` (bytes-like) with a 64-bit `seed`; returns an int."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("xxh64 needs bytes, got %s" % type(data).__name__)
    seed &= _M
    n = len(data)
    p = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed
        v4 = (seed - _P1) & _M
        limit = n - 32
        while p <= limit:
            v1 = _round(v1, _Q(data, p)[0])
            v2 = _round(v2, _Q(data, p + 8)[0])
            v3 = _round(v3, _Q(data, p + 16)[0])
            v4 = _round(v4, _Q(data, p + 24)[0])
            p += 32
        h = (((v1 << 1) | (v1 >> 63)) + ((v2 << 7) | (v2 >> 57))
             + ((v3 << 12) | (v3 >> 52)) + ((v4 << 18) | (v4 >> 46))) & _M
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while p + 8 <= n:
        k1 = _round(0, _Q(data, p)[0])
        h ^= k1
        h = ((((h << 27) | (h >> 37)) & _M) * _P1 + _P4) & _M
        p += 8
    if p + 4 <= n:
        h ^= (_I(data, p)[0] * _P1) & _M
        h = ((((h << 23) | (h >> 41)) & _M) * _P2 + _P3) & _M
        p += 4
    while p < n:
        h ^= (data[p] * _P5) & _M
        h = ((((h << 11) | (h >> 53)) & _M) * _P1) & _M
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h


def xxh64_hex(data, seed=0):
    """16 lower-case hex digits of xxh64(data, seed)."""
    return "%016x" % xxh64(data, seed)
