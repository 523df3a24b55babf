from skydive_runtime.flow.xxhash import xxh64, xxh64_hex

import pytest


@pytest.mark.parametrize("data,seed,expected", [
    (b"", 0, 0xEF46DB3751D8E999),
    (b"a", 0, 0xD24EC4F1A98C6E5B),
    (b"abc", 0, 0x44BC2CF5AD770999),
    (b"Nobody inspects the spammish repetition", 0, 0xFBCEA83C8A378BF1),
    (b"", 1, 0xD5AFBA1336A3BE4B),
])
def test_reference_vectors(data, seed, expected):
    assert xxh64(data, seed) == expected


def test_long_input_uses_all_lanes():
    data = bytes(range(256)) * 3
    h = xxh64(data)
    assert h != xxh64(data[:-1])
    assert xxh64_hex(data) == "%016x" % h
    # A one-bit change anywhere in the 32-byte stripes changes the hash.
    flipped = bytearray(data)
    flipped[100] ^= 1
    assert xxh64(bytes(flipped)) != h


def test_rejects_non_bytes():
    with pytest.raises(TypeError):
        xxh64("text")
