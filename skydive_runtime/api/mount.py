"""One call to serve the common API of a service on an aiohttp app (used by the agent).

    from skydive_runtime.api.mount import mount_service_api
    app = make_app()
    api = mount_service_api(app, graph, config, "agent", status_fn, auth_key="agent.auth.api.backend")
    # -> /api, /login, /api/status (status_fn() -> dict), /api/topology, /ws/subscriber, /ws/publisher
    api.ws.server        # WSServer: connections, broadcast, namespace handlers
    api.engine           # QueryEngine on the graph
"""

from . import graph_ws
from .auth import make_authenticators
from .query import QueryEngine
from .server import make_app, make_guard, mount_info, mount_login, mount_status, mount_topology
from .ws import WSOptions


class MountedAPI:
    def __init__(self, engine, ws, authenticator):
        self.engine = engine
        self.ws = ws
        self.authenticator = authenticator


def mount_service_api(app, graph, config, service_type, status_fn, auth_key="agent.auth.api.backend",
                      endpoints=(graph_ws.SUBSCRIBER, graph_ws.PUBLISHER), engine=None):
    authn = make_authenticators(config, {"api": auth_key})["api"]
    guard = make_guard(authn)
    engine = engine or QueryEngine(graph)
    mount_info(app, config.host_id(), service_type, guard)
    mount_login(app, authn)
    mount_status(app, status_fn, guard)
    mount_topology(app, graph, engine, guard)
    ws = graph_ws.mount_graph_ws(app, graph, WSOptions.from_config(config, service_type), engine,
                                 authenticators={"api": authn, "cluster": authn}, endpoints=endpoints)
    return MountedAPI(engine, ws, authn)


__all__ = ["mount_service_api", "make_app", "MountedAPI"]
