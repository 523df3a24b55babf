"""Browser-side attacks against a real analyzer process (issue 9, scope 2; docs/security.md).

A page on another origin could create an alert and a node with two "simple" requests (text/plain
or form bodies need no CORS preflight): the analyzer read JSON whatever the Content-Type and
never looked at Origin, and /login echoed any Origin with credentials. Now writes need a JSON
(or YAML) Content-Type (415), an Origin must be the server's own or in http.allowed_origins (403),
also for WebSocket handshakes, and cookies are HttpOnly, SameSite=Strict and Secure under TLS.
The Chromium version of the attack is tests/ui/test_security_browser.py.
"""

import json
import subprocess
import time

import pytest
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config

EVIL = "http://evil.example:8000"
ALERT = {"Expression": "G.V().Has('Name','csrf')", "Action": "http://127.0.0.1:9/hook"}
WS_HEADERS = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "X-Client-Type": "browser"}


@pytest.fixture
def analyzer(tmp_path):
    proc = SkydiveProcess("analyzer", tmp_path / "a", analyzer_config(
        tmp_path, http={"allowed_origins": ["https://ui.example.com"]}))
    proc.start()
    yield proc
    proc.stop()


def assert_status_fast(proc, **kw):
    t0 = time.monotonic()
    assert requests.get(proc.url + "/api/status", timeout=1, **kw).status_code == 200
    assert time.monotonic() - t0 < 1.0


def test_two_request_attack_refused(analyzer):
    url = analyzer.url
    node = {"ID": "csrf-node", "Host": "h", "Metadata": {"Name": "$(id>/tmp/x)", "Type": "csrf"}}
    # what a foreign page can send without a preflight: text/plain and form bodies, with its Origin
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        for path, body in (("/api/alert", ALERT), ("/api/node", node)):
            r = requests.post(url + path, data=json.dumps(body), timeout=5,
                              headers={"Content-Type": ctype, "Origin": EVIL})
            assert r.status_code == 403, (ctype, path, r.status_code, r.text)
            assert "Origin 'http://evil.example:8000' is not allowed" in r.text and "http.allowed_origins" in r.text
    # the same bodies without an Origin (a page with Referrer-Policy games, an old browser): 415
    for path, body in (("/api/alert", ALERT), ("/api/node", node)):
        r = requests.post(url + path, data=json.dumps(body), headers={"Content-Type": "text/plain"}, timeout=5)
        assert r.status_code == 415, r.text
        assert r.text.startswith("Unsupported Media Type: POST %s needs Content-Type: application/json" % path)
        assert "(got 'text/plain')" in r.text
    assert_status_fast(analyzer)
    assert requests.get(url + "/api/alert", timeout=5).json() == {}
    assert "csrf-node" not in requests.get(url + "/api/node", timeout=5).json()
    # a foreign origin with the right type is refused too (a browser would also need a preflight)
    r = requests.post(url + "/api/alert", json=ALERT, headers={"Origin": EVIL}, timeout=5)
    assert r.status_code == 403
    assert requests.options(url + "/api/alert", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
                            timeout=5).headers.get("Access-Control-Allow-Origin") is None


def test_legitimate_clients_keep_working(analyzer):
    url = analyzer.url
    same = "http://" + analyzer.address
    r = requests.post(url + "/api/alert", json=ALERT, headers={"Origin": same}, timeout=5)
    assert r.status_code == 201, r.text
    uid = r.json()["UUID"]
    r = requests.post(url + "/api/alert", json=ALERT, headers={"Origin": "https://ui.example.com"}, timeout=5)
    assert r.status_code == 201, r.text                 # listed in http.allowed_origins
    r = requests.post(url + "/api/alert", data="Expression: G.V()\n", headers={"Content-Type": "application/yaml"},
                      timeout=5)
    assert r.status_code == 201, r.text                 # YAML bodies where the API reads YAML
    r = requests.post(url + "/api/topology", data="GremlinQuery: G.V()\n", headers={"Content-Type": "application/yaml"},
                      timeout=5)
    assert r.status_code == 415                         # /api/topology reads JSON only
    r = requests.post(url + "/api/topology", json={"GremlinQuery": "G.V().Count()"}, timeout=5)
    assert r.status_code == 200
    r = requests.delete(url + "/api/alert/" + uid, timeout=5)
    assert r.status_code == 415 and "DELETE /api/alert/%s needs Content-Type: application/json" % uid in r.text
    r = requests.delete(url + "/api/alert/" + uid, headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 200
    r = requests.post(url + "/api/pcap", data=b"\x00", headers={"Content-Type": "application/vnd.tcpdump.pcap"},
                      timeout=5)
    assert r.status_code == 400                         # the type is accepted, the bytes are not a pcap
    # reads need nothing
    assert requests.get(url + "/api/alert", headers={"Origin": EVIL}, timeout=5).status_code == 200


def test_login_and_websocket_origin(tmp_path):
    cfg = analyzer_config(tmp_path, auth={"b": {"type": "basic", "users": {"admin": "pw"}}},
                          http={"allowed_origins": ["https://ui.example.com"]})
    cfg["analyzer"]["auth"] = {"api": {"backend": "b"}}
    proc = SkydiveProcess("analyzer", tmp_path / "a", cfg, auth=("admin", "pw"))
    proc.start()
    try:
        form = {"username": "admin", "password": "pw"}
        r = requests.post(proc.url + "/login", data=form, headers={"Origin": EVIL}, timeout=5)
        assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
        r = requests.post(proc.url + "/login", data=form, headers={"Origin": "null"}, timeout=5)
        assert r.status_code == 403
        r = requests.post(proc.url + "/login", data=form, headers={"Origin": "http://" + proc.address}, timeout=5)
        assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
        r = requests.post(proc.url + "/login", data=form, headers={"Origin": "https://ui.example.com"}, timeout=5)
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
        r = requests.post(proc.url + "/login", data=form, timeout=5)       # skydive-client: no Origin
        assert r.status_code == 200
        cookies = r.headers["Set-Cookie"]
        assert "authtoken=" in cookies and "HttpOnly" in cookies and "SameSite=Strict" in cookies
        token = r.json()["Token"]
        # WebSocket handshakes: a foreign Origin is refused before the upgrade, even with credentials
        for path in ("/ws/subscriber", "/ws/publisher", "/ws/pubsub"):
            r = requests.get(proc.url + path, headers=dict(WS_HEADERS, Origin=EVIL, Cookie="authtoken=" + token),
                             timeout=5)
            assert r.status_code == 403 and "is not allowed" in r.text, path
        r = requests.get(proc.url + "/ws/subscriber", stream=True, timeout=5,
                         headers=dict(WS_HEADERS, Origin="http://" + proc.address, Cookie="authtoken=" + token))
        assert r.status_code == 101
        r.close()
        assert_status_fast(proc, auth=proc.auth)
    finally:
        proc.stop()


def test_cookies_secure_under_tls(tmp_path):
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    cfg = analyzer_config(tmp_path, auth={"b": {"type": "basic", "users": {"admin": "pw"}}},
                          tls={"server_cert": cert, "server_key": key})
    cfg["analyzer"]["auth"] = {"api": {"backend": "b"}}
    proc = SkydiveProcess("analyzer", tmp_path / "a", cfg, auth=("admin", "pw"), scheme="https", verify=cert)
    proc.start()
    try:
        r = requests.post(proc.url + "/login", data={"username": "admin", "password": "pw"}, verify=cert, timeout=5)
        assert r.status_code == 200
        for c in r.raw.headers.getlist("Set-Cookie"):
            assert "Secure" in c and "SameSite=Strict" in c, c
        assert any(c.startswith("authtoken=") and "HttpOnly" in c for c in r.raw.headers.getlist("Set-Cookie"))
        # an https Origin of the server itself is its own origin
        r = requests.post(proc.url + "/api/node", verify=cert, auth=proc.auth, timeout=5,
                          headers={"Origin": "https://" + proc.address},
                          json={"ID": "tls-n", "Host": "h", "Metadata": {"Name": "n", "Type": "t"}})
        assert r.status_code == 201, r.text
        r = requests.post(proc.url + "/api/node", verify=cert, auth=proc.auth, timeout=5,
                          headers={"Origin": "http://" + proc.address},      # http is another origin
                          json={"ID": "tls-m", "Host": "h", "Metadata": {"Name": "m", "Type": "t"}})
        assert r.status_code == 403
    finally:
        proc.stop()


def test_bad_allowed_origin_refuses_start(tmp_path):
    proc = SkydiveProcess("analyzer", tmp_path / "a", analyzer_config(tmp_path, http={"allowed_origins": ["*"]}))
    with pytest.raises(RuntimeError) as exc:
        proc.start(timeout=15)
    assert "http.allowed_origins: '*' is not an origin" in str(exc.value)
