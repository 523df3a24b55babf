"""Flows: packet decoding, flow table, capture sources and the capture runner.

See docs/flows.md.  Nothing here depends on the graph, Gremlin or the API.
"""

from .decode import Packet, DecodeError  # noqa: F401
from .decode import decode as decode_packet  # noqa: F401  (the name `decode` stays the submodule)
from .table import FlowTable, FlowTableError  # noqa: F401
