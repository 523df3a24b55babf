"""Capture cost: every meter on the same veth and traffic, interleaved rounds, medians.

    sudo .venv/bin/python benchmarks/flow_capture.py                    # the whole run (~4 min)
    sudo .venv/bin/python benchmarks/flow_capture.py --rounds 7 --seconds 4 --pps 250000
    sudo .venv/bin/python benchmarks/flow_capture.py --only offline     # or: live, program

Three parts, each printing a table (and the load average it ran at):

live     A C sendmmsg sender blasts 60-byte UDP over --flows flows at --pps from namespace A over
         a veth into namespace B, where one meter at a time captures (the meters in turn inside a
         round, the order rotated each round): none, ours-afpacket, ours-ebpf (on tcx),
         ours-ebpf-socket (the same program as a socket filter on an AF_PACKET socket; each a
         child process running a CaptureRunner), softflowd, pmacctd (Debian packages) and
         `tcpdump -w /dev/null` (the floor: AF_PACKET delivery and nothing else).  For each run:
         packets counted vs sent, the meter's process CPU, and the traffic-path CPU: the
         sender's own CPU (its softirq work included) + the ksoftirqd threads + the meter's
         process, per million packets sent.  "Added" is that minus the no-meter run of the
         same round: what the meter costs the traffic's own path, charged alike to every meter.
         Medians and min-max over the rounds.  --side egress captures on the sender's veth end
         instead (where an AF_PACKET tap clones every frame sent).  A separate short round per ours-ebpf with
         kernel.bpf_stats_enabled on gives the program's run time per packet (the sysctl
         itself costs ~150 ns a packet, so it is off in the measured rounds).
offline  User space of the afpacket probe without the kernel: synthetic TPACKET_V3 blocks of the
         same traffic in an anonymous ring read by AFPacketSource per frame (read_packets ->
         FlowTable.process) and by whole blocks (read_blocks -> FlowTable.process_block):
         CPU-s per million packets (medians of interleaved rounds) and, when valgrind is
         installed, instructions per packet (callgrind; load-independent).
program  The ebpf program alone (the tcx one, on the lo of a namespace of its own): BPF_PROG_TEST_RUN ns per run on IPv4 UDP/TCP and IPv6
         UDP frames (the run loop's own cost, an empty program, printed beside).
attach   (--only attach) The attach point: a count-only program (one per-CPU counter) on the
         AF_PACKET tap as a socket filter vs on tcx ingress + egress, beside ours-ebpf, in the
         live rounds: what the tap itself costs the traffic's path.

The machine is not quiet when other work runs: the live figures move with the load; the
instruction counts do not.
"""

import argparse
import json
import mmap
import os
import secrets
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skydive_runtime.flow import bpfasm  # noqa: E402
from skydive_runtime.flow.afpacket import AFPacketSource, TP_STATUS_USER, pack_block  # noqa: E402
from skydive_runtime.flow.capture import CaptureRunner  # noqa: E402
from skydive_runtime.flow.ebpf import EBPFFlowTable, EBPFSource, load_program, prog_run_stats, prog_test_run  # noqa: E402
from skydive_runtime.flow.table import FlowTable  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLK = os.sysconf("SC_CLK_TCK")
OURS = ("ours-afpacket", "ours-ebpf", "ours-ebpf-socket", "count-socket", "count-tcx")
ALL_METERS = ("ours-afpacket", "ours-ebpf", "ours-ebpf-socket", "softflowd", "pmacctd", "tcpdump")


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def proc_cpu(pid):
    """utime+stime of pid (all its threads), in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def ksoftirqd_pids():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/comm" % p) as f:
                    if f.read().startswith("ksoftirqd/"):
                        out.append(int(p))
            except OSError:
                pass
    return out


def ns_pids(ns, comm):
    out = []
    for p in sh("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            with open("/proc/%s/comm" % p) as f:
                if f.read().strip() == comm:
                    out.append(int(p))
        except OSError:
            pass
    return out


def med(values):
    return statistics.median(values) if values else float("nan")


def spread(values):
    return "%.3f-%.3f" % (min(values), max(values)) if values else "-"


# ---------------------------------------------------------------------------------------- child meter

def count_program(map_fd, prog_type):
    """The least a per-packet program does: bump one per-CPU counter, return 0."""
    a = bpfasm.Asm()
    a.st(bpfasm.W, bpfasm.R10, -4, 0)
    a.ld_map_fd(bpfasm.R1, map_fd)
    a.mov64_reg(bpfasm.R2, bpfasm.R10)
    a.alu64_imm(bpfasm.ADD, bpfasm.R2, -4)
    a.call(bpfasm.FN_map_lookup_elem)
    a.jmp_imm(bpfasm.JEQ, bpfasm.R0, 0, "out")
    a.ldx(bpfasm.DW, bpfasm.R1, bpfasm.R0, 0)
    a.alu64_imm(bpfasm.ADD, bpfasm.R1, 1)
    a.stx(bpfasm.DW, bpfasm.R0, 0, bpfasm.R1)
    a.label("out")
    a.mov64_imm(bpfasm.R0, 0)                 # socket filter: nothing queued; tc: TC_ACT_OK
    a.exit()
    return load_program(a.assemble(), prog_type=prog_type)


def count_child(kind, dev, ns):
    """Attach-point probe: the count-only program on the AF_PACKET tap (socket filter) or on tcx
    ingress + egress (BPF_LINK_CREATE, SCHED_CLS); prints the count at SIGTERM."""
    import ctypes
    import socket
    from skydive_runtime.flow import ebpf as E
    from skydive_runtime.flow.netns import in_netns
    ncpu = E.possible_cpus()
    mfd = E.map_create(6, 4, 8, 1)            # BPF_MAP_TYPE_PERCPU_ARRAY
    keep = []
    with in_netns(ns):
        if kind == "count-socket":
            fd = count_program(mfd, 1)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            s.setsockopt(socket.SOL_SOCKET, 50, fd)
            s.bind((dev, 3))
            keep.append(s)
        else:
            fd = count_program(mfd, 3)
            idx = socket.if_nametoindex(dev)
            for attach_type in (46, 47):      # BPF_TCX_INGRESS, BPF_TCX_EGRESS
                keep.append(E._bpf(28, struct.pack("=IIII", fd, idx, attach_type, 0).ljust(64, b"\0"))[0])
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    print("ready", flush=True)
    while not stop:
        time.sleep(0.05)
    key = ctypes.create_string_buffer(4)
    val = ctypes.create_string_buffer(8 * ncpu)
    E._bpf(1, E._elem_attr(mfd, ctypes.addressof(key), ctypes.addressof(val)))
    counted = sum(struct.unpack_from("=Q", val.raw, 8 * i)[0] for i in range(ncpu))
    print(json.dumps({"counted": counted}), flush=True)


def child_main(kind, dev, ns, stats):
    """One of our probes as its own process: runs until SIGTERM, then prints its counts as JSON."""
    if kind.startswith("count-"):
        return count_child(kind, dev, ns)
    final = {}
    if kind.startswith("ours-ebpf"):
        src = EBPFSource(dev, netns=ns, max_flows=100000, attach="socket" if kind == "ours-ebpf-socket" else "tcx")
        table = EBPFFlowTable(src, FlowTable(max_entries=100000))
    else:
        src = AFPacketSource(dev, netns=ns, block_nr=64)
        table = FlowTable(max_entries=100000)
    runner = CaptureRunner(src, table, on_flows=lambda fl: final.update((f["UUID"], f) for f in fl), update_ms=1000)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    runner.start()
    print("ready", flush=True)
    while not stop:
        time.sleep(0.05)
    prog = prog_run_stats(src.prog_fd) if stats and kind.startswith("ours-ebpf") else (0, 0)
    runner.stop()
    udp = [f for f in final.values() if f.get("Transport", {}).get("B") == 9000]
    print(json.dumps({"counted": sum(f["Metric"]["ABPackets"] for f in udp), "flows": len(udp),
                      "prog_ns": prog[0], "prog_runs": prog[1]}), flush=True)


# ---------------------------------------------------------------------------------------- live

class Lab(object):
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="flbench")
        self.sender = os.path.join(self.tmp, "sendmmsg")
        sh("gcc", "-O2", "-o", self.sender, os.path.join(HERE, "tools", "sendmmsg.c"))
        tag = secrets.token_hex(3)
        self.ns_a, self.ns_b, self.dev_a, self.dev_b = "fl%sa" % tag, "fl%sb" % tag, "fl%sx" % tag, "fl%sy" % tag
        self.created = []
        self.sink = None
        # the meters capture where the traffic arrives (ingress) or where it leaves (egress)
        self.cap_ns, self.cap_dev = (self.ns_a, self.dev_a) if args.side == "egress" else (self.ns_b, self.dev_b)

    def setup(self):
        for ns in (self.ns_a, self.ns_b):
            sh("ip", "netns", "add", ns)
            self.created.append(ns)
        sh("ip", "link", "add", self.dev_a, "netns", self.ns_a, "type", "veth", "peer", "name", self.dev_b, "netns", self.ns_b)
        sh("ip", "-n", self.ns_a, "addr", "add", "10.250.0.1/24", "dev", self.dev_a)
        sh("ip", "-n", self.ns_b, "addr", "add", "10.250.0.2/24", "dev", self.dev_b)
        for ns, dev in ((self.ns_a, self.dev_a), (self.ns_b, self.dev_b)):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # a sink socket that never reads: no ICMP port-unreachable traffic back
        self.sink = subprocess.Popen(["ip", "netns", "exec", self.ns_b, sys.executable, "-c",
                                      "import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                                      "s.bind(('0.0.0.0',9000));time.sleep(36000)"])
        time.sleep(0.3)
        sh("ip", "netns", "exec", self.ns_a, "ping", "-c", "1", "-W", "1", "10.250.0.2", check=False)

    def teardown(self):
        for ns in self.created:
            for p in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(p), 9)
                except OSError:
                    pass
            sh("ip", "netns", "del", ns, check=False)
        subprocess.run(["rm", "-rf", self.tmp])

    # -- meters
    def start(self, name, stats=False):
        """-> (popen, pids to charge); the meter is capturing when this returns."""
        t, ns, dev = self.tmp, self.cap_ns, self.cap_dev
        if name in OURS:
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", name, dev, ns] +
                                 (["--child-stats"] if stats else []), stdout=subprocess.PIPE, text=True)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("%s did not start" % name)
            return p, [p.pid]
        if name == "softflowd":
            p = subprocess.Popen(["ip", "netns", "exec", ns, "softflowd", "-i", dev, "-d", "-c", t + "/sf.sock",
                                  "-p", t + "/sf.pid", "-m", "65536", "-n", "127.0.0.1:9"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif name == "pmacctd":
            p = subprocess.Popen(["ip", "netns", "exec", ns, "pmacctd", "-i", dev, "-P", "memory",
                                  "-c", "src_host,dst_host,src_port,dst_port,proto", "-p", t + "/pm.pipe"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif name == "tcpdump":
            p = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-n", "-w", "/dev/null"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        else:
            raise ValueError(name)
        time.sleep(1.5)
        return p, ns_pids(ns, name) or [p.pid]

    def stop(self, name, popen, pids):
        """Stop the meter; -> packets it counted (None if unknown) and extra info."""
        info = {}
        counted = None
        if name in OURS:
            popen.send_signal(signal.SIGTERM)
            out = json.loads(popen.stdout.readline())
            popen.wait(20)
            return out["counted"], out
        if name == "softflowd":
            out = sh("softflowctl", "-c", self.tmp + "/sf.sock", "statistics", check=False).stdout
            for line in out.splitlines():
                if line.startswith("Packets processed:"):
                    counted = int(line.split(":")[1])
        elif name == "pmacctd":
            out = sh("ip", "netns", "exec", self.cap_ns, "pmacct", "-p", self.tmp + "/pm.pipe", "-s", check=False).stdout
            counted = 0
            for line in out.splitlines():
                cols = line.split()
                if len(cols) == 7 and cols[3] == "9000" and cols[4] == "udp":
                    counted += int(cols[5])
        for p in pids:
            try:
                os.kill(p, signal.SIGTERM)
            except OSError:
                pass
        try:
            _o, err = popen.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            _o, err = popen.communicate()
        if name == "tcpdump":
            for line in (err or "").splitlines():
                if line.endswith("packets captured"):
                    counted = int(line.split()[0])
        return counted, info

    def blast(self, seconds):
        """Run the sender; -> (packets sent, its CPU seconds incl. the softirq work it ran)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns_a, self.sender, "10.250.0.2", "9000", str(seconds),
                              str(self.args.payload), str(self.args.flows), str(self.args.pps)],
                             stdout=subprocess.PIPE, text=True)
        # `ip netns exec` execs the command: wait4 on it gives the sender's own rusage
        _pid, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out = p.stdout.read().strip()
        return int(out.split()[1]), ru.ru_utime + ru.ru_stime

    def run(self, name, stats=False):
        soft = ksoftirqd_pids()
        popen = pids = None
        if name != "none":
            popen, pids = self.start(name, stats)
        s0 = sum(proc_cpu(p) for p in soft)
        m0 = sum(proc_cpu(p) for p in pids or ())
        sent, sender_cpu = self.blast(self.args.seconds)
        time.sleep(1.0)                 # the meter drains what it holds
        s1 = sum(proc_cpu(p) for p in soft)
        m1 = sum(proc_cpu(p) for p in pids or ())
        counted, info = (None, {}) if name == "none" else self.stop(name, popen, pids)
        per_m = 1e6 / sent if sent else 0
        return {"name": name, "sent": sent, "counted": counted, "info": info,
                "path": (sender_cpu + (s1 - s0) + (m1 - m0)) * per_m, "process": (m1 - m0) * per_m}


def live(args):
    meters = [m for m in args.meters.split(",") if m]
    for m in meters:
        if m not in ALL_METERS + OURS:
            sys.exit("unknown meter %r (%s)" % (m, ", ".join(ALL_METERS)))
    lab = Lab(args)
    res = {m: [] for m in ["none"] + meters}
    loads = []
    prog = []
    try:
        lab.setup()
        order = ["none"] + meters
        for r in range(args.rounds):
            loads.append(loadavg())
            for name in order[r % len(order):] + order[:r % len(order)]:
                res[name].append(lab.run(name))
            base = res["none"][-1]["path"]
            for name in meters:
                res[name][-1]["added"] = res[name][-1]["path"] - base
            print("round %d (load %.2f): %s" % (r + 1, loads[-1], ", ".join(
                "%s %.3f" % (n, res[n][-1]["path"]) for n in order)), flush=True)
        if "ours-ebpf" in meters:
            path = "/proc/sys/kernel/bpf_stats_enabled"
            with open(path) as f:
                old = f.read().strip()
            try:
                with open(path, "w") as f:
                    f.write("1")
                for _r in range(args.stats_rounds):
                    one = lab.run("ours-ebpf", stats=True)
                    if one["info"].get("prog_runs"):
                        prog.append(one["info"]["prog_ns"] / one["info"]["prog_runs"])
            finally:
                with open(path, "w") as f:
                    f.write(old)
        loads.append(loadavg())
    finally:
        lab.teardown()
    sent = [x["sent"] for x in res["none"]]
    print("\nlive (%s): %d rounds, %.0f s each, %d-byte UDP over %d flows, sender at %s pps (median %.0f pps sent); "
          "load average %.2f-%.2f" % (args.side, args.rounds, args.seconds, args.payload + 42, args.flows,
                                      args.pps or "max", med(sent) / args.seconds, min(loads), max(loads)))
    print("| meter | counted | traffic-path CPU-s/M added (median, min-max) | process CPU-s/M (median) | added / softflowd | added / pmacctd |")
    print("|---|---|---|---|---|---|")
    added = {m: med([x["added"] for x in res[m]]) for m in meters}
    nopath = [x["path"] for x in res["none"]]
    print("| no meter (path itself) | | %.3f (path, %s) | | | |" % (med(nopath), spread(nopath)))
    for m in meters:
        cnt = [100.0 * x["counted"] / x["sent"] for x in res[m] if x["counted"] is not None and x["sent"]]
        ratio = ["%.2f" % (added[m] / added[o]) if o in added and added[o] > 0 else "-" for o in ("softflowd", "pmacctd")]
        print("| %s | %s | %.3f (%s) | %.3f | %s | %s |" % (
            m, ("%.2f-%.2f%%" % (min(cnt), max(cnt))) if cnt else "?", added[m], spread([x["added"] for x in res[m]]),
            med([x["process"] for x in res[m]]), ratio[0], ratio[1]))
    if prog:
        print("ours-ebpf program (bpf_stats, %d separate rounds): %s ns a packet (median %.0f)" % (
            len(prog), " ".join("%.0f" % x for x in prog), med(prog)))


# ---------------------------------------------------------------------------------------- offline

def synthetic_frames(flows, payload, n):
    import struct
    out = []
    ts = time.time_ns()
    for i in range(n):
        sport = 10000 + i % flows
        body = struct.pack("!HHHH", sport, 9000, 8 + payload, 0) + b"x" * payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), i & 0xFFFF, 0, 64, 17, 0, b"\x0a\xfa\0\1", b"\x0a\xfa\0\2")
        f = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + body
        out.append((f, ts + i * 4000, len(f)))
    return out


class FakeRing(object):
    """An anonymous mmap of ready TPACKET_V3 blocks behind a real AFPacketSource."""

    def __init__(self, frames, per_block=6000, block_size=1 << 20):
        self.blocks = [pack_block(frames[i:i + per_block]) for i in range(0, len(frames), per_block)]
        if max(len(b) for b, _f in self.blocks) > block_size:
            raise ValueError("frames too big for %d per block" % per_block)
        self.src = AFPacketSource("lo", block_size=block_size, block_nr=len(self.blocks) + 1)
        self.src.ring = mmap.mmap(-1, block_size * (len(self.blocks) + 1))
        self.src._poll = select.poll()
        self.bs = block_size
        self.packets = len(frames)

    def refill(self):
        ring = self.src.ring
        for i, (buf, _first) in enumerate(self.blocks):
            ring[i * self.bs:i * self.bs + len(buf)] = buf
        nxt = len(self.blocks) * self.bs
        ring[nxt + 8:nxt + 12] = b"\0\0\0\0"     # the block after the last is the kernel's
        self.src._block = 0

    def run(self, variant):
        table = FlowTable(max_entries=100000)
        self.refill()
        t0 = time.process_time()
        if variant == "per-frame":
            n = self.src.read_packets(table.process, 0)
        else:
            n = self.src.read_blocks(table.process_block, 0)
        dt = time.process_time() - t0
        assert n == self.packets, (n, self.packets)
        got = sum(f["Metric"]["ABPackets"] for f in table.get_flows())
        assert got == self.packets, (got, self.packets)
        return dt


def offline_child(variant, n, flows, payload):
    """Build the ring, then read it `variant` ("blocks:3": 3 times with read_blocks)."""
    variant, times = variant.split(":")
    ring = FakeRing(synthetic_frames(flows, payload, n))
    for dummy in range(int(times)):
        ring.run(variant)


def callgrind(variant, n, flows, payload):
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                        os.path.abspath(__file__), "--offline-child", variant, str(n), str(flows), str(payload)],
                       capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    raise RuntimeError("callgrind: %s" % r.stderr[-500:])


def offline(args):
    n = args.offline_packets
    ring = FakeRing(synthetic_frames(args.flows, args.payload, n))
    res = {"per-frame": [], "blocks": []}
    loads = [loadavg()]
    for _r in range(args.rounds):
        for v in ("per-frame", "blocks"):
            res[v].append(ring.run(v) / (n / 1e6))
    loads.append(loadavg())
    print("\noffline: afpacket user space, %d synthetic %d-byte UDP frames over %d flows in 1 MiB blocks, %d rounds; "
          "load average %.2f-%.2f" % (n, args.payload + 42, args.flows, args.rounds, min(loads), max(loads)))
    print("| path | CPU-s per M packets (median, min-max) | instructions per packet (callgrind) |")
    print("|---|---|---|")
    ins = {}
    if args.callgrind:
        try:
            # the same process reading the ring once and three times: setup and warm-up cancel out
            m = args.callgrind_packets
            for v in ("per-frame", "blocks"):
                ins[v] = (callgrind(v + ":3", m, args.flows, args.payload) - callgrind(v + ":1", m, args.flows, args.payload)) / (2 * m)
        except (OSError, RuntimeError) as exc:
            print("(callgrind: %s)" % exc)
    for v in ("per-frame", "blocks"):
        print("| %s | %.3f (%s) | %s |" % (v, med(res[v]), spread(res[v]), "%.0f" % ins[v] if v in ins else "-"))
    print("blocks / per-frame: %.2f (CPU), %s (instructions)" % (
        med(res["blocks"]) / med(res["per-frame"]),
        "%.2f" % (ins["blocks"] / ins["per-frame"]) if len(ins) == 2 else "-"))


# ---------------------------------------------------------------------------------------- program

def program(args):
    import struct
    eth = bytes.fromhex("020000000002020000000001")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 1, 0, 64, 17, 0, b"\x0a\0\0\1", b"\x0a\0\0\2")
    udp = struct.pack("!HHHH", 10001, 9000, 26, 0) + b"x" * 18
    ipt = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 1, 0, 64, 6, 0, b"\x0a\0\0\1", b"\x0a\0\0\2")
    tcp = struct.pack("!HHIIBBHHH", 10001, 80, 1, 1, 0x50, 0x10, 1000, 0, 0) + b"x" * 6
    ip6 = struct.pack("!IHBB", 0x60000000, 26, 17, 64) + b"\xfd" + b"\0" * 14 + b"\x01" + b"\xfd" + b"\0" * 14 + b"\x02"
    frames = {"IPv4 UDP (fast path)": eth + b"\x08\x00" + ip + udp, "IPv4 TCP (fast path)": eth + b"\x08\x00" + ipt + tcp,
              "IPv6 UDP (general path)": eth + b"\x86\xdd" + ip6 + udp}
    ns = "flp%s" % secrets.token_hex(3)          # the tcx program on a quiet lo of its own
    sh("ip", "netns", "add", ns)
    src = EBPFSource("lo", netns=ns, max_flows=1000)
    a = bpfasm.Asm()
    a.mov64_imm(bpfasm.R0, 0)
    a.exit()
    empty = load_program(a.assemble(), prog_type=3)
    res = {k: [] for k in list(frames) + ["empty program (run loop)"]}
    loads = [loadavg()]
    try:
        src.open()
        tc = src.attach_mode == "tcx"
        for _r in range(args.rounds):
            for k, f in frames.items():
                res[k].append(prog_test_run(src.prog_fd, f, 200000, tc=tc)[1])
            res["empty program (run loop)"].append(prog_test_run(empty, frames["IPv4 UDP (fast path)"], 200000, tc=True)[1])
    finally:
        os.close(empty)
        src.close()
        sh("ip", "netns", "del", ns, check=False)
    loads.append(loadavg())
    print("\nprogram (%s): BPF_PROG_TEST_RUN, 200k runs x %d rounds, known entries; load average %.2f-%.2f" % (
        "tcx" if tc else "socket filter", args.rounds, min(loads), max(loads)))
    print("| frame | ns per run (median, min-max) |")
    print("|---|---|")
    for k, v in res.items():
        print("| %s | %.0f (%d-%d) |" % (k, med(v), min(v), max(v)))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child_main(sys.argv[2], sys.argv[3], sys.argv[4], "--child-stats" in sys.argv)
    if len(sys.argv) > 1 and sys.argv[1] == "--offline-child":
        return offline_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("live", "offline", "program", "attach"),
                    help="one part (default: program, offline, live; attach only when asked)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--side", choices=("ingress", "egress"), default="ingress",
                    help="the meters capture on the receiving veth end (ingress) or the sending one (egress)")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--pps", type=int, default=200000, help="sender rate cap (0 = as fast as it goes)")
    ap.add_argument("--flows", type=int, default=100)
    ap.add_argument("--payload", type=int, default=18, help="UDP payload bytes (18: 60-byte frames)")
    ap.add_argument("--meters", default=",".join(ALL_METERS))
    ap.add_argument("--stats-rounds", type=int, default=2, help="ours-ebpf rounds with bpf_stats on")
    ap.add_argument("--offline-packets", type=int, default=400000)
    ap.add_argument("--callgrind", action="store_true", default=bool(subprocess.run(
        ["sh", "-c", "command -v valgrind"], capture_output=True).stdout))
    ap.add_argument("--callgrind-packets", type=int, default=20000)
    args = ap.parse_args()
    print("flow_capture: %s, %d CPUs, kernel %s, load average %.2f" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(), os.uname().release, loadavg()))
    if args.only in (None, "program"):
        program(args)
    if args.only in (None, "offline"):
        offline(args)
    if args.only in (None, "live"):
        live(args)
    if args.only == "attach":
        args.meters = "count-socket,count-tcx,ours-ebpf,ours-ebpf-socket"
        args.stats_rounds = 0
        live(args)


if __name__ == "__main__":
    main()
