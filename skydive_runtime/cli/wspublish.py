"""Publish graph messages over the analyzer's /ws/publisher (used by `topology import`)."""

import asyncio
import json
import socket
import uuid

import aiohttp

from .rest import ClientError

CONFIRM_TIMEOUT = 30    # seconds the analyzer has to answer the closing SyncRequest


async def _publish(rest, endpoint, messages):
    url = rest.base.replace("http", "ws", 1) + endpoint
    host = socket.gethostname()
    headers = {"X-Host-ID": "cli-%s-%s" % (host, uuid.uuid4().hex[:8]), "X-Client-Type": "CLI",
               "X-Client-Protocol": "json", "X-Persistence-Policy": "Persistent"}
    auth = None
    if rest.session.auth:
        auth = aiohttp.BasicAuth(*rest.session.auth)
    try:
        async with aiohttp.ClientSession(auth=auth) as session:
            async with session.ws_connect(url, headers=headers, heartbeat=None) as ws:
                for mtype, obj in messages:
                    await ws.send_str(json.dumps({"Namespace": "Graph", "Type": mtype,
                                                  "UUID": uuid.uuid4().hex, "Status": 200, "Obj": obj}))
                # a SyncRequest round trip proves every message above was processed
                await ws.send_str(json.dumps({"Namespace": "Graph", "Type": "SyncRequest",
                                              "UUID": uuid.uuid4().hex, "Status": 200, "Obj": {}}))
                await asyncio.wait_for(ws.receive(), timeout=CONFIRM_TIMEOUT)
    except aiohttp.WSServerHandshakeError as exc:
        raise ClientError("the analyzer refused the WebSocket connection to %s (%d)" % (endpoint, exc.status)) from None
    except aiohttp.ClientError:
        raise ClientError("cannot reach the analyzer at %s" % rest.analyzer) from None
    except asyncio.TimeoutError:
        # before OSError: since Python 3.11 asyncio.TimeoutError is the builtin TimeoutError, an OSError
        raise ClientError("the analyzer did not confirm the import within %g s" % CONFIRM_TIMEOUT) from None
    except OSError:
        raise ClientError("cannot reach the analyzer at %s" % rest.analyzer) from None


def publish(rest, endpoint, messages):
    asyncio.run(_publish(rest, endpoint, messages))
