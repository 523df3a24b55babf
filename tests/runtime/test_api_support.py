"""Helpers for the API tests: a real Analyzer, in-process (same loop) or in a background thread."""

import asyncio
import json
import threading

import aiohttp

from skydive_runtime.analyzer.service import Analyzer
from skydive_runtime.config import Config


def analyzer_config(tmp_path, backend="sqlite", **sections):
    data = {
        "host_id": "test-analyzer",
        "analyzer": {"listen": "127.0.0.1:0", "topology": {"backend": backend}},
        "storage": {"sqlite": {"driver": "sqlite", "path": str(tmp_path / "skydive.db")}},
        "http": {"ws": {"ping_delay": 1, "pong_timeout": 5}},
    }
    for k, v in sections.items():
        _merge(data, {k: v})
    return Config(data)


def _merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = v


class AnalyzerThread:
    """An Analyzer serving on a free TCP port from its own loop in a background thread."""

    def __init__(self, config):
        self.config = config
        self.analyzer = Analyzer(config)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.analyzer.start())
        except Exception as exc:   # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self):
        self.thread.start()
        self._ready.wait(30)
        if self._error:
            raise self._error
        return self

    @property
    def port(self):
        return self.analyzer.port

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def call(self, fn, *args):
        """Run fn(*args) on the analyzer's loop (the graph's owner) and return its result."""
        async def wrapper():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)

    def stop(self):
        try:
            asyncio.run_coroutine_threadsafe(self.analyzer.stop(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


class Client:
    """Small aiohttp client bound to an in-process analyzer."""

    def __init__(self, analyzer, session):
        self.analyzer = analyzer
        self.session = session
        self.base = analyzer.url

    async def req(self, method, path, body=None, raw=None, headers=None):
        hdrs = {"Accept": "application/json"}
        hdrs.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if (data is not None or method in ("POST", "PUT", "PATCH", "DELETE")) and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        async with self.session.request(method, self.base + path, data=data, headers=hdrs,
                                        allow_redirects=False) as r:
            return r.status, r.headers, await r.read()

    async def json(self, method, path, body=None, expect=200, **kw):
        status, headers, data = await self.req(method, path, body, **kw)
        assert status == expect, (status, data)
        return json.loads(data) if data else None

    async def query(self, q):
        return await self.json("POST", "/api/topology", {"GremlinQuery": q})

    def ws_url(self, path):
        return self.base.replace("http", "ws", 1) + path


def run_with_analyzer(config, body):
    """asyncio.run(body(client)) with a started Analyzer; always stopped."""
    async def main():
        analyzer = Analyzer(config)
        await analyzer.start()
        try:
            async with aiohttp.ClientSession() as session:
                return await body(Client(analyzer, session))
        finally:
            await analyzer.stop()
    return asyncio.run(main())


def node(nid, name, type_="fabric", **md):
    m = {"Name": name, "Type": type_}
    m.update(md)
    return {"ID": nid, "Host": "h", "Metadata": m}


def edge(eid, parent, child, rel="layer2", **md):
    m = {"RelationType": rel}
    m.update(md)
    return {"ID": eid, "Host": "h", "Parent": parent, "Child": child, "Metadata": m}
