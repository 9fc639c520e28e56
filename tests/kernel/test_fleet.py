"""Fleet captures on a LocalCluster of worker processes on this machine.

Every worker traces the same kernel, so every host must see the same
controlled workload, exactly. The workload is released from `on_start`,
which runs once every worker has attached (the fleet's start barrier).
"""

from __future__ import annotations

import time

import subprocess

import numpy as np
import pytest

import bpfnb
from tests.workloads.runner import Workload

pytestmark = pytest.mark.kernel
distributed = pytest.importorskip("distributed", reason="the fleet extra: pip install bpfnb[fleet]")
fleet = pytest.importorskip("bpfnb.fleet")

N_WORKERS = 3
PROGRAM = r"""
struct ev_t { u64 ts; u32 pid; u32 size; char comm[16]; };
BPF_PERF_OUTPUT(events);
BPF_HASH(calls, u32, u64);
BPF_HISTOGRAM(sizes);

int on_getppid(struct tracepoint__syscalls__sys_enter_getppid *args) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != TARGET) return 0;
    struct ev_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.pid = id >> 32;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    events.perf_submit(args, &e, sizeof(e));
    u32 key = e.pid;
    calls.increment(key);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
    sizes.increment(bpf_log2l(args->count));
    return 0;
}
"""
ATTACH = ["tracepoint:syscalls:sys_enter_getppid=on_getppid"]
# the spill tests move 100,000s of events: a ring buffer (read in bulk) of 16 MB holds the burst
SPILL_PROGRAM = r"""
struct ev_t { u64 ts; u32 pid; u32 size; char comm[16]; };
BPF_RINGBUF_OUTPUT(events, 4096);
int on_getppid(struct tracepoint__syscalls__sys_enter_getppid *args) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != TARGET) return 0;
    struct ev_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.pid = id >> 32;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    events.ringbuf_output(&e, sizeof(e), 0);
    return 0;
}
"""
MISSING = ["tracepoint:syscalls:sys_enter_no_such_call=on_getppid"]


@pytest.fixture(scope="module")
def client(kernel):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=N_WORKERS, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as c:
        c.wait_for_workers(N_WORKERS, timeout=60)
        yield c


def release_and_wait(workload, stop=True):
    """on_start: release the workload once all have attached; end the captures when it exits."""
    def on_start(run):
        workload.release()
        workload.wait()
        if stop:
            run.stop()
    return on_start


def test_every_worker_sees_the_same_workload_exactly(client, workload_bin):
    n, k, size = 20000, 41, 4096
    with Workload(workload_bin, n_getppid=n, k_reads=k, read_size=size) as w:
        t = fleet.capture(client, PROGRAM, duration=3, defines={"TARGET": w.pid}, attach=ATTACH,
                          on_start=release_and_wait(w, stop=False))
    hosts = t.meta["fleet"]["hosts"]
    assert len(hosts) == N_WORKERS == len(set(hosts))
    assert t.meta["fleet"]["failed"] == []
    events = t.events()
    assert list(events.columns[:2]) == ["host", "ts"]
    assert events.groupby("host").size().to_dict() == {h: n for h in hosts}
    assert (events["pid"] == w.pid).all() and set(events["comm"]) == {"bpfnb_workload"}
    assert events["pid"].dtype == np.uint32 and events["ts"].dtype == np.uint64
    calls = t.map("calls")
    assert sorted(map(tuple, calls[["host", "key", "value"]].values.tolist())) == \
        sorted((h, w.pid, n) for h in hosts)
    hist = t.hist("sizes")
    bucket = hist[(hist["low"] == 4096) & (hist["high"] == 8191)]
    assert bucket.set_index("host")["count"].to_dict() == {h: k for h in hosts}
    assert t.lost == {"events": 0}
    for h in hosts:
        info = t.meta["hosts"][h]
        assert info["ok"] and info["error"] is None
        assert info["lost"] == {"events": 0}
        assert ATTACH[0] in info["attach"]
        assert info["kernel"] and info["hostname"] in h
        assert info["rows"] == {"events:events": n, "map:calls": 1, "hist:sizes": len(hist[hist.host == h])}
        assert info["stopped_by"] == "duration"
    # the windows overlap: every host started before any ended
    starts = [t.meta["hosts"][h]["go_wall"] for h in hosts]
    ends = [t.meta["hosts"][h]["end_wall"] for h in hosts]
    assert max(starts) < min(ends)


def test_a_failing_worker_is_reported_and_the_others_kept(client, workload_bin):
    n = 3000
    with Workload(workload_bin, n_getppid=n) as w:
        t = fleet.capture(client, PROGRAM, duration=30, defines={"TARGET": w.pid}, attach=ATTACH,
                          worker_options={1: {"attach": MISSING}}, on_start=release_and_wait(w))
    hosts = t.meta["fleet"]["hosts"]
    bad = t.meta["fleet"]["failed"]
    assert len(bad) == 1
    error = t.meta["hosts"][bad[0]]["error"]
    assert error["type"] == "AttachError" and "sys_enter_no_such_call" in error["message"]
    good = [h for h in hosts if h not in bad]
    assert len(good) == N_WORKERS - 1
    assert t.events().groupby("host").size().to_dict() == {h: n for h in good}
    assert t.map("calls").set_index("host")["value"].to_dict() == {h: n for h in good}
    assert {t.meta["hosts"][h]["stopped_by"] for h in good} == {"fleet stop"}


def test_every_worker_failing_is_an_error_with_the_reports(client):
    with pytest.raises(fleet.FleetError) as info:
        fleet.capture(client, PROGRAM, duration=0.5, defines={"TARGET": 1}, attach=MISSING)
    assert "every host" in str(info.value) and "sys_enter_no_such_call" in str(info.value)
    assert len(info.value.trace.meta["fleet"]["failed"]) == N_WORKERS


def test_a_tool_by_name_runs_on_every_worker(client, workload_bin):
    pids = []

    def on_start(run):  # one exec of a fresh process, seen by every host
        proc = subprocess.Popen([str(workload_bin), "0", "0", "0", "0"], stdin=subprocess.PIPE)
        proc.communicate(b"x")
        assert proc.returncode == 0
        pids.append(proc.pid)

    t = fleet.capture(client, "execsnoop", duration=1.5, on_start=on_start)
    execs = t.events()
    mine = execs[(execs["pid"] == pids[0]) & (execs["filename"].astype(str) == str(workload_bin))]
    assert mine.groupby("host").size().to_dict() == {h: 1 for h in t.meta["fleet"]["hosts"]}
    assert t.meta["fleet"]["tool"] == "execsnoop"
    for info in t.meta["hosts"].values():
        assert info["attach"] and info["attach"][0].startswith("tracepoint:")
        # the tool's window after the common start is the whole duration
        assert info["end_wall"] - info["go_wall"] >= 1.5 - 0.01, info


def test_unknown_options_and_tools_are_refused_before_running(client):
    with pytest.raises(fleet.FleetError, match="durration"):
        fleet.capture(client, PROGRAM, durration=1)
    with pytest.raises(fleet.FleetError, match="runqlatt.*Did you mean: runqlat"):
        fleet.capture(client, "runqlatt", duration=1)
    with pytest.raises(fleet.FleetError, match="no worker 'nosuchhost'"):
        fleet.capture(client, PROGRAM, duration=1, workers=["nosuchhost"])


def test_a_subset_of_workers(client, workload_bin):
    with Workload(workload_bin, n_getppid=777) as w:
        t = fleet.capture(client, PROGRAM, duration=30, workers=[0, 2], defines={"TARGET": w.pid},
                          attach=ATTACH, on_start=release_and_wait(w))
    assert len(t.meta["fleet"]["hosts"]) == 2
    assert t.events().groupby("host").size().tolist() == [777, 777]


def test_spilled_capture_queried_out_of_core_matches_memory(kernel, workload_bin, tmp_path):
    """300,000 events (~9.6 MB of records) under a 1 MB bound: parts on disk, same answers."""
    from bpfnb import spill

    n, limit = 300_000, 1 << 20
    with Workload(workload_bin, n_getppid=n) as w:
        with bpfnb.Program(SPILL_PROGRAM, defines={"TARGET": w.pid}, attach=ATTACH) as prog:
            with prog.run() as run:
                sp = spill.Spill(tmp_path / "spill", memory_limit=limit)
                sp.watch(run.sinks)
                w.release()
                while w.proc.poll() is None:
                    run.poll(20)
                w.wait()
                run.poll(50)
            sp.flush(run.sinks)
            t = sp.finish(run.snapshot())
    assert t.lost == {"events": 0}
    info = t.meta["spill"]["outputs"]["events"]
    assert info["rows"] == n and n * 32 > 9 * limit  # struct ev_t is 32 bytes
    assert len(t.events()) == 0 and t.events().attrs["spilled"]["rows"] == n
    fill_buffer = 65536 * 32  # the chunk a sink fills (allocated up front)
    assert t.meta["spill"]["peak_retained_bytes"] <= limit + fill_buffer
    in_memory = spill.read(t)  # small enough here to compare against
    assert len(in_memory) == n and (in_memory["pid"] == w.pid).all()
    expect = (n, int(in_memory["ts"].min()), int(in_memory["ts"].max()), int(in_memory["ts"].sum() % 1_000_003))

    ddf = fleet.load_many(t, engine="dask")
    got_dask = ddf.compute()
    assert len(got_dask) == n and got_dask["ts"].tolist() == in_memory["ts"].tolist()
    assert ddf.groupby("pid")["ts"].count().compute().to_dict() == {w.pid: n}

    res = fleet.query(t, "SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi, "
                         "CAST(sum(ts) % 1000003 AS BIGINT) AS s FROM events")
    assert tuple(int(x) for x in res.iloc[0]) == expect
    by_comm = fleet.query(t, "SELECT comm, count(*) AS n FROM events GROUP BY comm")
    assert by_comm.set_index("comm")["n"].to_dict() == {"bpfnb_workload": n}


def test_fleet_capture_with_spill_loads_across_hosts(client, workload_bin, tmp_path):
    n = 150_000
    with Workload(workload_bin, n_getppid=n) as w:
        t = fleet.capture(client, SPILL_PROGRAM, duration=30, defines={"TARGET": w.pid}, attach=ATTACH,
                          spill_dir=str(tmp_path), memory_limit=1 << 20, event_limit=None,
                          on_start=release_and_wait(w))
    hosts = t.meta["fleet"]["hosts"]
    assert t.lost == {"events": 0}
    assert len(t.events()) == 0
    counts = fleet.query(tmp_path, "SELECT host, count(*) AS n, count(DISTINCT ts) AS d FROM events GROUP BY host")
    assert counts.set_index("host")["n"].to_dict() == {h: n for h in hosts}
    assert counts.set_index("host")["d"].to_dict() == {h: n for h in hosts}
    assert {h: t.meta["hosts"][h]["spill"]["outputs"]["events"]["rows"] for h in hosts} == {h: n for h in hosts}



def test_bpf_fleet_cell_magic(client, workload_bin, ipython):
    import threading

    from bpfnb import system

    ip = ipython  # %load_ext bpfnb registered %%bpf_fleet
    ip.user_ns["cluster_client"] = client
    before = len(system.loaded_program_ids())

    def release_once_loaded(w):
        # the magic has no start hook: wait until every worker has loaded its
        # program, give the attach a moment, then release inside the window
        deadline = time.monotonic() + 6
        while len(system.loaded_program_ids()) < before + N_WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.7)
        w.release()

    try:
        with Workload(workload_bin, n_getppid=500) as w:
            threading.Thread(target=release_once_loaded, args=(w,)).start()
            result = ip.run_cell(f"%%bpf_fleet --client cluster_client -d 5 -D TARGET={w.pid} "
                                 f"-a {ATTACH[0]} -o ft\n{PROGRAM}")
            w.wait()
    finally:
        ip.user_ns.pop("cluster_client", None)
    assert result.success, result.error_in_exec
    t = ip.user_ns["ft"]
    assert t.map("calls")["value"].tolist() == [500] * N_WORKERS
    assert fleet.summary(t)["ok"].tolist() == [True] * N_WORKERS
    bad = ip.run_cell("%%bpf_fleet --client nope\nruqlat")
    assert not bad.success and "no dask.distributed.Client named 'nope'" in str(bad.error_in_exec)
