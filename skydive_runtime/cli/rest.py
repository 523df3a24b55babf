"""A small REST session for the CLI: base URL, basic auth, TLS options, clear errors."""

import json


class ClientError(Exception):
    """Anything the CLI reports as a one-line error."""


class RestSession:
    def __init__(self, analyzer, username="", password="", cacert="", cert="", key="", insecure=False,
                 timeout=30.0):
        import requests  # imported here: services started by the same CLI don't pay for it
        self._exc = requests.exceptions
        scheme = "https" if (cacert or cert or insecure) else "http"
        if analyzer.startswith(("http://", "https://")):
            self.base = analyzer.rstrip("/")
        else:
            self.base = "%s://%s" % (scheme, analyzer)
        self.analyzer = analyzer
        self.session = requests.Session()
        if username:
            self.session.auth = (username, password)
        if cacert:
            self.session.verify = cacert
        if insecure:
            self.session.verify = False
        if cert:
            self.session.cert = (cert, key) if key else cert
        self.timeout = timeout

    def request(self, method, path, body=None, headers=None, raw=None, expect=(200, 201, 202, 204, 304)):
        url = self.base + path
        hdrs = {"Accept": "application/json"}
        data = raw
        if body is not None:
            data = json.dumps(body)
        if body is not None or method in ("POST", "PUT", "PATCH", "DELETE"):
            hdrs["Content-Type"] = "application/json"    # as upstream's CLI; required (docs/security.md)
        hdrs.update(headers or {})
        try:
            resp = self.session.request(method, url, data=data, headers=hdrs, timeout=self.timeout)
        except self._exc.SSLError as exc:
            raise ClientError("TLS error talking to %s: %s" % (self.analyzer, exc)) from None
        except self._exc.ConnectionError:
            raise ClientError("cannot reach the analyzer at %s (is it running? set --analyzer or SKYDIVE_ANALYZER)"
                              % self.analyzer) from None
        except self._exc.Timeout:
            raise ClientError("the analyzer at %s did not answer within %.0f s" % (self.analyzer, self.timeout)) from None
        if resp.status_code == 401:
            raise ClientError("authentication failed: wrong username or password (401)")
        if resp.status_code == 405:
            raise ClientError("permission denied: %s" % (resp.text.strip() or "405 Method Not Allowed"))
        if resp.status_code not in expect:
            text = resp.text.strip() or resp.reason
            raise ClientError("%s %s failed (%d): %s" % (method, path, resp.status_code, text))
        return resp

    def json(self, method, path, body=None, headers=None):
        resp = self.request(method, path, body, headers)
        if resp.status_code in (204, 304) or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ClientError("%s %s: the analyzer answered something that is not JSON" % (method, path)) from None
