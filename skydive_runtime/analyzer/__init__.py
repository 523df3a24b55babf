"""The analyzer: graph hub, history store, REST/WebSocket API, topology rules."""
