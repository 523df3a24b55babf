"""Headless Chromium for the UI tests: a one-shot `--dump-dom` run and a DevTools session over
`--remote-debugging-pipe` (JSON messages separated by NUL on fds 3/4; no port, no websocket).

Every process started here is in its own session and is killed (whole group) on close, even
when a test fails.
"""

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--mute-audio", "--hide-scrollbars",
]
WINDOW = (1280, 800)


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _kill_group(proc, timeout=5):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def dump_dom(url, budget_ms=8000, timeout=90, window=WINDOW):
    """Load `url` with a virtual time budget and return the serialised DOM."""
    profile = tempfile.mkdtemp(prefix="skydive-ui-chromium-")
    cmd = [chromium_binary()] + CHROMIUM_FLAGS + [
        "--user-data-dir=" + profile, "--window-size=%d,%d" % window,
        "--virtual-time-budget=%d" % budget_ms, "--dump-dom", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AssertionError("chromium --dump-dom did not finish within %ss" % timeout)
    finally:
        _kill_group(proc)
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise AssertionError("chromium --dump-dom exited with %s: %s" % (proc.returncode, err.decode(errors="replace")[-2000:]))
    return out.decode("utf-8", errors="replace")


class CDPError(Exception):
    pass


class Browser:
    """One headless Chromium driven over --remote-debugging-pipe, attached to one page."""

    def __init__(self, window=WINDOW):
        self.window = window
        self.proc = None
        self.profile = None
        self._wfd = None
        self._rfd = None
        self._id = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies = {}
        self._events = []
        self._reader = None
        self._closed = False
        self.session = None
        self.console = []          # console messages and exceptions of the page

    def start(self):
        self.profile = tempfile.mkdtemp(prefix="skydive-ui-chromium-")
        to_child_r, to_child_w = os.pipe()       # we write commands, chromium reads fd 3
        from_child_r, from_child_w = os.pipe()   # chromium writes fd 4, we read
        # the child's ends are moved above 9 so that the shell's `3<&X 4>&Y` cannot clobber them
        for_child = []
        for fd in (to_child_r, from_child_w):
            high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
            os.close(fd)
            for_child.append(high)
        to_child_r, from_child_w = for_child
        cmd = [chromium_binary()] + CHROMIUM_FLAGS + [
            "--user-data-dir=" + self.profile, "--window-size=%d,%d" % self.window,
            "--remote-debugging-pipe", "about:blank"]
        # bash (dash has no fds > 9) moves the pipe ends to fds 3 and 4, then becomes chromium
        shell = 'exec "$@" 3<&%d 4>&%d %d<&- %d>&-' % (to_child_r, from_child_w, to_child_r, from_child_w)
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([shutil.which("bash") or "/bin/bash", "-c", shell, "bash"] + cmd, pass_fds=(to_child_r, from_child_w),
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._wfd, self._rfd = to_child_w, from_child_r
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()
        targets = self.call("Target.getTargets")["targetInfos"]
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            target_id = pages[0]["targetId"]
        else:
            target_id = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target_id, flatten=True)["sessionId"]
        self.page("Page.enable")
        self.page("Runtime.enable")
        # a load or reload must not wait on Chromium's HTTP cache lock (a revalidation in flight
        # blocks the same URL up to 20 s under load); the UI never relies on the cache (no-cache)
        self.page("Network.enable")
        self.page("Network.setCacheDisabled", cacheDisabled=True)
        self.page("Emulation.setDeviceMetricsOverride", width=self.window[0], height=self.window[1],
                  deviceScaleFactor=1, mobile=False)
        return self

    # ------------------------------------------------------------------ protocol plumbing
    def _read_loop(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._rfd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    elif not msg.get("method", "").startswith("Network."):   # enabled for the cache switch only
                        self._events.append(msg)
                        self._note_event(msg)
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _note_event(self, msg):
        method = msg.get("method")
        params = msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append("%s: %s" % (params.get("type"), args))
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            exc = d.get("exception", {})
            self.console.append("exception: %s %s" % (d.get("text", ""), exc.get("description", "")))

    def call(self, method, session=None, timeout=30, **params):
        with self._lock:
            self._id += 1
            mid = self._id
            msg = {"id": mid, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            data = json.dumps(msg).encode() + b"\0"
            os.write(self._wfd, data)
        deadline = time.time() + timeout
        with self._cond:
            while mid not in self._replies:
                if self._closed:
                    raise CDPError("chromium closed the debugging pipe (%s)" % method)
                left = deadline - time.time()
                if left <= 0:
                    raise CDPError("no reply to %s within %ss" % (method, timeout))
                self._cond.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise CDPError("%s: %s" % (method, reply["error"]))
        return reply.get("result", {})

    def page(self, method, timeout=30, **params):
        return self.call(method, session=self.session, timeout=timeout, **params)

    # ------------------------------------------------------------------ page helpers
    def navigate(self, url, timeout=30):
        with self._cond:
            self._events.clear()
        self.page("Page.navigate", url=url)
        deadline = time.time() + timeout
        with self._cond:
            while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
                left = deadline - time.time()
                if left <= 0:
                    raise CDPError("page %s did not load within %ss" % (url, timeout))
                self._cond.wait(left)

    def eval(self, expression, timeout=30):
        """Evaluate a JS expression in the page (promises awaited); returns its JSON value."""
        r = self.page("Runtime.evaluate", timeout=timeout, expression=expression,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError("JS error in %r: %s %s" % (expression[:200], d.get("text"),
                                                      d.get("exception", {}).get("description", "")))
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout=20, interval=0.1, message=None):
        """Poll a JS expression until it is truthy; returns its value."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.eval(expression)
            if last:
                return last
            time.sleep(interval)
        raise AssertionError("timed out after %ss waiting for %s (last value %r)\npage console:\n%s"
                             % (timeout, message or expression, last, "\n".join(self.console[-20:])))

    def click(self, x, y):
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params = {"type": kind, "x": x, "y": y}
            if kind != "mouseMoved":
                params.update(button="left", clickCount=1)
            self.page("Input.dispatchMouseEvent", **params)

    def drag(self, x0, y0, x1, y1, steps=8):
        self.page("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
        self.page("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, button="left", buttons=1, clickCount=1)
        for i in range(1, steps + 1):
            x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
            self.page("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left", buttons=1)
        self.page("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, button="left", buttons=0, clickCount=1)

    def double_click(self, x, y):
        self.page("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for count in (1, 2):
            self.page("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", buttons=1, clickCount=count)
            self.page("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", buttons=0, clickCount=count)

    def wheel(self, x, y, delta_y):
        self.page("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0, deltaY=delta_y)

    def key(self, key, code=None, key_code=0):
        for kind in ("rawKeyDown", "keyUp"):
            self.page("Input.dispatchKeyEvent", type=kind, key=key, code=code or key,
                      windowsVirtualKeyCode=key_code, nativeVirtualKeyCode=key_code)

    def screenshot(self, path):
        data = self.page("Page.captureScreenshot", format="png", timeout=60)["data"]
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))
        return path

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=5)
            except Exception:   # noqa: BLE001 - best effort, the group is killed below anyway
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(self.proc)
        for fd in (self._wfd, self._rfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wfd = self._rfd = None
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
        if getattr(self, "log", None):
            self.log.close()
