"""The HTTP/WebSocket API shared by the analyzer and the agent (upstream graffiti/api, graffiti/endpoints)."""
