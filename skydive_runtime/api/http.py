"""Response helpers giving upstream's exact status codes, content types and bodies."""

import asyncio
import json
import math

import yaml
from aiohttp import web

from ..common.jsonutil import check_document, strict_loads
from . import limits

JSON_TYPE = "application/json; charset=UTF-8"


class HTTPError(Exception):
    """Raised by handlers; becomes a Go `http.Error`-style text response."""

    def __init__(self, status, text=""):
        Exception.__init__(self, text)
        self.status = status
        self.text = text


def text_error(status, text):
    """Go http.Error: text/plain; charset=utf-8, body followed by a newline."""
    return web.Response(status=status, body=(text + "\n").encode(),
                        headers={"Content-Type": "text/plain; charset=utf-8",
                                 "X-Content-Type-Options": "nosniff"})


def empty(status, content_type=None):
    headers = {"Content-Type": content_type} if content_type else {}
    return web.Response(status=status, body=b"", headers=headers)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def json_response(obj, status=200):
    return web.Response(status=status, body=dumps(obj).encode(), headers={"Content-Type": JSON_TYPE})


def loads(raw):
    """json.loads refusing NaN/Infinity (Go rejects them), lone surrogates and documents nested
    deeper than http.max_json_depth, with a ValueError."""
    return strict_loads(raw, limits.current.max_json_depth)


async def read_raw(request):
    """The request body, which must arrive within http.body_timeout (408 otherwise)."""
    try:
        return await asyncio.wait_for(request.read(), limits.current.body_timeout)
    except asyncio.TimeoutError:
        raise HTTPError(408, "request body not received within %gs (http.body_timeout)"
                        % limits.current.body_timeout) from None


async def read_body(request, allow_yaml=True):
    """Decode a JSON (or, with Content-Type application/yaml, YAML) request body."""
    raw = await read_raw(request)
    ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if allow_yaml and ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            # pure-Python parsing of a large body: off the event loop
            data = await asyncio.get_running_loop().run_in_executor(None, _decode_yaml, raw)
        except (yaml.YAMLError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise HTTPError(400, "failed to decode YAML body: %s" % str(exc).replace("\n", " ")) from None
        return data
    try:
        return loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise HTTPError(400, "failed to decode JSON body: %s" % exc) from None


def _decode_yaml(raw):
    """YAML without aliases/anchors, reduced to JSON types and held to the JSON limits."""
    return check_document(_yaml_to_json(limits.yaml_load(raw.decode("utf-8"))), limits.current.max_json_depth)


def _yaml_to_json(v):
    """YAML may yield dates, bytes or non-string keys: reduce to JSON types."""
    if isinstance(v, dict):
        return {str(k): _yaml_to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_yaml_to_json(x) for x in v]
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise HTTPError(400, "failed to decode YAML body: invalid number %r" % v)
        return v
    return str(v)
