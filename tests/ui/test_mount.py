"""`skydive_runtime.ui.mount_ui` on a bare aiohttp application (no analyzer, no browser)."""

import asyncio
import os

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skydive_runtime.ui import UI_DIR, mount_ui, resolve_static


def run(coro):
    return asyncio.run(coro)


async def _client(app):
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def test_ui_dir_holds_the_page():
    assert os.path.isfile(os.path.join(UI_DIR, "index.html"))
    assert os.path.isfile(os.path.join(UI_DIR, "js", "main.js"))
    assert os.path.isfile(os.path.join(UI_DIR, "css", "skydive.css"))


def test_resolve_static_rejects_private_and_outside_paths():
    assert resolve_static("js/main.js") == os.path.join(os.path.realpath(UI_DIR), "js", "main.js")
    assert resolve_static("./js//main.js") == resolve_static("js/main.js")
    for bad in ("", "/", "__init__.py", "../config.py", "js/../../config.py", "js/../__init__.py",
                "__pycache__/x.pyc", ".hidden", "js/missing.js", "js", "a\x00b", "..\\config.py"):
        assert resolve_static(bad) is None, bad


def test_mount_ui_routes_and_api_untouched():
    async def body():
        app = web.Application()

        async def api(request):
            return web.json_response({"Service": "analyzer"})

        app.router.add_get("/api", api)
        mount_ui(app)
        client = await _client(app)
        try:
            r = await client.get("/")
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
            assert 'src="statics/js/main.js"' in page
            assert r.headers["Cache-Control"] == "no-cache"
            r = await client.get("/statics/js/main.js")
            assert r.status == 200 and "javascript" in r.content_type
            assert "new Subscriber" in await r.text()
            r = await client.get("/statics/css/skydive.css")
            assert r.status == 200 and r.content_type == "text/css"
            r = await client.get("/statics/index.html")
            assert r.status == 200
            for path in ("/statics/__init__.py", "/statics/js/../__init__.py", "/statics/%2e%2e/config.py",
                         "/statics/nope.js", "/statics/"):
                r = await client.get(path)
                assert r.status == 404, path
            r = await client.get("/api")
            assert (await r.json()) == {"Service": "analyzer"}
            r = await client.post("/")
            assert r.status == 405
        finally:
            await client.close()

    run(body())
