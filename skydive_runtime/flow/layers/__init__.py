"""Application layers a capture decodes only when its `ExtraLayers` asks (upstream flow/layers).

Each parser is `parse(data, off, end)` -> the layer's upstream JSON (a dict, Go `encoding/json`
names and omitempty) or None when the bytes are not that layer.  The flow table calls
`parse_extra()` for the packets of flows whose application is one of them.
"""

from ..capabilities import EXTRA_LAYERS
from . import dhcpv4, dns, vrrp

# Application (decode's last layer) -> (ExtraLayers bit, flow JSON key, parser, update on every packet)
# upstream keeps the DNS of the flow's latest packet, the DHCPv4 and VRRPv2 of its first one
PARSERS = {"DNS": (EXTRA_LAYERS["DNS"], "DNS", dns.parse, True),
           "DHCPv4": (EXTRA_LAYERS["DHCPv4"], "DHCPv4", dhcpv4.parse, False),
           "VRRP": (EXTRA_LAYERS["VRRP"], "VRRPv2", vrrp.parse, False)}


def parser_for(mask, application):
    """(flow JSON key, parser, every packet) of `application` when `mask` asks for it, else None."""
    e = PARSERS.get(application)
    if e is None or not mask & e[0]:
        return None
    return e[1:]
