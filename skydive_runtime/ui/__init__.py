"""The analyzer's web UI: static HTML/CSS/JS served at `/` and `/statics/...` (as upstream).

No build step: `index.html` loads ES modules from `statics/js/`. The UI talks to the analyzer
only through the public API (`/ws/subscriber`, `/api/topology`, `/api/capture`, `/api/status`,
`/api`, `/login`), so it works against any wire-compatible analyzer.

`mount_ui(app)` adds the two routes to an aiohttp application; they never shadow `/api/...`
or `/ws/...`. With an auth backend the static files stay public (the page itself asks for
credentials through `/login`), like upstream.
"""

import os

UI_DIR = os.path.dirname(os.path.abspath(__file__))
INDEX = os.path.join(UI_DIR, "index.html")

# files under UI_DIR that are not part of the web UI
_PRIVATE_SUFFIXES = (".py", ".pyc")
_PRIVATE_PARTS = ("__pycache__",)


def resolve_static(relpath):
    """Absolute path of a UI file for `/statics/<relpath>`, or None (traversal, private, missing)."""
    if not relpath or "\x00" in relpath:
        return None
    parts = [p for p in relpath.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or p.startswith(".") or p in _PRIVATE_PARTS for p in parts):
        return None
    if parts[-1].endswith(_PRIVATE_SUFFIXES):
        return None
    full = os.path.realpath(os.path.join(UI_DIR, *parts))
    if not full.startswith(os.path.realpath(UI_DIR) + os.sep) or not os.path.isfile(full):
        return None
    return full


def mount_ui(app, prefix="/statics"):
    """Serve index.html at `/` and the UI folder at `<prefix>/` on an aiohttp `web.Application`."""
    from aiohttp import web

    async def index(request):
        # no-cache: the page is tiny and an upgraded analyzer must never serve a stale UI
        return web.FileResponse(INDEX, headers={"Cache-Control": "no-cache"})

    async def static(request):
        full = resolve_static(request.match_info["path"])
        if full is None:
            raise web.HTTPNotFound(text="404 page not found\n")
        return web.FileResponse(full, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    app.router.add_get(prefix.rstrip("/") + "/{path:.+}", static)
    return app
