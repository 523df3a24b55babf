"""Live capture benchmark: C sendmmsg sender -> veth -> AF_PACKET TPACKET_V3 ring -> flow table.

    sudo .venv/bin/python benchmarks/flow_capture.py [--seconds 10] [--flows 100] [--payload 18]

Builds benchmarks/tools/sendmmsg.c with gcc, creates two namespaces joined by
a veth pair (unique names, removed at the end), captures on the receiving
veth with a CaptureRunner (capture thread in this process) while the sender
blasts UDP for --seconds, and prints: offered pps, packets counted in flows,
kernel drops (PACKET_STATISTICS) and the capture thread's CPU use.

With --meters, two C flow meters run side by side on the same interface in the
same run (Debian `pmacctd` with the memory plugin, and `softflowd`): packets
each one counted and its CPU seconds per million offered packets (utime+stime
of its processes from /proc).
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
    print("%-9s counted %s packets (%.2f%% of sent); %.2f CPU-s = %.2f CPU-s per million packets" % (
        m["name"], counted, 100.0 * (counted or 0) / sent if sent else 0, cpu, cpu / (sent / 1e6) if sent else 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--flows", type=int, default=100)
    ap.add_argument("--payload", type=int, default=18)
    ap.add_argument("--pps", type=int, default=0, help="cap the sender rate (0 = as fast as possible)")
    ap.add_argument("--header-size", type=int, default=256)
    ap.add_argument("--bpf", default="")
    ap.add_argument("--blocks", type=int, default=64, help="ring blocks of 1 MiB")
    ap.add_argument("--meters", action="store_true", help="also run pmacctd and softflowd side by side")
    ap.add_argument("--process", action="store_true", help="ProcessCaptureRunner (capture in a child process)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="flbench")
    sender = os.path.join(tmp, "sendmmsg")
    sh("gcc", "-O2", "-o", sender, os.path.join(HERE, "tools", "sendmmsg.c"))
    tag = secrets.token_hex(3)
    ns_a, ns_b, dev_a, dev_b = "fl%sa" % tag, "fl%sb" % tag, "fl%sx" % tag, "fl%sy" % tag
    created = []
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
        meters = []
        if args.meters:
            meters = start_meters(ns_b, dev_b, tmp)
        # A sink socket that never reads: no ICMP port-unreachable traffic back.
        sink = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, "-c",
                                 "import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                                 "s.bind(('0.0.0.0',9000));time.sleep(3600)"])
        time.sleep(0.3)
        # warm-up ARP so that the capture sees only the blast
        sh("ip", "netns", "exec", ns_a, "ping", "-c", "1", "-W", "1", "10.250.0.2", check=False)

        final = {}

        def on_flows(flows):
            for f in flows:
                final[f["UUID"]] = f
        table = FlowTable(max_entries=100000)
        src = AFPacketSource(dev_b, netns=ns_b, bpf_filter=args.bpf or None, header_size=args.header_size,
                             block_nr=args.blocks)
        cls = ProcessCaptureRunner if args.process else CaptureRunner
        runner = cls(src, table, on_flows=on_flows, update_ms=1000)
        runner.start()
        t0 = time.time()
        out = sh("ip", "netns", "exec", ns_a, sender, "10.250.0.2", "9000", str(args.seconds),
                 str(args.payload), str(args.flows), str(args.pps)).stdout.strip()
        time.sleep(1.0)
        runner.stop()
        wall = time.time() - t0
        sent = int(out.split()[1])
        udp = [f for f in final.values() if f.get("Transport", {}).get("B") == 9000]
        counted = sum(f["Metric"]["ABPackets"] for f in udp)
        st = runner.stats()
        cpu = runner.cpu_seconds
        print("sender: %s" % out)
        print("flows: %d UDP flows, %d packets counted (%.4f%% of sent)" % (
            len(udp), counted, 100.0 * counted / sent if sent else 0))
        print("kernel: PacketsReceived=%d PacketsDropped=%d PacketsIfDropped=%d" % (
            st["PacketsReceived"], st["PacketsDropped"], st["PacketsIfDropped"]))
        print("capture thread CPU: %.2f s over %.1f s wall = %.1f%% of one core; %.2f CPU-s per million packets" % (
            cpu, wall, 100 * cpu / wall, cpu / (st["PacketsReceived"] / 1e6) if st["PacketsReceived"] else 0))
        print("python (this capture): counted %d packets (%.2f%% of sent); %.2f CPU-s per million sent packets" % (
            counted, 100.0 * counted / sent if sent else 0, cpu / (sent / 1e6) if sent else 0))
        for m in meters:
            report_meter(m, sent)
        sink.kill()
        sink.wait()
    finally:
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
