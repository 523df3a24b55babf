"""Flows: packet decoding, flow table, capture sources and the capture runner.

See docs/flows.md.  Nothing here depends on the graph, Gremlin or the API.
"""

from .decode import Packet, DecodeError
from .decode import decode as decode_packet   # the name `decode` stays the submodule
from .table import FlowTable, FlowTableError

__all__ = ["Packet", "DecodeError", "decode_packet", "FlowTable", "FlowTableError"]
