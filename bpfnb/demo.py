"""The demo case study: run-queue latency and read latency under load.

    python -m bpfnb.demo --out out/demo        (what `make demo` runs)

It starts its own workload (CPU hogs that oversubscribe the CPUs, and
readers issuing reads of three sizes), traces it for real with one BPF
program on tracepoints only (sched_wakeup, sched_wakeup_new, sched_switch,
sys_enter_read, sys_exit_read), and writes a report folder:

    report.html        the case study with its pictures and tables
    trace.bpfnb/       the saved Trace (bpfnb.load it anywhere, no root needed)
    runqlat.txt        the run-queue latency histogram as bcc prints it
    runqlat.png        the same histogram, modes marked
    read_heatmap.svg   read latency over time: one column per 100 ms
    read_latency.csv   per-comm read latency percentiles
"""

from __future__ import annotations

import argparse
import html
import os
import subprocess
import sys
from pathlib import Path

PROGRAM = r"""
struct read_t { u64 ts; u64 lat_ns; s64 bytes; u32 pid; char comm[16]; };
struct size_key { char comm[16]; u64 slot; };
BPF_HASH(wakeup_ts, u32, u64);
BPF_HASH(read_start, u32, u64);
BPF_HISTOGRAM(runqlat);
BPF_HISTOGRAM(read_sizes, struct size_key);
BPF_PERF_OUTPUT(reads);

static int enqueued(u32 pid) {
    if (pid == 0) return 0;
    u64 now = bpf_ktime_get_ns();
    wakeup_ts.update(&pid, &now);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup) { return enqueued(args->pid); }
TRACEPOINT_PROBE(sched, sched_wakeup_new) { return enqueued(args->pid); }

TRACEPOINT_PROBE(sched, sched_switch) {
    if (args->prev_state == 0)      /* preempted while runnable: back on the run queue */
        enqueued(args->prev_pid);
    u32 next = args->next_pid;
    u64 *start = wakeup_ts.lookup(&next);
    if (start == 0) return 0;
    u64 delta_us = (bpf_ktime_get_ns() - *start) / 1000;
    runqlat.increment(bpf_log2l(delta_us));
    wakeup_ts.delete(&next);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    u32 tid = bpf_get_current_pid_tgid();
    if ((bpf_get_current_pid_tgid() >> 32) != READER_PID) return 0;
    u64 now = bpf_ktime_get_ns();
    read_start.update(&tid, &now);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_read) {
    u32 tid = bpf_get_current_pid_tgid();
    u64 *start = read_start.lookup(&tid);
    if (start == 0) return 0;
    struct read_t r = {};
    r.ts = bpf_ktime_get_ns();
    r.lat_ns = r.ts - *start;
    r.bytes = args->ret;
    r.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&r.comm, sizeof(r.comm));
    reads.perf_submit(args, &r, sizeof(r));
    struct size_key key = {.slot = bpf_log2l(r.bytes > 0 ? r.bytes : 0)};
    __builtin_memcpy(&key.comm, r.comm, sizeof(key.comm));
    read_sizes.increment(key);
    read_start.delete(&tid);
    return 0;
}
"""

# The reader: three read sizes from three sources, so latency has modes.
READER = r"""
import os, sys, time
end = time.monotonic() + float(sys.argv[1])
zero = os.open("/dev/zero", os.O_RDONLY)
urandom = os.open("/dev/urandom", os.O_RDONLY)
r, w = os.pipe()
os.write(w, b"x" * 4096)
while time.monotonic() < end:
    for _ in range(200):
        os.read(zero, 512)
    for _ in range(20):
        os.read(urandom, 65536)
    os.read(r, 4096); os.write(w, b"x" * 4096)
    time.sleep(0.001)
"""


def start_workload(seconds: float) -> tuple[subprocess.Popen, list[subprocess.Popen]]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range((os.cpu_count() or 2) + 1)]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(seconds + 2)])
    return reader, hogs


def capture_case_study(duration: float):
    import bpfnb

    reader, hogs = start_workload(duration)
    try:
        return bpfnb.capture(PROGRAM, duration=duration, defines={"READER_PID": reader.pid})
    finally:
        for proc in [reader, *hogs]:
            proc.kill()
            proc.wait()


def write_report(trace, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import bpfnb
    from bpfnb.frames.hist import percentiles

    out.mkdir(parents=True, exist_ok=True)
    trace.save(out / "trace.bpfnb")
    runq = trace.hist("runqlat")
    runq_text = bpfnb.format_hist(runq, label="usecs")
    (out / "runqlat.txt").write_text(runq_text + "\n")
    ax = bpfnb.plot.hist(runq, title="Run-queue latency (µs), CPUs oversubscribed")
    ax.figure.savefig(out / "runqlat.png", dpi=110, bbox_inches="tight")
    plt.close(ax.figure)

    reads = trace.events("reads").copy()
    reads["lat_us"] = reads["lat_ns"] / 1000.0
    heat = bpfnb.heatmap(reads, time="ts", value="lat_us", step=0.1, scale="log",
                         title="read() latency over time (µs)")
    heat.save(out / "read_heatmap.svg")
    table = (reads.assign(size=reads["bytes"])
             .groupby("size")["lat_us"].describe(percentiles=[0.5, 0.9, 0.99])
             .round(2))
    table.to_csv(out / "read_latency.csv")
    runq_pct = percentiles(runq, [50, 90, 99])

    esc = html.escape
    meta = trace.meta
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>bpfnb demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>
<h1>Run-queue and read latency under CPU contention</h1>
<p>Traced for real on <b>{esc(str(meta.get('host')))}</b> (Linux {esc(str(meta.get('kernel')))}, bcc {esc(str(meta.get('bcc_version')))})
for {meta['end_wall'] - meta['start_wall']:.1f} s with tracepoints only: {esc(', '.join(meta.get('probes', [])))}.
The workload: {(os.cpu_count() or 2) + 1} CPU hogs on {os.cpu_count()} CPUs, and a reader issuing
512-byte reads of /dev/zero, 64 KiB reads of /dev/urandom and 4 KiB pipe reads.</p>
<h2>Run-queue latency (runqlat)</h2>
<p>Time from wakeup (or preemption) to running, in microseconds, as an in-kernel log2 histogram.
Lost events: {sum(trace.lost.values())}.</p>
<img src="runqlat.png" alt="run-queue latency histogram">
<pre>{esc(runq_text)}</pre>
{runq_pct.to_html()}
<h2>read() latency heat map</h2>
<p>{len(reads):,} reads, one column per 100 ms, log latency rows; the three read sizes show as bands.</p>
<img src="read_heatmap.svg" alt="read latency heat map" style="max-width:100%">
<h2>read() latency by size (µs)</h2>
{table.to_html()}
<h2>Program</h2><pre>{esc(meta.get('source', ''))}</pre>
<p>The saved trace (<code>trace.bpfnb/</code>) reloads without root or bcc: <code>bpfnb.load("trace.bpfnb")</code>.</p>
</body></html>"""
    report = out / "report.html"
    report.write_text(page)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bpfnb.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/demo", help="report folder (default out/demo)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to trace (default 5)")
    args = parser.parse_args(argv)
    from .display import trace_text
    from .errors import BpfnbError

    print(f"bpfnb demo: tracing run-queue and read latency for {args.duration:g} s ...", flush=True)
    try:
        trace = capture_case_study(args.duration)
    except BpfnbError as exc:
        print(f"bpfnb demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(trace_text(trace))
    report = write_report(trace, Path(args.out))
    print(f"bpfnb demo: wrote {report} (and trace.bpfnb, runqlat.png, read_heatmap.svg, ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
