"""The two-request attack from a web page on another origin, in real headless Chromium (issue 9).

An analyzer with its default noauth backend and an allowed alert script; a page served by a small
HTTP server on another port tries, as the operator's browser would: text/plain `fetch`es (no
preflight), JSON `fetch`es (preflight), a text/plain form post (the classic JSON CSRF), and a
WebSocket to /ws/publisher. Nothing is created, no script runs; then the same alert sent by a
non-browser client runs the script (the detection works).
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
from tests.ui.browser import Browser, chromium_binary

pytestmark = [pytest.mark.timeout(300)]

PAGE = """<!doctype html><html><body>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="POST" action="%(analyzer)s/api/alert" enctype="text/plain" target="sink">
<input name='{"Expression":"G.V().Has(\\"Type\\",\\"csrf\\")","Action":"file://%(script)s","x":"' value='"}'>
</form>
<script>
(async () => {
  const A = %(analyzer_js)s, results = {};
  const alert = JSON.stringify({Expression: "G.V().Has('Type','csrf')", Action: "file://" + %(script_js)s});
  const shell = JSON.stringify({Expression: "G.V().Has('Type','csrf')", Action: "file:///bin/sh"});
  const node = {ID: "csrf-node", Host: "h", Metadata: {Name: "$(id>" + %(marker_js)s + ")", Type: "csrf"}};
  async function attempt(name, path, body, ctype, mode) {
    try {
      const r = await fetch(A + path, {method: "POST", mode, credentials: "include",
                                       headers: {"Content-Type": ctype}, body});
      results[name] = r.type === "opaque" ? "opaque" : r.status;
    } catch (e) { results[name] = "blocked"; }
  }
  await attempt("alert-text", "/api/alert", alert, "text/plain", "no-cors");
  await attempt("shell-text", "/api/alert", shell, "text/plain", "no-cors");
  await attempt("node-text", "/api/node", JSON.stringify(node), "text/plain", "no-cors");
  await attempt("alert-json", "/api/alert", alert, "application/json", "cors");
  await attempt("node-json", "/api/node", JSON.stringify(node), "application/json", "cors");
  await new Promise(done => {
    const ws = new WebSocket(A.replace("http", "ws") + "/ws/publisher?x-client-type=evil&x-host-id=evil");
    ws.onopen = () => {
      ws.send(JSON.stringify({Namespace: "Graph", Type: "NodeAdded", Obj: node}));
      results.ws = "open"; setTimeout(done, 500);
    };
    ws.onerror = () => { results.ws = "refused"; done(); };
  });
  document.getElementById("f").submit();
  setTimeout(() => { document.title = "done:" + JSON.stringify(results); }, 1000);
})();
</script></body></html>"""


@pytest.fixture
def dirs():
    scripts = tempfile.mkdtemp(prefix="skydive-csrf-scripts-")
    os.chmod(scripts, 0o755)
    marker = "/tmp/skydive-csrf-%s" % uuid.uuid4().hex[:10]
    yield scripts, marker
    shutil.rmtree(scripts, ignore_errors=True)
    for path in (marker, marker + ".script"):
        if os.path.exists(path):
            os.unlink(path)


def serve(page):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):   # noqa: N802 (http.server API)
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_cross_origin_page_cannot_create_alert_or_node(tmp_path, dirs):
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    scripts, marker = dirs
    script = os.path.join(scripts, "touch-marker")
    with open(script, "w") as fh:
        fh.write("#!/bin/sh\ncat > %s.script\n" % marker)
    os.chmod(script, 0o755)
    proc = SkydiveProcess("analyzer", tmp_path / "a", analyzer_config(
        tmp_path, analyzer={"alert": {"scripts_dirs": [scripts], "debounce": 0.05}}))
    proc.start()
    # "localhost" vs "127.0.0.1" and another port: another origin, same (loopback) address space
    srv = serve(PAGE % {"analyzer": proc.url, "script": script, "analyzer_js": json.dumps(proc.url),
                        "script_js": json.dumps(script), "marker_js": json.dumps(marker)})
    browser = Browser().start()
    try:
        browser.navigate("http://localhost:%d/attack.html" % srv.server_address[1])
        title = browser.wait_for("document.title.startsWith('done:') && document.title", timeout=30,
                                 message="the attack page finished")
        results = json.loads(title[len("done:"):])
        # the opaque no-cors answers hide the 403; the JSON requests fail their preflight
        assert results["alert-json"] == "blocked" and results["node-json"] == "blocked", results
        assert results["ws"] == "refused", results
        time.sleep(1.5)
        t0 = time.monotonic()
        assert requests.get(proc.url + "/api/status", timeout=1).status_code == 200
        assert time.monotonic() - t0 < 1.0
        assert requests.get(proc.url + "/api/alert", timeout=5).json() == {}
        nodes = requests.get(proc.url + "/api/node", timeout=5).json()
        assert "csrf-node" not in nodes and not [n for n in nodes.values() if n["Metadata"].get("Type") == "csrf"]
        assert not os.path.exists(marker) and not os.path.exists(marker + ".script")
        log = proc.log_tail(200)
        assert "Traceback" not in log
        # the requests did reach the analyzer (not stopped by the browser for another reason)
        for what in ("refused POST /api/alert from Origin 'http://localhost:", "refused POST /api/node from Origin",
                     "refused GET /ws/publisher from Origin"):
            assert what in log, log
        # control: the same alert from a non-browser client is accepted and its script does run
        r = requests.post(proc.url + "/api/alert", timeout=5,
                          json={"Expression": "G.V().Has('Type','csrf')", "Action": "file://" + script})
        assert r.status_code == 201, r.text
        r = requests.post(proc.url + "/api/node", timeout=5,
                          json={"ID": "ctl", "Host": "h", "Metadata": {"Name": "$(id>%s)" % marker, "Type": "csrf"}})
        assert r.status_code == 201, r.text
        wait_until(lambda: os.path.exists(marker + ".script") and os.path.getsize(marker + ".script"),
                   message="the control alert's script")
        assert "$(id>%s)" % marker in open(marker + ".script").read()
        assert not os.path.exists(marker)       # the payload is data on stdin, never run by a shell
    finally:
        browser.close()
        srv.shutdown()
        srv.server_close()
        proc.stop()
