"""The graph event bus: listeners are called synchronously, in registration order."""

import logging

log = logging.getLogger(__name__)

EVENTS = ("on_node_added", "on_node_updated", "on_node_deleted",
          "on_edge_added", "on_edge_updated", "on_edge_deleted")


class GraphListener:
    """Convenience base: override the events you need."""

    def on_node_added(self, node):
        pass

    def on_node_updated(self, node, ops):
        pass

    def on_node_deleted(self, node):
        pass

    def on_edge_added(self, edge):
        pass

    def on_edge_updated(self, edge, ops):
        pass

    def on_edge_deleted(self, edge):
        pass


class EventBus:
    def __init__(self):
        self._listeners = []
        self._handlers = {name: [] for name in EVENTS}

    def add(self, listener):
        if listener in self._listeners:
            return
        self._listeners.append(listener)
        self._rebuild()

    def remove(self, listener):
        if listener in self._listeners:
            self._listeners.remove(listener)
            self._rebuild()

    def _rebuild(self):
        for name in EVENTS:
            self._handlers[name] = [getattr(l, name) for l in self._listeners if callable(getattr(l, name, None))]

    def emit(self, name, *args):
        for handler in self._handlers[name]:
            try:
                handler(*args)
            except Exception:  # a broken listener must not break the graph or the others
                log.exception("graph listener %r failed on %s", handler, name)
