"""The graph layer: elements, the live graph, filters, indexes, events and schema checks."""

from .elements import Edge, Element, Node
from .events import GraphListener
from .graph import Graph, GraphError
from .schema import SchemaError, validate

__all__ = ["Edge", "Element", "Node", "Graph", "GraphError", "GraphListener", "SchemaError", "validate"]
