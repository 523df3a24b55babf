"""Live capture benchmark: C sendmmsg sender -> veth -> AF_PACKET TPACKET_V3 ring -> flow table.

    sudo .venv/bin/python benchmarks/flow_capture.py [--seconds 10] [--flows 100] [--payload 18]

Builds benchmarks/tools/sendmmsg.c with gcc, creates two namespaces joined by
a veth pair (unique names, removed at the end), captures on the receiving
veth with a CaptureRunner (capture thread in this process) while the sender
blasts UDP for --seconds, and prints: offered pps, packets counted in flows,
kernel drops (PACKET_STATISTICS) and the capture thread's CPU use.

With --meters, four meters run side by side on the same interface in the same
run: ours-afpacket (this capture), ours-ebpf (flow/ebpf.py: in-kernel
aggregation, a capture thread that only reads the map), and two C flow meters
(Debian `pmacctd` with the memory plugin, and `softflowd`): packets each one
counted and its CPU seconds per million sent packets (capture thread CPU for
ours, utime+stime of their processes from /proc for the C meters), and the
ratios to pmacctd and softflowd.  The kernel side of ours-ebpf is reported two
ways: the program's own run time (bpf_prog_info run_time_ns, with the
kernel.bpf_stats_enabled sysctl on during the run, restored after), and the
extra system-wide kernel CPU (system + irq + softirq jiffies from /proc/stat)
per million packets of a short ebpf-only run against a short run without any
meter (both on this shared VM: noisy).
"""

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skydive_runtime.flow.afpacket import AFPacketSource  # noqa: E402
from skydive_runtime.flow.capture import CaptureRunner, ProcessCaptureRunner  # noqa: E402
from skydive_runtime.flow.ebpf import EBPFFlowTable, EBPFSource, prog_run_stats  # noqa: E402
from skydive_runtime.flow.table import FlowTable  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def proc_cpu(pid):
    """utime+stime of pid and its threads, in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


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


def start_meters(ns, dev, tmp):
    sf = subprocess.Popen(["ip", "netns", "exec", ns, "softflowd", "-i", dev, "-d", "-c", tmp + "/sf.sock",
                           "-p", tmp + "/sf.pid", "-m", "65536", "-n", "127.0.0.1:9"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pm = subprocess.Popen(["ip", "netns", "exec", ns, "pmacctd", "-i", dev, "-P", "memory",
                           "-c", "src_host,dst_host,src_port,dst_port,proto", "-p", tmp + "/pm.pipe"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    return [{"name": "softflowd", "popen": sf, "ns": ns, "tmp": tmp,
             "cpu0": sum(proc_cpu(p) for p in ns_pids(ns, "softflowd"))},
            {"name": "pmacctd", "popen": pm, "ns": ns, "tmp": tmp,
             "cpu0": sum(proc_cpu(p) for p in ns_pids(ns, "pmacctd"))}]


def report_meter(m, sent):
    time.sleep(1.0)
    pids = ns_pids(m["ns"], m["name"])
    cpu = sum(proc_cpu(p) for p in pids) - m["cpu0"]
    counted = None
    if m["name"] == "softflowd":
        out = sh("softflowctl", "-c", m["tmp"] + "/sf.sock", "statistics", check=False).stdout
        for line in out.splitlines():
            if line.startswith("Packets processed:"):
                counted = int(line.split(":")[1])
    else:
        out = sh("ip", "netns", "exec", m["ns"], "pmacct", "-p", m["tmp"] + "/pm.pipe", "-s", check=False).stdout
        counted = 0
        for line in out.splitlines():
            cols = line.split()
            if len(cols) == 7 and cols[3] == "9000" and cols[4] == "udp":
                counted += int(cols[5])
    for p in pids:
        try:
            os.kill(p, 15)
        except OSError:
            pass
    m["popen"].wait(5)
    print("%-13s counted %s packets (%.2f%% of sent); %.2f CPU-s = %.3f CPU-s per million packets" % (
        m["name"], counted, 100.0 * (counted or 0) / sent if sent else 0, cpu, cpu / (sent / 1e6) if sent else 0))
    return cpu / (sent / 1e6) if sent else 0


def kernel_jiffies():
    """system + irq + softirq jiffies of all CPUs (/proc/stat)."""
    with open("/proc/stat") as f:
        cols = f.readline().split()
    return int(cols[3]) + int(cols[6]) + int(cols[7])


def udp_counted(final):
    udp = [f for f in final.values() if f.get("Transport", {}).get("B") == 9000]
    return udp, sum(f["Metric"]["ABPackets"] for f in udp)


def blast(args, sender, ns_a, seconds, pps=None):
    out = sh("ip", "netns", "exec", ns_a, sender, "10.250.0.2", "9000", str(seconds),
             str(args.payload), str(args.flows), str(args.pps if pps is None else pps)).stdout.strip()
    return out, int(out.split()[1])


def overhead_run(args, sender, ns_a, ns_b, dev_b, with_ebpf):
    """A short run with no meter, or with ours-ebpf only: (sent, kernel CPU-s, ebpf counted)."""
    runner = None
    final = {}
    if with_ebpf:
        src = EBPFSource(dev_b, netns=ns_b, max_flows=100000)
        runner = CaptureRunner(src, EBPFFlowTable(src, FlowTable(max_entries=100000)),
                               on_flows=lambda fl: final.update((f["UUID"], f) for f in fl), update_ms=1000)
        runner.start()
    j0 = kernel_jiffies()
    out, sent = blast(args, sender, ns_a, args.overhead_seconds, args.overhead_pps)
    j1 = kernel_jiffies()
    counted = None
    if runner is not None:
        runner.stop()
        counted = udp_counted(final)[1]
    return sent, (j1 - j0) / os.sysconf("SC_CLK_TCK"), counted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--flows", type=int, default=100)
    ap.add_argument("--payload", type=int, default=18)
    ap.add_argument("--pps", type=int, default=0, help="cap the sender rate (0 = as fast as possible)")
    ap.add_argument("--header-size", type=int, default=256)
    ap.add_argument("--bpf", default="")
    ap.add_argument("--blocks", type=int, default=64, help="ring blocks of 1 MiB")
    ap.add_argument("--meters", action="store_true",
                    help="also run ours-ebpf, pmacctd and softflowd side by side (and the kernel overhead runs)")
    ap.add_argument("--overhead-seconds", type=float, default=3,
                    help="length of each kernel overhead run (no meter / ebpf only, alternated) with --meters")
    ap.add_argument("--overhead-runs", type=int, default=2, help="pairs of overhead runs")
    ap.add_argument("--overhead-pps", type=int, default=150000,
                    help="sender rate of the overhead runs (the same for both kinds)")
    ap.add_argument("--process", action="store_true", help="ProcessCaptureRunner (capture in a child process)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="flbench")
    sender = os.path.join(tmp, "sendmmsg")
    sh("gcc", "-O2", "-o", sender, os.path.join(HERE, "tools", "sendmmsg.c"))
    tag = secrets.token_hex(3)
    ns_a, ns_b, dev_a, dev_b = "fl%sa" % tag, "fl%sb" % tag, "fl%sx" % tag, "fl%sy" % tag
    created = []
    stats_path = "/proc/sys/kernel/bpf_stats_enabled"
    stats_old = None
    try:
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "add", ns)
            created.append(ns)
        sh("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        sh("ip", "-n", ns_a, "addr", "add", "10.250.0.1/24", "dev", dev_a)
        sh("ip", "-n", ns_b, "addr", "add", "10.250.0.2/24", "dev", dev_b)
        sh("ip", "-n", ns_a, "link", "set", dev_a, "up")
        sh("ip", "-n", ns_b, "link", "set", dev_b, "up")
        sh("ip", "-n", ns_b, "link", "set", "lo", "up")
        # A sink socket that never reads: no ICMP port-unreachable traffic back.
        sink = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, "-c",
                                 "import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                                 "s.bind(('0.0.0.0',9000));time.sleep(3600)"])
        time.sleep(0.3)
        # warm-up ARP so that the capture sees only the blast
        sh("ip", "netns", "exec", ns_a, "ping", "-c", "1", "-W", "1", "10.250.0.2", check=False)

        overhead = {}
        if args.meters:
            # kernel overhead runs first (no meter at all, then ebpf only), same traffic
            for _ in range(args.overhead_runs):
                for kind in ("none", "ebpf"):
                    overhead.setdefault(kind, []).append(
                        overhead_run(args, sender, ns_a, ns_b, dev_b, kind == "ebpf"))
        meters = []
        if args.meters:
            meters = start_meters(ns_b, dev_b, tmp)

        final = {}

        def on_flows(flows):
            for f in flows:
                final[f["UUID"]] = f
        table = FlowTable(max_entries=100000)
        src = AFPacketSource(dev_b, netns=ns_b, bpf_filter=args.bpf or None, header_size=args.header_size,
                             block_nr=args.blocks)
        cls = ProcessCaptureRunner if args.process else CaptureRunner
        runner = cls(src, table, on_flows=on_flows, update_ms=1000)
        eb_runner = None
        eb_final = {}
        if args.meters:
            try:
                with open(stats_path) as f:
                    stats_old = f.read().strip()
                with open(stats_path, "w") as f:
                    f.write("1")
            except OSError:
                stats_old = None
            eb_src = EBPFSource(dev_b, netns=ns_b, max_flows=100000)
            eb_runner = CaptureRunner(eb_src, EBPFFlowTable(eb_src, FlowTable(max_entries=100000)),
                                      on_flows=lambda fl: eb_final.update((f["UUID"], f) for f in fl),
                                      update_ms=1000)
            eb_runner.start()
        runner.start()
        t0 = time.time()
        out, sent = blast(args, sender, ns_a, args.seconds)
        time.sleep(1.0)
        eb_prog = None
        if eb_runner is not None:
            eb_prog = prog_run_stats(eb_src.prog_fd)
            eb_runner.stop()
        runner.stop()
        wall = time.time() - t0
        udp, counted = udp_counted(final)
        st = runner.stats()
        cpu = runner.cpu_seconds
        print("sender: %s" % out)
        print("flows: %d UDP flows, %d packets counted (%.4f%% of sent)" % (
            len(udp), counted, 100.0 * counted / sent if sent else 0))
        print("kernel: PacketsReceived=%d PacketsDropped=%d PacketsIfDropped=%d" % (
            st["PacketsReceived"], st["PacketsDropped"], st["PacketsIfDropped"]))
        print("capture thread CPU: %.2f s over %.1f s wall = %.1f%% of one core; %.2f CPU-s per million packets" % (
            cpu, wall, 100 * cpu / wall, cpu / (st["PacketsReceived"] / 1e6) if st["PacketsReceived"] else 0))
        per_m = {}
        print("%-13s counted %d packets (%.2f%% of sent); %.2f CPU-s = %.3f CPU-s per million packets" % (
            "ours-afpacket", counted, 100.0 * counted / sent if sent else 0, cpu, cpu / (sent / 1e6) if sent else 0))
        per_m["ours-afpacket"] = cpu / (sent / 1e6) if sent else 0
        if eb_runner is not None:
            eb_udp, eb_counted = udp_counted(eb_final)
            eb_cpu = eb_runner.cpu_seconds
            eb_st = eb_runner.stats()
            per_m["ours-ebpf"] = eb_cpu / (sent / 1e6) if sent else 0
            print("%-13s counted %d packets (%.2f%% of sent), %d UDP flows, map-full drops %d; capture thread "
                  "(user space: map reads + flow records) %.3f CPU-s = %.4f CPU-s per million packets" % (
                      "ours-ebpf", eb_counted, 100.0 * eb_counted / sent if sent else 0, len(eb_udp),
                      eb_st["PacketsDropped"], eb_cpu, per_m["ours-ebpf"]))
            if eb_prog is not None and eb_prog[1]:
                run_ns, run_cnt = eb_prog
                per_m["ours-ebpf kernel (program)"] = run_ns / 1e9 / (run_cnt / 1e6)
                print("%-13s in-kernel program time (bpf_stats, this run): %d runs, %.3f s = %.3f CPU-s per million "
                      "packets (%.0f ns/packet)" % ("", run_cnt, run_ns / 1e9, per_m["ours-ebpf kernel (program)"],
                                                     run_ns / run_cnt))
            if overhead:
                s0 = sum(r[0] for r in overhead["none"])
                k0 = sum(r[1] for r in overhead["none"])
                s1 = sum(r[0] for r in overhead["ebpf"])
                k1 = sum(r[1] for r in overhead["ebpf"])
                c1 = sum(r[2] for r in overhead["ebpf"])
                base = k0 / (s0 / 1e6) if s0 else 0
                with_eb = k1 / (s1 / 1e6) if s1 else 0
                extra = with_eb - base
                noise = max(r for r in [r[1] / (r[0] / 1e6) for r in overhead["none"] if r[0]]) - \
                    min(r for r in [r[1] / (r[0] / 1e6) for r in overhead["none"] if r[0]])
                below = abs(extra) <= noise
                if not below:
                    per_m["ours-ebpf kernel (system-wide delta)"] = extra
                print("%-13s system-wide kernel CPU (sys+irq+softirq jiffies, /proc/stat, all CPUs, shared VM, "
                      "sender included), %d x %.0f s runs each at %d pps: no meter %.2f CPU-s / %d pkts = %.3f per M "
                      "(runs: %s); ebpf only %.2f CPU-s / %d pkts = %.3f per M (runs: %s; counted %d = %.2f%%); "
                      "extra %.3f CPU-s per million packets%s" % (
                          "", args.overhead_runs, args.overhead_seconds, args.overhead_pps, k0, s0, base,
                          " ".join("%.3f" % (r[1] / (r[0] / 1e6)) for r in overhead["none"]), k1, s1, with_eb,
                          " ".join("%.3f" % (r[1] / (r[0] / 1e6)) for r in overhead["ebpf"]), c1,
                          100.0 * c1 / s1 if s1 else 0, extra,
                          " -- BELOW THE NOISE (the no-meter runs alone differ by %.3f): not used" % noise
                          if below else ""))
        results = {}
        for m in meters:
            results[m["name"]] = report_meter(m, sent)
        if results:
            for name, v in sorted(per_m.items()):
                ratios = ", ".join("%.3f x %s" % (v / results[r], r) for r in ("pmacctd", "softflowd")
                                   if results.get(r))
                print("ratio %-37s %.4f CPU-s/M: %s" % (name, v, ratios))
            if "ours-ebpf" in per_m:
                # user space + the kernel figure: the system-wide delta when it is above the noise,
                # else the program's own time (which leaves out the AF_PACKET tap call before it)
                kern = per_m.get("ours-ebpf kernel (system-wide delta)", per_m.get("ours-ebpf kernel (program)", 0))
                tot = per_m["ours-ebpf"] + max(kern, 0)
                ratios = ", ".join("%.3f x %s" % (tot / results[r], r) for r in ("pmacctd", "softflowd")
                                   if results.get(r))
                print("ratio %-37s %.4f CPU-s/M: %s" % ("ours-ebpf user + kernel", tot, ratios))
        sink.kill()
        sink.wait()
    finally:
        if stats_old is not None:
            try:
                with open(stats_path, "w") as f:
                    f.write(stats_old)
            except OSError:
                pass
        for ns in created:
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for p in pids:
                try:
                    os.kill(int(p), 9)
                except OSError:
                    pass
            sh("ip", "netns", "del", ns, check=False)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
