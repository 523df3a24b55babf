import pytest

from skydive_runtime.flow.bpf import compile_filter, BPFError, BPFMatcher, accept_all, sock_filter_bytes
from tests.flow.frames import icmp4_frame, udp4_frame, MAC1, MAC2, IP1, IP2


def test_compile_matches_tcpdump_shape():
    prog = compile_filter("udp dst port 7001")
    assert prog[0] == (0x28, 0, 0, 12)               # ldh [12]
    assert prog[-2][0] == 0x06 and prog[-2][3] == 262144   # ret #snaplen
    assert prog[-1] == (0x06, 0, 0, 0)
    assert compile_filter("udp", snaplen=128)[-2][3] == 128


@pytest.mark.parametrize("expr,msg", [
    ("udp and and", "syntax error"),
    ("host nosuchhost.invalid", "unknown host"),
    ("ip broadcast", "netmask not known"),
    ("port 99999", "port"),
])
def test_invalid_filters_carry_libpcap_message(expr, msg):
    with pytest.raises(BPFError, match=msg):
        compile_filter(expr)


def test_bad_arguments():
    with pytest.raises(BPFError):
        compile_filter(None)
    with pytest.raises(BPFError, match="NUL"):
        compile_filter("udp\x00")
    with pytest.raises(BPFError, match="snaplen"):
        compile_filter("udp", snaplen=0)
    with pytest.raises(BPFError, match="empty"):
        sock_filter_bytes([])


def test_user_space_matcher():
    m = BPFMatcher("icmp[icmptype] == 0 and host 10.0.0.2")
    reply = icmp4_frame(0, src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1)
    assert m.match(reply)
    assert not m.match(icmp4_frame(8))
    assert not m.match(udp4_frame())
    assert BPFMatcher("udp").match(udp4_frame())


def test_accept_all():
    assert accept_all(64) == [(0x06, 0, 0, 64)]
    assert len(sock_filter_bytes(accept_all())) == 8
