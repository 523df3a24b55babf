"""Helpers for the limits tests and the fuzzers: a /api/status prober, RSS, a raw WebSocket client."""

import base64
import json
import os
import socket
import struct
import threading
import time

import requests


class StatusProbe:
    """Asks GET /api/status every `period` seconds from a thread; records the slowest answer."""

    def __init__(self, url, period=0.2, auth=None):
        self.url = url + "/api/status"
        self.period = period
        self.auth = auth
        self.worst = 0.0
        self.failures = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                r = requests.get(self.url, timeout=5, auth=self.auth)
                if r.status_code != 200:
                    self.failures.append("status %d" % r.status_code)
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self.worst = max(self.worst, time.monotonic() - t0)
            self.count += 1
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        return False

    def assert_responsive(self, limit=1.0):
        assert self.count > 0
        assert not self.failures, self.failures[:5]
        assert self.worst < limit, "/api/status took %.2fs" % self.worst


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tracebacks(log_path):
    with open(log_path, "rb") as fh:
        return fh.read().decode(errors="replace").count("Traceback (most recent call last)")


class RawWS:
    """A minimal WebSocket client on a plain socket: it never reads unless asked (slow consumer)."""

    def __init__(self, address, path, headers=None, timeout=10):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        hdrs = {"Host": address, "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13", "X-Client-Type": "test"}
        hdrs.update(headers or {})
        req = "GET %s HTTP/1.1\r\n%s\r\n\r\n" % (path, "\r\n".join("%s: %s" % kv for kv in hdrs.items()))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake: %r" % head)
            head += chunk
        self.status = int(head.split(b" ", 2)[1])
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def send_text(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = _mask(data, mask)
        self.sock.sendall(hdr + mask + masked)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        """(opcode, payload) of the next frame (ping frames included)."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def recv_json(self, timeout=10):
        """The next text message, decoded (pings and pongs skipped)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            op, payload = self.recv_frame()
            if op == 1:
                return json.loads(payload)
            if op == 8:
                raise ConnectionError("closed: %r" % payload)
        raise TimeoutError("no message")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _mask(data, mask):
    n = len(data)
    rep = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(rep, "big")).to_bytes(n, "big")
