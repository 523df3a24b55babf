"""Authentication against real analyzer and agent processes (issue 9, scope 3; docs/security.md).

The weaknesses: the session token was base64 of `user:password`, login was not rate-limited,
`/api/config` served the cluster password and the cookie settings, noauth on a public address
went unnoticed, and the agent's API had no authentication.
"""

import base64
import http.client
import json
import time
import urllib.parse

import pytest
import requests

from tests.agent.conftest import agent_config
from tests.fixtures.processes import SkydiveProcess, analyzer_config, free_port

USERS = {"admin": "adminpw", "victim": "victimpw", "alice": "alicepw", "bob": "bobpw"}


def basic_config(tmp_path, **extra):
    cfg = analyzer_config(tmp_path, auth={"local": {"type": "basic", "users": USERS}})
    cfg["analyzer"]["auth"] = {"api": {"backend": "local"},
                               "cluster": {"backend": "local", "username": "admin", "password": "adminpw"}}
    cfg["http"] = {"login": {"max_failures": 3, "period": 60}}
    for k, v in extra.items():
        cfg[k] = v
    return cfg


def start(tmp_path, cfg, name="analyzer"):
    proc = SkydiveProcess("analyzer", tmp_path / name, cfg, auth=("admin", "adminpw"))
    proc.start()
    return proc


def login(proc, user, password, source="127.0.0.1"):
    """POST /login from a given loopback source address: (status, body, Set-Cookie headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("POST", "/login", urllib.parse.urlencode({"username": user, "password": password}),
                     {"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        return r.status, r.read().decode(), r.msg.get_all("Set-Cookie") or []
    finally:
        conn.close()


def basic_get(proc, user, password, source="127.0.0.1"):
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10, source_address=(source, 0))
    try:
        auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        conn.request("GET", "/api/status", headers={"Authorization": "Basic " + auth})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def assert_status_fast(proc):
    t0 = time.monotonic()
    assert requests.get(proc.url + "/api/status", timeout=1, auth=proc.auth).status_code == 200
    assert time.monotonic() - t0 < 1.0


def test_session_token_is_signed_and_expires(tmp_path):
    cfg = basic_config(tmp_path)
    cfg["http"]["session"] = {"ttl": 2}
    proc = start(tmp_path, cfg)
    other = start(tmp_path, basic_config(tmp_path / "other"), "other")      # another secret (generated at start)
    try:
        status, body, cookies = login(proc, "admin", "adminpw")
        assert status == 200, body
        token = json.loads(body)["Token"]
        prefix, payload, sig = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        assert prefix == "sky1" and claims["u"] == "admin" and "adminpw" not in token
        assert "adminpw" not in base64.urlsafe_b64decode(payload + "==").decode()
        auth_cookie = [c for c in cookies if c.startswith("authtoken=")][0]
        assert "HttpOnly" in auth_cookie and "SameSite=Strict" in auth_cookie and "Secure" not in auth_cookie
        assert "Max-Age=2" in auth_cookie
        ok = requests.get(proc.url + "/api/status", cookies={"authtoken": token}, timeout=5)
        assert ok.status_code == 200
        # forged: another user in the payload, the same signature
        forged = "sky1.%s.%s" % (base64.urlsafe_b64encode(json.dumps(dict(claims, u="victim")).encode())
                                 .decode().rstrip("="), sig)
        for bad in (forged, token[:-2] + "xx", base64.b64encode(b"admin:adminpw").decode()):
            r = requests.get(proc.url + "/api/status", headers={"X-Auth-Token": bad}, timeout=5)
            assert r.status_code == 401 and r.text == "Wrong credentials\n"
        r = requests.get(other.url + "/api/status", cookies={"authtoken": token}, timeout=5)
        assert r.status_code == 401        # signed by another analyzer's secret
        time.sleep(3.1)
        r = requests.get(proc.url + "/api/status", cookies={"authtoken": token}, timeout=5)
        assert r.status_code == 401        # expired
    finally:
        proc.stop()
        other.stop()


def test_login_throttled_per_address_and_user(tmp_path):
    proc = start(tmp_path, basic_config(tmp_path))
    try:
        assert login(proc, "victim", "guess1", "127.0.0.2")[0] == 401
        assert login(proc, "victim", "guess2", "127.0.0.2")[0] == 401
        assert login(proc, "victim", "guess3", "127.0.0.3")[0] == 401
        # victim had 3 failures: an address that failed too is refused, even with the right password
        status, text, _ = login(proc, "victim", "victimpw", "127.0.0.3")
        assert status == 429 and "Too many failed login attempts for user 'victim'" in text, text
        assert_status_fast(proc)
        # ... an address with a clean record is not locked out by someone else's guesses
        assert login(proc, "victim", "victimpw", "127.0.0.4")[0] == 200
        # per address: 127.0.0.2 fails a third time (another user), then every login from it is refused
        assert login(proc, "alice", "nope", "127.0.0.2")[0] == 401
        status, text, _ = login(proc, "alice", "alicepw", "127.0.0.2")
        assert status == 429 and "Too many failed login attempts from 127.0.0.2: retry in" in text, text
        # Basic credentials on any request count and are refused the same way
        for i in range(3):
            assert basic_get(proc, "bob", "x%d" % i, "127.0.0.5")[0] == 401
        status, text = basic_get(proc, "bob", "bobpw", "127.0.0.5")
        assert status == 429 and "from 127.0.0.5" in text
        assert basic_get(proc, "bob", "bobpw", "127.0.0.6")[0] == 200
        assert_status_fast(proc)
    finally:
        proc.stop()


def test_config_redacts_secrets(tmp_path):
    cfg = basic_config(tmp_path)
    cfg["http"].update({"cookie": {"authtoken": "cookie-token-value"}, "session": {"secret": "s" * 32}})
    cfg["storage"]["es"] = {"driver": "memory", "auth": {"username": "u", "password": "es-password"}}
    proc = start(tmp_path, cfg)
    try:
        def get(key):
            r = requests.get(proc.url + "/api/config/" + key, auth=proc.auth, timeout=5)
            assert r.status_code == 200
            return r.json()
        analyzer = get("analyzer")
        assert analyzer["auth"]["cluster"]["password"] == "" and analyzer["auth"]["cluster"]["username"] == "admin"
        assert analyzer["listen"].startswith("127.0.0.1:")
        assert get("http.cookie") == "" and get("http.session.secret") == "" and get("auth") == ""
        assert get("analyzer.auth.cluster.password") == "" and get("auth.local.users.admin") == ""
        http_cfg = get("http")
        assert http_cfg["session"]["secret"] == "" and http_cfg["cookie"] == ""
        assert http_cfg["ws"]["ping_delay"] == 2
        assert get("storage")["es"]["auth"]["password"] == ""
        everything = json.dumps([get(k) for k in ("analyzer", "http", "storage", "auth", "tls")])
        for secret in ("adminpw", "cookie-token-value", "s" * 32, "es-password", "victimpw"):
            assert secret not in everything
        assert_status_fast(proc)
    finally:
        proc.stop()


class Listening(SkydiveProcess):
    """A service listening on all addresses (the readiness probe still goes to 127.0.0.1)."""

    @property
    def address(self):
        return "0.0.0.0:%d" % self.port


def test_noauth_on_public_address_warns(tmp_path):
    port = free_port()
    public = Listening("analyzer", tmp_path / "pub", analyzer_config(tmp_path / "pub"), port=port)
    public.start()
    public.stop()
    log = open(public.log_path).read()
    assert "WITHOUT AUTHENTICATION" in log and "api, cluster backend: noauth" in log, log[-3000:]
    local = SkydiveProcess("analyzer", tmp_path / "loc", analyzer_config(tmp_path / "loc"))
    local.start()
    local.stop()
    assert "WITHOUT AUTHENTICATION" not in open(local.log_path).read()
    secured = Listening("analyzer", tmp_path / "sec", basic_config(tmp_path / "sec"), auth=("admin", "adminpw"))
    secured.start()
    secured.stop()
    assert "WITHOUT AUTHENTICATION" not in open(secured.log_path).read()


def test_agent_noauth_on_public_address_warns(tmp_path):
    agent = Listening("agent", tmp_path / "agent", agent_config(None))
    agent.start()
    agent.stop()
    log = open(agent.log_path).read()
    assert "SECURITY: the agent listens on 0.0.0.0 WITHOUT AUTHENTICATION (api backend: noauth)" in log, log[-3000:]
    assert "set agent.auth.api.backend" in log


def test_agent_api_behind_auth(tmp_path):
    analyzer = start(tmp_path, basic_config(tmp_path))
    acfg = agent_config(analyzer)
    acfg["agent"]["auth"] = {"api": {"backend": "local"}, "cluster": {"username": "admin", "password": "adminpw"}}
    acfg["auth"] = {"local": {"type": "basic", "users": {"op": "oppw"}}}
    acfg["http"] = {"login": {"max_failures": 3, "period": 60}}
    agent = SkydiveProcess("agent", tmp_path / "agent", acfg, auth=("op", "oppw"))
    try:
        agent.start()
        for path in ("/api", "/api/status", "/api/topology"):
            r = requests.get(agent.url + path, timeout=5)
            assert r.status_code == 401 and r.text == "Wrong credentials\n", path
        r = requests.post(agent.url + "/api/topology", json={"GremlinQuery": "G.V().Count()"}, timeout=5)
        assert r.status_code == 401
        # the publisher (which forwards into the analyzer) refuses the handshake without credentials
        r = requests.get(agent.url + "/ws/publisher", timeout=5,
                         headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "X-Client-Type": "x"})
        assert r.status_code == 401
        assert requests.get(agent.url + "/api/status", auth=("op", "oppw"), timeout=5).status_code == 200
        status, body, _ = login(agent, "op", "oppw")
        assert status == 200 and json.loads(body)["Token"].startswith("sky1.")
        for i in range(3):
            assert login(agent, "op", "bad%d" % i, "127.0.0.7")[0] == 401
        assert login(agent, "op", "oppw", "127.0.0.7")[0] == 429
    finally:
        agent.stop()
        analyzer.stop()


@pytest.mark.parametrize("secret", ["short"])
def test_short_session_secret_refused(tmp_path, secret):
    cfg = basic_config(tmp_path)
    cfg["http"]["session"] = {"secret": secret}
    proc = SkydiveProcess("analyzer", tmp_path / "a", cfg)
    with pytest.raises(RuntimeError) as exc:
        proc.start(timeout=15)
    assert "http.session.secret: use at least 16 characters" in str(exc.value)
