"""The thread a probe reads a blocking source in (OVSDB IDL, Docker events, LLDP sockets): what it
learns is posted to the asyncio loop, which alone touches the graph.

A subclass implements `session()`: one connection to the source, returning or raising when it
ends. `run()` calls it again `retry` seconds later until `stop()`; an exception is handed to
`failed(exc)` (default: logged). `stop()` wakes a thread blocked in `select`/`poll` through the
wake pipe (`wake_fd` to wait on, `drain()` after) and calls `interrupt()` for a source that blocks
elsewhere (a socket read). `finish()` runs once when the thread ends.
"""

import logging
import os
import threading

log = logging.getLogger(__name__)


class SourceThread(threading.Thread):
    retry = 1.0        # seconds between two sessions

    def __init__(self, loop, name):
        threading.Thread.__init__(self, name=name, daemon=True)
        self.loop = loop
        self.running = True
        self.stop_event = threading.Event()
        self._pipe_lock = threading.Lock()
        self.wake_fd, self._wpipe = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    # ---- any thread ----------------------------------------------------------------------------
    def stop(self):
        self.running = False
        self.stop_event.set()
        self.wake()
        self.interrupt()

    def wake(self):
        with self._pipe_lock:
            if self._wpipe >= 0:
                try:
                    os.write(self._wpipe, b"x")
                except OSError:
                    pass

    def interrupt(self):
        """Unblock a session waiting on something else than the wake pipe."""

    # ---- the thread ----------------------------------------------------------------------------
    def post(self, fn, *args):
        """`fn(*args)` on the loop; a closed loop ends the thread."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            self.running = False

    def drain(self):
        try:
            while os.read(self.wake_fd, 4096):
                pass
        except OSError:
            pass

    def session(self):
        raise NotImplementedError

    def failed(self, exc):
        log.exception("%s: session failed", self.name)

    def finish(self):
        """Release what the sessions kept (once, when the thread ends)."""

    def run(self):
        try:
            while self.running:
                try:
                    self.session()
                except Exception as exc:
                    if self.running:
                        self.failed(exc)
                if self.running:
                    self.stop_event.wait(self.retry)
        finally:
            try:
                self.finish()
            finally:
                with self._pipe_lock:
                    os.close(self.wake_fd)
                    os.close(self._wpipe)
                    self._wpipe = -1
