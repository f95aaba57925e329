"""CPU-speed and steal-time probe, run beside the GPU runs (gpu_run6).

Every second: a fixed pure-Python loop (about 20 ms of work, on one pinned CPU) gives the
CPU's single-thread speed, and /proc/stat deltas give the whole VM's user/system/idle/steal
shares. One JSON line per second.  python3 cpu_probe.py OUTFILE CPU
"""

import json
import os
import sys
import time

out, cpu = sys.argv[1], int(sys.argv[2])
os.sched_setaffinity(0, {cpu})


def stat() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


with open(out, "w") as f:
    info = {"nproc": os.cpu_count(), "probe_cpu": cpu}
    with open("/proc/cpuinfo") as c:
        info["model"] = next((ln.split(":", 1)[1].strip() for ln in c if "model name" in ln), None)
    f.write(json.dumps(info) + "\n")
    prev = stat()
    while True:
        best = float("inf")
        for _ in range(8):
            t0 = time.perf_counter()
            for _ in range(40000):
                pass
            best = min(best, time.perf_counter() - t0)
        now = stat()
        d = [b - a for a, b in zip(prev, now, strict=True)]
        prev = now
        tot = sum(d) or 1
        user, nice, system, idle, iowait, irq, softirq, steal = d
        with open("/proc/loadavg") as la:
            load = float(la.read().split()[0])
        row = {
            "t": round(time.time(), 2),
            "loop_ns_per_iter": round(best / 40000 * 1e9, 3),
            "user": round((user + nice) / tot, 4),
            "sys": round((system + irq + softirq) / tot, 4),
            "idle": round((idle + iowait) / tot, 4),
            "steal": round(steal / tot, 4),
            "load1": load,
        }
        f.write(json.dumps(row) + "\n")
        f.flush()
        time.sleep(1.0)
