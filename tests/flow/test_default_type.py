"""capabilities.default_type: the type an untyped capture runs (ebpf unless its options need packets)."""

import pytest

from skydive_runtime.flow.capabilities import default_type

RUNNABLE = ("afpacket", "pcap", "ebpf")


@pytest.mark.parametrize("capture, running, runnable, expected", [
    ({}, (), RUNNABLE, "ebpf"),
    ({"SamplingRate": 1, "PollingInterval": 10, "LayerKeyMode": "L3"}, (), RUNNABLE, "ebpf"),   # upstream client defaults
    ({"Target": "127.0.0.1:2055", "TargetType": "netflowv5"}, (), RUNNABLE, "ebpf"),         # every type exports
    ({"BPFFilter": "icmp"}, (), RUNNABLE, "afpacket"),
    ({"RawPacketLimit": 3}, (), RUNNABLE, "afpacket"),
    ({"HeaderSize": 128}, (), RUNNABLE, "afpacket"),
    ({"ExtraTCPMetric": True}, (), RUNNABLE, "afpacket"),
    ({"ExtraLayers": 2}, (), RUNNABLE, "afpacket"),
    ({"IPDefrag": True}, (), RUNNABLE, "afpacket"),
    ({"Target": "192.0.2.9", "TargetType": "erspanv1"}, (), RUNNABLE, "afpacket"),      # mirrors packets
    ({}, ({"ID": "x", "Type": "ebpf"},), RUNNABLE, "afpacket"),          # one ebpf per node
    ({}, ({"ID": "x", "Type": "afpacket"}, "junk"), RUNNABLE, "ebpf"),
    ({}, (), ("afpacket",), "afpacket"),                                  # the host cannot run ebpf
])
def test_default_type_on_interfaces(capture, running, runnable, expected):
    assert default_type("veth", capture, runnable, running) == expected


def test_default_type_elsewhere():
    assert default_type("ovsbridge", {}, RUNNABLE + ("ovssflow",)) == "ovssflow"
    assert default_type("host", {}, RUNNABLE) is None
