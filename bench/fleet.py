"""Fleet captures and out-of-core queries.

Part 1, capture overhead of N workers against one (a LocalCluster of worker
processes on this machine, all tracing the same kernel). The same program
(a ring buffer event per getppid of one process) and workload (W calls,
released once every worker has attached) on 1 worker [the anchor] and on
N workers. Figures: time to attach (start() returning), the traced
workload's run time (what N tracers cost the traced process), end to end
(call to merged Trace), and the merged Trace's rows.

Part 2, a query over 100 saved traces (synthetic, 10 M events in total, 10
hosts): per host, events, mean and max latency and events over 1 ms.
  (a) pandas in memory: bpfnb.load every trace, concat, group by  [the anchor]
  (b) bpfnb.fleet.load_many(engine="dask"), group by, compute
  (c) bpfnb.fleet.query (DuckDB SQL)
Each runs in its own process so its peak memory (VmHWM) is its own; "above
start" leaves out the interpreter with numpy and pandas imported.

    .venv/bin/python bench/fleet.py [--workers 3] [--calls 200000] [--traces 100] [--events 10000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROGRAM = r"""
struct ev_t { u64 ts; u32 pid; u32 cpu; };
BPF_RINGBUF_OUTPUT(events, 4096);
int on_getppid(struct tracepoint__syscalls__sys_enter_getppid *args) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != TARGET) return 0;
    struct ev_t e = {.ts = bpf_ktime_get_ns(), .pid = id >> 32, .cpu = bpf_get_smp_processor_id()};
    events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""
ATTACH = ["tracepoint:syscalls:sys_enter_getppid=on_getppid"]
QUERY_SQL = ("SELECT host, count(*) AS events, avg(lat_us) AS mean_us, max(lat_us) AS max_us, "
             "sum(CASE WHEN lat_us > 1000 THEN 1 ELSE 0 END) AS over_1ms FROM events GROUP BY host ORDER BY host")


# -- part 1 -------------------------------------------------------------------------------
def build_workload(tmp: Path) -> Path:
    out = tmp / "bpfnb_workload"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(REPO / "tests/workloads/workload.c")], check=True)
    return out


def one_capture(client, workload_bin: Path, calls: int, workers) -> dict:
    from bpfnb import fleet
    from tests.workloads.runner import Workload

    with Workload(workload_bin, n_getppid=calls) as w:
        began = time.perf_counter()
        run = fleet.start(client, PROGRAM, duration=60, workers=workers, defines={"TARGET": w.pid},
                          attach=ATTACH, event_limit=None)
        attached = time.perf_counter()
        w.release()
        w.wait()
        ran = time.perf_counter()
        run.stop()
        trace = run.result()
        done = time.perf_counter()
    counts = trace.events().groupby("host").size()
    assert (counts == calls).all() and len(counts) == len(run.futures), counts
    assert trace.total_lost == 0
    return {"attach": attached - began, "workload": ran - attached, "end_to_end": done - began,
            "rows": len(trace.events()), "hosts": len(counts)}


def part1(n_workers: int, calls: int, repeats: int = 3) -> list[tuple[str, dict]]:
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp, \
            LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1, host="127.0.0.1",
                         dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(n_workers, timeout=60)
        workload_bin = build_workload(Path(tmp))
        one_capture(client, workload_bin, 1000, None)  # warm up every worker (imports, bcc)
        rows = []
        for label, workers in (("1 worker", [0]), (f"{n_workers} workers", None)):
            runs = [one_capture(client, workload_bin, calls, workers) for _ in range(repeats)]
            rows.append((label, {k: min(r[k] for r in runs) if k not in ("rows", "hosts") else runs[0][k]
                                 for k in runs[0]}))
        return rows


# -- part 2 -------------------------------------------------------------------------------
def write_traces(folder: Path, n_traces: int, n_events: int) -> pd.DataFrame:
    from bpfnb.trace import Trace

    per = n_events // n_traces
    rng = np.random.default_rng(1)
    for i in range(n_traces):
        host = f"host-{i % 10:02d}"
        frame = pd.DataFrame({
            "ts": np.sort(rng.integers(0, 3_600_000_000_000, per)).astype(np.uint64),
            "pid": rng.integers(1, 30_000, per).astype(np.uint32),
            "lat_us": rng.lognormal(4.0, 1.2, per),
            "comm": pd.Series(rng.choice(["nginx", "java", "postgres", "sshd"], per), dtype=object),
        })
        Trace({"events": {"events": frame}}, lost={"events": 0},
              meta={"host": host, "kernel": "6.18"}).save(folder / f"{host}-{i:03d}")


def query_pandas(folder: Path) -> pd.DataFrame:
    import bpfnb

    frames = []
    for path in sorted(folder.glob("*.bpfnb")):
        t = bpfnb.load(path)
        frames.append(t.events().assign(host=t.meta["host"]))
    df = pd.concat(frames, ignore_index=True)
    g = df.groupby("host")
    return pd.DataFrame({"events": g.size(), "mean_us": g["lat_us"].mean(), "max_us": g["lat_us"].max(),
                         "over_1ms": g["lat_us"].apply(lambda s: int((s > 1000).sum()))}).reset_index()


def query_dask(folder: Path) -> pd.DataFrame:
    from bpfnb import fleet

    ddf = fleet.load_many(folder)
    ddf = ddf.assign(over=(ddf["lat_us"] > 1000).astype("int64"))
    g = ddf.groupby("host")
    out = g.agg({"ts": "count", "lat_us": ["mean", "max"], "over": "sum"}).compute()
    out.columns = ["events", "mean_us", "max_us", "over_1ms"]
    return out.reset_index().sort_values("host").reset_index(drop=True)


def query_duckdb(folder: Path) -> pd.DataFrame:
    from bpfnb import fleet

    return fleet.query(folder, QUERY_SQL)


PATHS = {"pandas": query_pandas, "dask": query_dask, "duckdb": query_duckdb}


def memory_kb(field: str) -> int:
    """VmHWM (peak) or VmRSS of this process. Not ru_maxrss: Linux carries that over exec
    from the parent, so a child would report the bench's own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(path: str, folder: Path) -> None:
    """One query path in this process: prints JSON seconds, peak RSS and the result."""
    base = memory_kb("VmRSS")
    start = time.perf_counter()
    result = PATHS[path](folder)
    seconds = time.perf_counter() - start
    peak = memory_kb("VmHWM")
    result = result.astype({"host": object}).sort_values("host").reset_index(drop=True)
    print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "base_mb": base / 1024,
                      "result": result.to_dict(orient="list")}))


def run_child(path: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", path, "--dir", str(folder)],
                         check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def part2(n_traces: int, n_events: int):
    tmp = Path(tempfile.mkdtemp(prefix="bpfnb-bench-fleet-"))
    try:
        began = time.perf_counter()
        write_traces(tmp, n_traces, n_events)
        written = time.perf_counter() - began
        size_mb = sum(f.stat().st_size for f in tmp.rglob("*")) / 2**20
        results = {path: run_child(path, tmp) for path in PATHS}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref = pd.DataFrame(results["pandas"]["result"])
    for path in ("dask", "duckdb"):
        got = pd.DataFrame(results[path]["result"])
        assert got["host"].tolist() == ref["host"].tolist()
        assert got["events"].astype(int).tolist() == ref["events"].astype(int).tolist()
        assert got["over_1ms"].astype(int).tolist() == ref["over_1ms"].astype(int).tolist()
        assert np.allclose(got["max_us"], ref["max_us"], rtol=0) and np.allclose(got["mean_us"], ref["mean_us"])
    return written, size_mb, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--traces", type=int, default=100)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--child", choices=list(PATHS))
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir)
        return 0
    capture_rows = part1(args.workers, args.calls)
    written, size_mb, results = part2(args.traces, args.events)

    print(f"\nPart 1: capture on a LocalCluster ({args.workers} worker processes, {__import__('os').cpu_count()} CPUs), "
          f"{args.calls:,} getppid events per host, best of 3")
    print(f"{'':<12}{'attach s':>10}{'workload s':>12}{'end-to-end s':>14}{'rows':>12}"
          f"{'attach x':>10}{'workload x':>12}{'e2e x':>8}")
    anchor = capture_rows[0][1]
    for label, r in capture_rows:
        print(f"{label:<12}{r['attach']:>10.3f}{r['workload']:>12.3f}{r['end_to_end']:>14.3f}{r['rows']:>12,}"
              f"{r['attach'] / anchor['attach']:>9.2f}x{r['workload'] / anchor['workload']:>11.2f}x"
              f"{r['end_to_end'] / anchor['end_to_end']:>7.2f}x")
    print(f"\nPart 2: {args.traces} saved traces, {args.events:,} events, {size_mb:.0f} MB on disk "
          f"(written in {written:.1f} s); per-host count, mean, max, > 1 ms")
    print(f"{'path':<34}{'seconds':>9}{'peak RSS MB':>13}{'(above start)':>15}{'speed vs (a)':>14}"
          f"{'memory vs (a)':>15}")
    ref = results["pandas"]
    for label, key in (("(a) pandas in memory (bpfnb.load)", "pandas"), ("(b) load_many, Dask", "dask"),
                       ("(c) query, DuckDB", "duckdb")):
        r = results[key]
        print(f"{label:<34}{r['seconds']:>9.2f}{r['peak_mb']:>13.0f}{r['peak_mb'] - r['base_mb']:>15.0f}"
              f"{ref['seconds'] / r['seconds']:>13.1f}x{r['peak_mb'] / ref['peak_mb']:>14.2f}x")
    print("answers: identical across (a), (b), (c)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
