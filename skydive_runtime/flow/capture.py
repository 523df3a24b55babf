"""CaptureRunner: one capture source + one flow table, off the asyncio loop.

    runner = CaptureRunner(AFPacketSource("eth0", netns="ns1", bpf_filter="icmp"),
                           FlowTable(node_tid=tid, capture_id=cid),
                           on_flows=send_flows, on_stats=update_node, loop=asyncio_loop)
    runner.start()          # opens the source in the capture thread; raises its error here
    ...
    runner.stop()           # joins the thread, emits the remaining flows once, closes the source

The thread loops on `source.read_packets(table.process, poll_ms)`; every
`update_ms` it calls `table.tick(now)` and hands the returned list of flow
dicts (upstream Flow JSON, LastUpdateMetric over the tick) to `on_flows`,
and every `stats_ms` a stats dict to `on_stats`:

    {"PacketsReceived", "PacketsDropped", "PacketsIfDropped",     # the source's counters
     "FlowCount", "FlowDropped", "CaptureID"}

With `loop` set, callbacks are scheduled with loop.call_soon_threadsafe(...)
so they run on the asyncio loop; without it they run in the capture thread.
Offline sources (pcap files) run on packet time and the runner ends by
itself at end of input (all flows emitted; `wait()` returns, `eof` is True).
A failure inside the thread ends it; `error` holds the exception and
`on_error(exc)` (if given) is called.
"""

import collections
import logging
import threading
import time

log = logging.getLogger(__name__)


def emit(loop, cb, arg):
    """cb(arg): on `loop` when there is one (nothing once it is closed), else here."""
    if cb is None:
        return
    if loop is not None:
        try:
            loop.call_soon_threadsafe(cb, arg)
        except RuntimeError:        # loop closed
            pass
    else:
        cb(arg)


class CaptureRunner(object):
    def __init__(self, source, table, on_flows=None, on_stats=None, update_ms=1000, stats_ms=1000,
                 poll_ms=100, loop=None, on_error=None, name=None):
        if update_ms <= 0 or stats_ms <= 0 or poll_ms <= 0:
            raise ValueError("update_ms, stats_ms and poll_ms must be > 0")
        self.source = source
        self.table = table
        self.on_flows = on_flows
        self.on_stats = on_stats
        self.on_error = on_error
        self.update_ms = update_ms
        self.stats_ms = stats_ms
        self.poll_ms = min(poll_ms, update_ms, stats_ms)
        self.loop = loop
        self.name = name or "capture-%s" % (table.capture_id or id(self))
        self.offline = isinstance(source, _offline_types())
        self.error = None
        self.eof = False
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = None
        self._last_stats = {"PacketsReceived": 0, "PacketsDropped": 0, "PacketsIfDropped": 0,
                            "FlowCount": 0, "FlowDropped": 0, "CaptureID": table.capture_id}
        self._clock_ms = 0
        self._snapshots = collections.deque()
        self.cpu_seconds = 0.0

    # ---------------------------------------------------------------- control
    def start(self, timeout=10.0):
        """Start the thread and wait until the source is open; re-raise its open error."""
        if self._thread is not None:
            raise RuntimeError("capture runner already started")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._opened.wait(timeout):
            self._stop.set()
            raise TimeoutError("capture source did not open within %.1fs" % timeout)
        if self.error is not None:
            self._thread.join(timeout)
            raise self.error
        return self

    def stop(self, timeout=10.0):
        """Stop capturing, emit the remaining flows, close the source."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout=None):
        """Wait for the thread to end (offline sources end at end of input)."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def stats(self):
        return dict(self._last_stats)

    def request_snapshot(self, callback):
        """Ask the capture thread for every live flow: within `poll_ms` it calls
        callback(list of flow dicts) (on the loop when `loop` is set).  This is how
        live Gremlin queries on the agent read the table without sharing it."""
        if not self.running:
            raise RuntimeError("capture is not running")
        self._snapshots.append(callback)

    # ---------------------------------------------------------------- thread
    def _emit(self, cb, arg):
        emit(self.loop, cb, arg)

    def _now_ms(self):
        if self.offline:
            return self._clock_ms
        return time.time_ns() // 1000000

    def _collect_stats(self):
        st = dict(self.source.stats())
        ts = self.table.stats()
        st["FlowCount"] = ts["FlowCount"]
        st["FlowDropped"] = ts["FlowDropped"]
        st["CaptureID"] = self.table.capture_id
        self._last_stats = st
        return st

    def _run(self):
        src = self.source
        table = self.table
        cpu0 = time.thread_time()
        try:
            src.open()
        except BaseException as e:       # reported by start()
            self.error = e
            self._opened.set()
            return
        self._opened.set()
        try:
            if self.offline:
                process = self._offline_handler()
            else:
                process = table.process
            read = src.read_packets
            block = getattr(table, "process_block", None)
            if block is not None and not self.offline and hasattr(src, "read_blocks"):
                # whole ring blocks straight into the table's fast path (afpacket)
                def read(dummy, timeout_ms, read_blocks=src.read_blocks):
                    return read_blocks(block, timeout_ms)
            poll = self.poll_ms
            now = self._now_ms()
            # Offline sources run on packet time: the first tick is due update_ms after
            # the first packet.
            next_tick = None if self.offline else now + self.update_ms
            next_stats = now + self.stats_ms
            while not self._stop.is_set():
                try:
                    read(process, poll)
                except EOFError:
                    self.eof = True
                    break
                now = self._now_ms()
                while self._snapshots:
                    self._emit(self._snapshots.popleft(), table.get_flows(now))
                if next_tick is None:
                    if now:
                        next_tick = now + self.update_ms
                elif now >= next_tick:
                    flows = table.tick(now)
                    if flows:
                        self._emit(self.on_flows, flows)
                    next_tick = now + self.update_ms if self.offline else \
                        max(next_tick + self.update_ms, now)
                if not self.offline and now >= next_stats:
                    self._emit(self.on_stats, self._collect_stats())
                    next_stats = max(next_stats + self.stats_ms, now)
            now = self._now_ms()
            while self._snapshots:
                self._emit(self._snapshots.popleft(), table.get_flows(now))
            flows = table.flush(now)
            if flows:
                self._emit(self.on_flows, flows)
            self._emit(self.on_stats, self._collect_stats())
        except BaseException as e:
            log.warning("capture %s failed: %s", self.name, e)
            self.error = e
            try:
                flows = table.flush(self._now_ms())
                if flows:
                    self._emit(self.on_flows, flows)
                self._emit(self.on_stats, self._collect_stats())
            except Exception:
                log.exception("capture %s: flushing flows after the failure", self.name)
            if self.on_error is not None:
                self._emit(self.on_error, e)
        finally:
            self.cpu_seconds = time.thread_time() - cpu0
            try:
                src.close()
            except Exception:
                log.exception("closing capture source %s", self.name)

    def _offline_handler(self):
        process = self.table.process
        runner = self

        def handler(data, ts_ns, wire_len=0, linktype=None):
            ms = ts_ns // 1000000
            if ms > runner._clock_ms:
                runner._clock_ms = ms
            process(data, ts_ns, wire_len, linktype)
        return handler


def _offline_types():
    from .pcapfile import PcapFileSource
    return (PcapFileSource,)


def ingest_pcap(src, table, on_flows=None):
    """Read a whole pcap (path, bytes or file object) into `table` on packet time and
    return every flow dict (the POST /api/pcap path).  Raises PcapError on bad input."""
    from .pcapfile import PcapReader
    reader = PcapReader(src)
    lt = reader.linktype
    clock = 0
    out = []
    try:
        for data, ts, wl in reader:
            table.process(data, ts, wl, lt)
            if ts > clock:
                clock = ts
    finally:
        reader.close()
    now = clock // 1000000
    out.extend(table.flush(now))
    if on_flows is not None and out:
        on_flows(out)
    return out


# ---------------------------------------------------------------------------------------------
# The same runner in a child process


class ProcessCaptureRunner(object):
    """CaptureRunner whose source and flow table live in a child process (multiprocessing
    "spawn"), so the packet hot path runs on its own interpreter (no GIL shared with the
    agent's loop) and may use another core.  Same API as CaptureRunner.

    `source` must be picklable before open() (AFPacketSource, PcapSource, PcapSocketSource,
    SFlowSource without an `on_sample` callback; not PcapFileSource); `table`
    is a FlowTable whose `settings` are used to build the child's table (the parent's instance
    stays empty).  Flow batches, stats, snapshots and errors come back over a pipe and are
    delivered by a reader thread (on `loop` when given).
    """

    def __init__(self, source, table, on_flows=None, on_stats=None, update_ms=1000, stats_ms=1000,
                 poll_ms=100, loop=None, on_error=None, name=None):
        if update_ms <= 0 or stats_ms <= 0 or poll_ms <= 0:
            raise ValueError("update_ms, stats_ms and poll_ms must be > 0")
        self.source = source
        self.table = table
        self.settings = dict(table.settings)
        self.on_flows = on_flows
        self.on_stats = on_stats
        self.on_error = on_error
        self.update_ms, self.stats_ms, self.poll_ms = update_ms, stats_ms, poll_ms
        self.loop = loop
        self.name = name or "capture-%s" % (table.capture_id or id(self))
        self.error = None
        self.eof = False
        self.cpu_seconds = 0.0
        self.process = None
        self._conn = None
        self._reader = None
        self._send_lock = threading.Lock()
        self._snapshots = {}
        self._snap_id = 0
        self._last_stats = {"PacketsReceived": 0, "PacketsDropped": 0, "PacketsIfDropped": 0,
                            "FlowCount": 0, "FlowDropped": 0, "CaptureID": table.capture_id}

    def start(self, timeout=30.0):
        import multiprocessing
        if self.process is not None:
            raise RuntimeError("capture runner already started")
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_process_main, name=self.name, daemon=True,
                                   args=(child, self.source, self.settings, self.update_ms, self.stats_ms,
                                         self.poll_ms))
        self.process.start()
        child.close()
        self._conn = parent
        if not parent.poll(timeout):
            self._kill()
            raise TimeoutError("capture process did not open its source within %.1fs" % timeout)
        try:
            kind, payload = parent.recv()
        except EOFError:
            self._kill()
            raise RuntimeError("capture process exited before opening its source (exit code %s)"
                               % self.process.exitcode)
        if kind == "open_error":
            self.process.join(5)
            self.error = _unpickle_error(payload)
            raise self.error
        self._reader = threading.Thread(target=self._read, name=self.name + "-reader", daemon=True)
        self._reader.start()
        return self

    def _emit(self, cb, arg):
        emit(self.loop, cb, arg)

    def _read(self):
        conn = self._conn
        done = False
        while True:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                break
            if kind == "flows":
                self._emit(self.on_flows, payload)
            elif kind == "stats":
                self._last_stats = payload
                self._emit(self.on_stats, payload)
            elif kind == "snapshot":
                cb = self._snapshots.pop(payload[0], None)
                if cb is not None:
                    self._emit(cb, payload[1])
            elif kind == "error":
                self.error = _unpickle_error(payload)
                self._emit(self.on_error, self.error)
            elif kind == "done":
                self.eof = payload["eof"]
                self.cpu_seconds = payload["cpu_seconds"]
                done = True
                break
        if not done and self.error is None:
            self.process.join(1)
            self.error = RuntimeError("capture process %s ended unexpectedly (exit code %s)"
                                      % (self.name, self.process.exitcode))
            self._emit(self.on_error, self.error)

    def _send(self, msg):
        with self._send_lock:
            try:
                self._conn.send(msg)
                return True
            except (OSError, ValueError):
                return False

    def request_snapshot(self, callback):
        if not self.running:
            raise RuntimeError("capture is not running")
        with self._send_lock:
            self._snap_id += 1
            sid = self._snap_id
        self._snapshots[sid] = callback
        self._send(("snapshot", sid))

    def stop(self, timeout=10.0):
        if self.process is None:
            return
        self._send(("stop", None))
        if self._reader is not None:
            self._reader.join(timeout)
        self.process.join(timeout)
        self._kill()
        try:
            self._conn.close()
        except OSError:
            pass

    def _kill(self):
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(2)

    def wait(self, timeout=None):
        if self._reader is not None:
            self._reader.join(timeout)
            return not self._reader.is_alive()
        return True

    @property
    def running(self):
        return self.process is not None and self.process.is_alive() and \
            self._reader is not None and self._reader.is_alive()

    def stats(self):
        return dict(self._last_stats)


def _pickle_error(exc):
    import pickle
    try:
        return pickle.dumps(exc)
    except Exception:
        return pickle.dumps(RuntimeError("%s: %s" % (type(exc).__name__, exc)))


def _unpickle_error(blob):
    import pickle
    try:
        return pickle.loads(blob)
    except Exception as e:
        return RuntimeError("capture error (undecodable: %s)" % e)


def _process_main(conn, source, settings, update_ms, stats_ms, poll_ms):
    """Child process body of ProcessCaptureRunner."""
    from .table import FlowTable
    lock = threading.Lock()

    def send(msg):
        with lock:
            try:
                conn.send(msg)
            except (OSError, ValueError):
                pass
    try:
        table = FlowTable(**settings)
        runner = CaptureRunner(source, table, on_flows=lambda fl: send(("flows", fl)),
                               on_stats=lambda st: send(("stats", st)),
                               on_error=lambda e: send(("error", _pickle_error(e))),
                               update_ms=update_ms, stats_ms=stats_ms, poll_ms=poll_ms)
        runner.start()
    except BaseException as e:
        send(("open_error", _pickle_error(e)))
        conn.close()
        return
    send(("opened", None))
    try:
        while runner.running:
            if conn.poll(poll_ms / 1000.0):
                try:
                    cmd, arg = conn.recv()
                except (EOFError, OSError):
                    break
                if cmd == "stop":
                    break
                if cmd == "snapshot":
                    runner.request_snapshot(lambda fl, sid=arg: send(("snapshot", (sid, fl))))
    finally:
        runner.stop()
        send(("done", {"eof": runner.eof, "cpu_seconds": runner.cpu_seconds}))
        conn.close()


class FilteredTable(object):
    """A FlowTable behind a user-space BPF filter (sources that cannot filter in the kernel:
    pcapsocket, sflow, ovssflow) and/or on a packet clock (pcapsocket: a replayed pcap keeps its
    own timestamps, so timers run on packet time that then elapses with the wall clock: flows are
    neither expired at once nor stamped with the replay time). Quacks like the FlowTable for
    CaptureRunner."""

    def __init__(self, table, expr=None, packet_clock=False):
        self._t = table
        self._m = None
        if expr:
            from .bpf import BPFMatcher
            self._m = BPFMatcher(expr)
        self.packet_clock = packet_clock
        self._pkt_ms = 0
        self._wall_ms = 0
        self.capture_id = table.capture_id

    def process(self, data, ts_ns, wire_len=0, linktype=None):
        if self._m is not None and not self._m.match(data, wire_len or len(data)):
            return
        if self.packet_clock:
            ms = ts_ns // 1000000
            if ms >= self._pkt_ms:
                self._pkt_ms = ms
                self._wall_ms = time.time_ns() // 1000000
        self._t.process(data, ts_ns, wire_len, linktype)

    def _now(self, now_ms):
        if self.packet_clock and self._pkt_ms:
            return self._pkt_ms + max(0, now_ms - self._wall_ms)
        return now_ms

    def tick(self, now_ms):
        if self.packet_clock and not self._pkt_ms:
            # no packet yet, so no flow: a tick on the wall clock now would leave the table's
            # last tick years after the replayed packets (LastUpdateMetric Start > Last)
            return []
        return self._t.tick(self._now(now_ms))

    def flush(self, now_ms):
        return self._t.flush(self._now(now_ms))

    def get_flows(self, now_ms=None):
        return self._t.get_flows(None if now_ms is None else self._now(now_ms))

    def stats(self):
        return self._t.stats()

    def __len__(self):
        return len(self._t)
