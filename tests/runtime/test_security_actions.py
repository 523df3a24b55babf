"""Alert actions against a real analyzer process (issue 9, scope 1; docs/security.md).

The attack: an alert whose Action is `file:///bin/sh` plus a node named `$(id>/tmp/x)` made the
analyzer feed the payload to a shell. Now file:// actions only run executables under
`analyzer.alert.scripts_dirs` (none by default), exec'd without a shell, the payload on stdin,
as `analyzer.alert.run_as` when set; webhooks may be limited by `analyzer.alert.webhook_allowed`.
"""

import http.server
import json
import os
import shutil
import tempfile
import threading
import time
import uuid

import pytest
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config, wait_until

JSON = {"Content-Type": "application/json"}


def start_analyzer(tmp_path, **alert):
    cfg = {"debounce": 0.05, "action_timeout": 5.0}
    cfg.update(alert)
    proc = SkydiveProcess("analyzer", tmp_path / "analyzer", analyzer_config(tmp_path, analyzer={"alert": cfg}))
    proc.start()
    return proc


def assert_status_fast(proc):
    t0 = time.monotonic()
    r = requests.get(proc.url + "/api/status", timeout=1)
    assert r.status_code == 200 and time.monotonic() - t0 < 1.0


def post_alert(proc, action, expression="G.V().Has('Type','attack')"):
    return requests.post(proc.url + "/api/alert", json={"Expression": expression, "Action": action}, timeout=10)


def post_node(proc, nid, name, type_="attack"):
    r = requests.post(proc.url + "/api/node", json={"ID": nid, "Host": "h", "Metadata": {"Name": name, "Type": type_}},
                      timeout=10)
    assert r.status_code == 201, r.text
    return r


def alert_state(proc, uid):
    return requests.get(proc.url + "/api/status", timeout=5).json()["Alerts"].get("States", {}).get(uid, {})


@pytest.fixture
def marker():
    path = "/tmp/skydive-sec-%s" % uuid.uuid4().hex[:10]
    yield path
    if os.path.exists(path):
        os.unlink(path)


@pytest.fixture
def public_dirs():
    """(scripts dir, output dir) reachable by an unprivileged user; removed afterwards."""
    scripts = tempfile.mkdtemp(prefix="skydive-sec-scripts-")
    out = tempfile.mkdtemp(prefix="skydive-sec-out-")
    os.chmod(scripts, 0o755)
    os.chmod(out, 0o777)
    yield scripts, out
    shutil.rmtree(scripts, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)


def write_script(path, text):
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o755)
    return path


def test_shell_attack_refused_by_default(tmp_path, marker):
    proc = start_analyzer(tmp_path)
    try:
        r = post_alert(proc, "file:///bin/sh")
        assert r.status_code == 400, r.text
        assert "file:// alert actions are disabled" in r.text and "analyzer.alert.scripts_dirs" in r.text
        post_node(proc, "evil", "$(id>%s)" % marker)
        assert_status_fast(proc)
        time.sleep(1.0)
        assert not os.path.exists(marker)
        assert requests.get(proc.url + "/api/alert", timeout=5).json() == {}
        # YAML bodies go through the same check
        r = requests.post(proc.url + "/api/alert", data="Expression: G.V()\nAction: file:///bin/sh\n",
                          headers={"Content-Type": "application/yaml"}, timeout=10)
        assert r.status_code == 400 and "analyzer.alert.scripts_dirs" in r.text
    finally:
        proc.stop()


def test_only_scripts_under_scripts_dirs_run(tmp_path, marker, public_dirs):
    scripts, out = public_dirs
    ok = write_script(os.path.join(scripts, "notify"),
                      "#!/bin/sh\necho \"$#\" > %s/argc\ncat > %s/payload.json\n" % (out, out))
    os.symlink("/bin/sh", os.path.join(scripts, "sh-link"))
    lax = write_script(os.path.join(scripts, "lax"), "#!/bin/sh\nexit 0\n")
    os.chmod(lax, 0o777)
    proc = start_analyzer(tmp_path, scripts_dirs=[scripts])
    try:
        for action, needle in (("file:///bin/sh", "is not under analyzer.alert.scripts_dirs"),
                               ("file://%s/sh-link" % scripts, "/usr/bin/dash is not under" if
                                os.path.realpath("/bin/sh") == "/usr/bin/dash" else "is not under"),
                               ("file://%s/../../bin/sh" % scripts, "is not under analyzer.alert.scripts_dirs"),
                               ("file://%s/missing" % scripts, "No such file"),
                               ("file://%s" % lax, "writable by group or others")):
            r = post_alert(proc, action)
            assert r.status_code == 400 and needle in r.text, (action, r.status_code, r.text)
        r = post_alert(proc, "file://" + ok)
        assert r.status_code == 201, r.text
        uid = r.json()["UUID"]
        post_node(proc, "evil", "$(id>%s)" % marker)
        assert_status_fast(proc)
        payload = wait_until(lambda: os.path.getsize(os.path.join(out, "payload.json")) and
                             json.load(open(os.path.join(out, "payload.json"))), message="the script's payload")
        assert payload["UUID"] == uid
        assert [n["Metadata"]["Name"] for n in payload["ReasonData"]] == ["$(id>%s)" % marker]
        assert open(os.path.join(out, "argc")).read().strip() == "0"     # payload on stdin only
        assert not os.path.exists(marker)
        assert "ActionError" not in alert_state(proc, uid)
    finally:
        proc.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_script_runs_as_configured_user(tmp_path, public_dirs):
    scripts, out = public_dirs
    ok = write_script(os.path.join(scripts, "whoami"),
                      "#!/bin/sh\ncat >/dev/null\nid -u > %s/uid\necho \"$HOME\" > %s/home\n" % (out, out))
    proc = start_analyzer(tmp_path, scripts_dirs=[scripts], run_as="nobody")
    try:
        assert post_alert(proc, "file://" + ok).status_code == 201
        post_node(proc, "n1", "n1")
        uid = wait_until(lambda: open(os.path.join(out, "uid")).read().strip(), message="the script's id -u")
        import pwd
        assert int(uid) == pwd.getpwnam("nobody").pw_uid
    finally:
        proc.stop()


def test_bad_scripts_settings_refuse_to_start(tmp_path):
    wide = tmp_path / "wide"
    wide.mkdir()
    wide.chmod(0o777)
    for alert, needle in (({"scripts_dirs": [str(wide)]}, "writable by everyone"),
                          ({"scripts_dirs": [str(tmp_path / "nope")]}, "is not a directory"),
                          ({"run_as": "no-such-user-xyz"}, "no such user"),
                          ({"webhook_allowed": ["http://x/"]}, "neither a host name nor an address/CIDR")):
        proc = SkydiveProcess("analyzer", tmp_path / "a", analyzer_config(tmp_path, analyzer={"alert": alert}))
        with pytest.raises(RuntimeError) as exc:
            proc.start(timeout=15)
        assert needle in str(exc.value), str(exc.value)[-2000:]


class Hook(http.server.BaseHTTPRequestHandler):
    posts = []

    def do_POST(self):   # noqa: N802 (http.server API)
        n = int(self.headers.get("Content-Length") or 0)
        Hook.posts.append(self.rfile.read(n))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    Hook.posts = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_webhook_allow_list(tmp_path, hook):
    proc = start_analyzer(tmp_path, webhook_allowed=["10.99.0.0/16", "hooks.example.invalid"])
    try:
        r = post_alert(proc, "http://127.0.0.1:%d/hook" % hook)
        assert r.status_code == 400 and "127.0.0.1 is not in analyzer.alert.webhook_allowed" in r.text, r.text
        # a host name is accepted, then each of its addresses is checked when connecting
        r = post_alert(proc, "http://localhost:%d/hook" % hook)
        assert r.status_code == 201, r.text
        uid = r.json()["UUID"]
        post_node(proc, "n1", "n1")
        err = wait_until(lambda: alert_state(proc, uid).get("ActionError"), message="the refused webhook")
        assert "outside analyzer.alert.webhook_allowed" in err, err
        assert Hook.posts == []
        assert_status_fast(proc)
    finally:
        proc.stop()
    proc = start_analyzer(tmp_path / "second", webhook_allowed=["127.0.0.0/8"])
    try:
        assert post_alert(proc, "http://localhost:%d/hook" % hook).status_code == 201
        post_node(proc, "n1", "n1")
        wait_until(lambda: Hook.posts, message="the allowed webhook")
        assert json.loads(Hook.posts[0])["ReasonData"][0]["ID"] == "n1"
    finally:
        proc.stop()
