"""A small ClickHouse client over its HTTP interface (port 8123): queries, JSONEachRow inserts.

No client library: the HTTP interface is stable from ClickHouse 18.x on (Debian 12 ships 18.16)
and all the store needs is "run this SQL" and "insert these rows".
"""

import http.client
import json
import threading
import urllib.parse

from .base import StoreError


class ClickHouseError(StoreError):
    """ClickHouse refused a query (its message) or cannot be reached."""


def parse_host(value, key="host"):
    """"HOST:PORT" (or "HOST", port 8123; "http://HOST:PORT" accepted) -> (host, port)."""
    if not isinstance(value, str) or not value.strip():
        raise StoreError("%s: expected HOST:PORT of the ClickHouse HTTP interface, got %r" % (key, value))
    text = value.strip()
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme != "http":
            raise StoreError("%s: only http:// is supported for ClickHouse, got %r" % (key, value))
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, "8123"
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StoreError("%s: expected HOST:PORT of the ClickHouse HTTP interface, got %r" % (key, value))
    return host, int(port)


class ClickHouseHTTP:
    """Thread-safe: one keep-alive connection per thread."""

    def __init__(self, host, port, database="", username="", password="", timeout=30.0):
        self.host, self.port, self.database = host, port, database
        self.username, self.password, self.timeout = username or "default", password or "", timeout
        self._local = threading.local()

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def _drop(self):
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def execute(self, sql, body=b"", database=True):
        """Run sql (its data, for an INSERT, in body); returns the response bytes."""
        params = {"user": self.username, "password": self.password, "output_format_json_quote_64bit_integers": "0"}
        if database and self.database:
            params["database"] = self.database
        if body:
            params["query"] = sql
            payload = body
        else:
            payload = sql.encode()
        path = "/?" + urllib.parse.urlencode(params)
        for attempt in (0, 1):   # a keep-alive connection closed by the server: retry once on a new one
            conn = self._conn()
            try:
                conn.request("POST", path, body=payload, headers={"Content-Type": "text/plain; charset=utf-8"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if attempt:
                    raise ClickHouseError("ClickHouse %s cannot be reached: %s" % (self.address, exc)) from None
                continue
            if resp.status != 200:
                text = data.decode("utf-8", "replace").strip()
                raise ClickHouseError("ClickHouse %s: %s" % (self.address, text[:2000]))
            return data
        raise ClickHouseError("ClickHouse %s cannot be reached" % self.address)

    def rows(self, sql):
        """The rows (lists) of a SELECT."""
        data = self.execute(sql + " FORMAT JSONCompact")
        try:
            return json.loads(data)["data"]
        except (ValueError, KeyError) as exc:
            raise ClickHouseError("ClickHouse %s: unreadable answer (%s)" % (self.address, exc)) from None

    def insert(self, table, rows):
        """Insert dict rows (JSON-able) into table."""
        if rows:
            body = "\n".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in rows).encode()
            self.execute("INSERT INTO %s FORMAT JSONEachRow" % table, body)

    def close(self):
        self._drop()


def quote(value):
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0") + "'"
