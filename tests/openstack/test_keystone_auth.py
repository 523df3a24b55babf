"""Keystone authentication (issue 11, scope 1) against a real Keystone: /login hands out a real
Keystone token, X-Auth-Token and the authtoken cookie are validated by Keystone, Keystone roles map
to RBAC, a revoked token is refused after the cache TTL, and Keystone unreachable is a 503."""

import base64
import time

import pytest
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config, free_port

pytestmark = pytest.mark.needs_root

ADMIN, READER, OTHER = ("skyks-admin", "admin-pw"), ("skyks-reader", "reader-pw"), ("skyks-other", "other-pw")


def keystone_analyzer(workdir, auth_url, **section):
    cfg = analyzer_config(workdir, auth={"ks": dict({"type": "keystone", "auth_url": auth_url, "tenant_name": "admin",
                                                     "domain_name": "Default", "cache_ttl": 1, "timeout": 60},
                                                    **section),
                                         "cluster": {"type": "basic", "users": {"agent": "agent-pw"}}})
    cfg["analyzer"]["auth"] = {"api": {"backend": "ks"}, "cluster": {"backend": "cluster"}}
    return cfg


@pytest.fixture(scope="module")
def users(keystone):
    keystone.create_user(ADMIN[0], ADMIN[1], "admin", "admin")
    keystone.create_user(READER[0], READER[1], "admin", "reader")
    keystone.create_user(OTHER[0], OTHER[1], "skyks-elsewhere", "admin")     # admin of another project
    return keystone


@pytest.fixture(scope="module")
def analyzer(users, tmp_path_factory):
    proc = SkydiveProcess("analyzer", tmp_path_factory.mktemp("ks-analyzer"), keystone_analyzer(
        tmp_path_factory.mktemp("ks-store"), users.url), auth=ADMIN)
    proc.start(timeout=120)
    try:
        yield proc
    finally:
        proc.stop()


def login(proc, user, password):
    return requests.post(proc.url + "/login", data={"username": user, "password": password}, timeout=90)


def get(proc, path, token=None, cookie=None, basic=None):
    headers = {"X-Auth-Token": token} if token else {}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % basic).encode()).decode()
    return requests.get(proc.url + path, headers=headers, cookies={"authtoken": cookie} if cookie else None, timeout=90)


def allowed(body, obj, action):
    return [p["Allowed"] for p in body["Permissions"] if p["Object"] == obj and p["Action"] == action] == [True]


def test_login_hands_out_a_real_keystone_token(analyzer, users):
    r = login(analyzer, *ADMIN)
    assert r.status_code == 200, r.text
    token = r.json()["Token"]
    assert r.cookies["authtoken"] == token
    assert allowed(r.json(), "alert", "write")
    # the token is Keystone's own: Keystone validates it, for the user who logged in
    v = requests.get(users.url + "/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}, timeout=90)
    assert v.status_code == 200 and v.json()["token"]["user"]["name"] == ADMIN[0]
    assert get(analyzer, "/api/alert", token=token).status_code == 200
    assert get(analyzer, "/api/alert", cookie=token).status_code == 200
    assert get(analyzer, "/api/status", basic=ADMIN).status_code == 200     # Basic: the Go CLI, the agents


def test_wrong_password_project_and_token_are_refused(analyzer, users):
    assert login(analyzer, ADMIN[0], "not-the-password").status_code == 401
    assert login(analyzer, *OTHER).status_code == 401          # no role on project admin
    assert get(analyzer, "/api/status", token="gAAAAABnot-a-token").status_code == 401
    assert get(analyzer, "/api/status").status_code == 401
    # a real token, of another project: upstream's "Tenant mismatch"
    other = users.token(OTHER[0], OTHER[1], project="skyks-elsewhere")
    r = get(analyzer, "/api/status", token=other)
    assert r.status_code == 401 and r.text == "Wrong credentials\n"


def test_keystone_roles_map_to_rbac(analyzer):
    r = login(analyzer, *READER)       # Keystone role reader: no mapped role -> `role` (guest)
    assert r.status_code == 200, r.text
    assert not allowed(r.json(), "alert", "write") and allowed(r.json(), "topology", "read")
    token = r.json()["Token"]
    assert get(analyzer, "/api/topology", token=token).status_code == 200
    denied = get(analyzer, "/api/alert", token=token)
    assert denied.status_code == 405 and "'%s' has no 'read' permission on 'alert'" % READER[0] in denied.text
    admin = login(analyzer, *ADMIN).json()["Token"]
    assert get(analyzer, "/api/alert", token=admin).status_code == 200


def test_a_revoked_token_is_refused_after_the_cache_ttl(analyzer, users):
    token = login(analyzer, *ADMIN).json()["Token"]
    assert get(analyzer, "/api/status", token=token).status_code == 200
    users.revoke(token)
    time.sleep(1.2)            # cache_ttl: 1
    r = get(analyzer, "/api/status", token=token)
    assert r.status_code == 401, r.text


def test_keystone_unreachable_is_a_503_never_an_open_door(users, tmp_path):
    dead = "http://127.0.0.1:%d/v3" % free_port()
    proc = SkydiveProcess("analyzer", tmp_path / "a", keystone_analyzer(tmp_path, dead, timeout=2), auth=ADMIN)
    try:
        proc.start(timeout=120, ready_codes=(503,))
        token = users.token(*ADMIN)       # a good token: without Keystone nobody can tell
        for r in (get(proc, "/api/topology", token=token), login(proc, *ADMIN), get(proc, "/api/status", basic=ADMIN)):
            assert r.status_code == 503, r.text
            assert r.text.startswith("Keystone at %s is unreachable" % dead), r.text
        assert get(proc, "/api/topology").status_code == 401      # no credentials: no need to ask
    finally:
        proc.stop()
