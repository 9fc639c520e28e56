"""Real BPF on this kernel, against the controlled workload: exact counts."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import bpfnb
from tests.workloads.runner import Workload

pytestmark = pytest.mark.kernel

PROGRAM = r"""
struct ev_t { u64 ts; u32 pid; u32 tid; s32 sval; u16 small; char comm[16]; };
BPF_PERF_OUTPUT(events);
BPF_HISTOGRAM(sizes);
BPF_HASH(calls, u32, u64);
BPF_PERCPU_ARRAY(percpu, u64, 4);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != TARGET) return 0;
    struct ev_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.pid = id >> 32;
    e.tid = (u32)id;
    e.sval = -7;
    e.small = 65535;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    events.perf_submit(args, &e, sizeof(e));
    u32 key = e.pid;
    calls.increment(key);
    int idx = 1;
    u64 *v = percpu.lookup(&idx);
    if (v) *v += 1;
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
    sizes.increment(bpf_log2l(args->count));
    return 0;
}
"""


def run_workload(program, workload, **run_options):
    with program.run(**run_options) as run:
        workload.release()
        workload.wait()
        run.poll(50)
    return run.snapshot()


def test_events_map_and_hist_are_exact(kernel, workload_bin):
    n, k, size = 20000, 37, 4096
    with Workload(workload_bin, n_getppid=n, k_reads=k, read_size=size) as w:
        with bpfnb.Program(PROGRAM, defines={"TARGET": w.pid}) as prog:
            t = run_workload(prog, w)
    events = t.events()
    assert len(events) == n
    assert t.lost == {"events": 0}
    assert (events["pid"] == w.pid).all() and (events["tid"] == w.pid).all()
    assert set(events["comm"]) == {"bpfnb_workload"}
    assert events["pid"].dtype == np.uint32 and events["sval"].dtype == np.int32
    assert events["small"].dtype == np.uint16 and (events["small"] == 65535).all()
    assert (events["sval"] == -7).all()
    # perf buffers are per CPU: a process that migrates mid-burst yields two
    # interleaved runs, each in time order (ring buffers keep one global order)
    assert events["ts"].dtype == np.uint64 and events["ts"].nunique() == n
    calls = t.map("calls")
    assert list(calls.columns) == ["key", "value"]
    assert calls.set_index("key")["value"].to_dict() == {w.pid: n}
    percpu = t.map("percpu")  # summed over CPUs by default
    assert percpu.set_index("key")["value"].to_dict() == {0: 0, 1: n, 2: 0, 3: 0}
    hist = t.hist("sizes")
    bucket = hist[(hist["low"] == 4096) & (hist["high"] == 8191)]
    assert bucket["count"].tolist() == [k]
    assert hist.attrs["hist_type"] == "log2"


def test_per_cpu_values_can_be_kept(kernel, workload_bin):
    with Workload(workload_bin, n_getppid=500) as w:
        with bpfnb.Program(PROGRAM, defines={"TARGET": w.pid}) as prog:
            t = run_workload(prog, w, per_cpu=True)
    percpu = t.map("percpu")
    assert {"key", "cpu", "value"} <= set(percpu.columns)
    assert percpu.groupby("key")["value"].sum().to_dict()[1] == 500
    assert percpu["cpu"].nunique() == os.cpu_count() or percpu["cpu"].nunique() >= 1


def test_uprobe_counts_calls(kernel, workload_bin):
    m = 1234
    source = r"""
    BPF_HASH(hits, u32, u64);
    int on_marker(struct pt_regs *ctx) {
        u32 pid = bpf_get_current_pid_tgid() >> 32;
        hits.increment(pid);
        return 0;
    }
    """
    with Workload(workload_bin, m_marker=m) as w:
        with bpfnb.Program(source, attach=[f"uprobe:{workload_bin}:bpfnb_marker=on_marker"]) as prog:
            t = run_workload(prog, w)
    assert t.map("hits").set_index("key")["value"].to_dict() == {w.pid: m}
    assert t.meta["probes"] == [f"uprobe:{workload_bin}:bpfnb_marker=on_marker"]


def test_perf_sampling_fires(kernel, workload_bin):
    source = r"""
    BPF_HASH(samples, u32, u64);
    int on_sample(struct bpf_perf_event_data *ctx) {
        u32 pid = bpf_get_current_pid_tgid() >> 32;
        if (pid != TARGET) return 0;
        samples.increment(pid);
        return 0;
    }
    """
    with Workload(workload_bin, spin_ms=600) as w:
        with bpfnb.Program(source, defines={"TARGET": w.pid}, attach=["perf:cpu-clock:99=on_sample"]) as prog:
            t = run_workload(prog, w)
    counts = t.map("samples").set_index("key")["value"].to_dict()
    # 0.6 s of CPU at 99 Hz is about 59 samples; allow for scheduling noise
    assert 20 <= counts.get(w.pid, 0) <= 80, counts


def test_ring_buffer_events_and_lost_are_counted(kernel, workload_bin):
    n = 30000
    source = r"""
    struct ev_t { u64 seq; u32 pid; };
    BPF_RINGBUF_OUTPUT(ring, 1);          /* one page: a burst must overflow */
    BPF_ARRAY(submitted, u64, 1);
    TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
        if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
        int zero = 0;
        u64 *seq = submitted.lookup(&zero);
        if (!seq) return 0;
        struct ev_t e = {.seq = *seq, .pid = TARGET};
        __sync_fetch_and_add(seq, 1);
        ring.ringbuf_output(&e, sizeof(e), 0);
        return 0;
    }
    """
    with Workload(workload_bin, n_getppid=n) as w:
        with bpfnb.Program(source, defines={"TARGET": w.pid}) as prog:
            t = run_workload(prog, w)
    submitted = int(t.map("submitted")["value"].sum())
    assert submitted == n
    captured, lost = len(t.events("ring")), t.lost["ring"]
    assert lost > 0, "a one-page ring buffer under a 30,000-event burst must drop"
    assert captured + lost == n
    seqs = t.events("ring")["seq"].to_numpy()
    assert len(np.unique(seqs)) == captured


def test_capture_function_with_defines_and_wall_time(kernel, workload_bin):
    with Workload(workload_bin, n_getppid=1000) as w:
        released = []

        def release(run, elapsed):
            if not released:
                released.append(elapsed)
                w.release()

        t = bpfnb.capture(PROGRAM, duration=1.5, defines={"TARGET": w.pid},
                          interval=0.2, on_interval=release)
        w.wait()
    assert len(t.events()) == 1000
    assert t.meta["stopped_by"] == "duration"
    assert t.meta["defines"] == {"TARGET": w.pid}
    wall = t.wall_time(t.events()["ts"])
    assert str(wall.dtype).startswith("datetime64")
    start = np.datetime64(int(t.meta["start_wall"] * 1e9), "ns")
    end = np.datetime64(int(t.meta["end_wall"] * 1e9), "ns")
    assert (wall >= start).all() and (wall <= end).all()


def test_event_limit_stops_and_says_so(kernel, workload_bin):
    with Workload(workload_bin, n_getppid=5000) as w:
        with bpfnb.Program(PROGRAM, defines={"TARGET": w.pid}) as prog:
            with prog.run(event_limit=1000) as run:
                w.release()
                w.wait()
                assert run.wait() == "event limit"
            t = run.snapshot()
    assert len(t.events()) == 1000
    assert t.meta["over_limit"] == {"events": 4000}


def test_in_kernel_heat_map_snapshots_and_clears_each_interval(kernel, workload_bin):
    source = r"""
    BPF_HISTOGRAM(dist);
    TRACEPOINT_PROBE(syscalls, sys_enter_read) {
        if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
        dist.increment(bpf_log2l(args->count));
        return 0;
    }
    """
    k = 4000
    with Workload(workload_bin, k_reads=k, read_size=300) as w:
        ticks = []

        def release(run, elapsed):
            ticks.append(elapsed)
            if len(ticks) == 2:
                w.release()

        t = bpfnb.capture(source, duration=1.6, defines={"TARGET": w.pid}, interval=0.25,
                          hist_interval=True, on_interval=release)
        w.wait()
    hist = t.hist("dist")
    assert list(hist.columns[:1]) == ["time"]
    assert hist.attrs["interval"] == 0.25
    bucket = hist[(hist["low"] == 256) & (hist["high"] == 511)]
    assert int(bucket["count"].sum()) == k          # cleared each time: nothing counted twice
    assert bucket["time"].min() > ticks[0]          # nothing before the release
    assert hist["time"].is_monotonic_increasing


STACKS = r"""
struct key_t { u32 pid; int user_stack_id; int kernel_stack_id; char comm[16]; };
BPF_HASH(counts, struct key_t, u64);
BPF_STACK_TRACE(stack_traces, 1024);
int on_sample(void *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != TARGET) return 0;
    struct key_t key = {.pid = pid};
    key.user_stack_id = stack_traces.get_stackid(ctx, BPF_F_USER_STACK);
    key.kernel_stack_id = stack_traces.get_stackid(ctx, 0);
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    counts.increment(key);
    return 0;
}
"""


def test_user_stacks_resolve_after_the_process_exits(kernel, workload_bin):
    with Workload(workload_bin, spin_ms=700) as w:
        with bpfnb.Program(STACKS, defines={"TARGET": w.pid}, attach=["perf:cpu-clock:99=on_sample"]) as prog:
            with prog.run() as run:
                w.release()
                while w.proc.poll() is None:  # the capture loop sees the process while it lives
                    run.poll(20)
                w.wait()
                deadline = time.monotonic() + 0.5
                while time.monotonic() < deadline:  # ... and goes on after it exited
                    run.poll(20)
            t = run.snapshot()
    assert not os.path.exists(f"/proc/{w.pid}"), "the workload has exited before the snapshot"
    stacks = t.stacks("counts")
    spin = stacks[stacks["stack"].str.contains("bpfnb_spin")]
    seen = stacks[["comm", "stack", "value"]].head(5).to_string()   # for the failure message
    assert spin["value"].sum() >= 0.8 * stacks["value"].sum() > 0, seen
    assert set(stacks["comm"]) == {"bpfnb_workload"}, seen


def test_perf_buffer_overflow_is_counted_exactly(kernel, workload_bin):
    n = 20000
    with Workload(workload_bin, n_getppid=n) as w:
        with bpfnb.Program(PROGRAM, defines={"TARGET": w.pid}) as prog:
            t = run_workload(prog, w, buffer_pages=1)   # one page per CPU: a burst must overflow
    captured, lost = len(t.events()), t.lost["events"]
    assert lost > 0
    assert captured + lost == n
    assert t.map("calls")["value"].tolist() == [n]


def test_verifier_rejection_shows_the_log_and_a_hint(kernel):
    source = ("BPF_HASH(m, u32, u64);\n"
              "TRACEPOINT_PROBE(sched, sched_switch) { u32 k = 0; u64 *v = m.lookup(&k); return *v; }")
    with pytest.raises(bpfnb.errors.VerifierError) as err:
        bpfnb.capture(source, duration=0.1)
    message = str(err.value)
    assert "invalid mem access 'map_value_or_null'" in message   # the verifier's own last words
    assert "NULL check" in message                               # and what usually causes them
    assert "@ bpf-cell:" not in message


def test_usdt_probe_counts_and_reads_its_argument(kernel, tmp_path):
    import shutil
    import subprocess

    if shutil.which("gcc") is None:
        pytest.skip("no C compiler to build the USDT workload (apt-get install gcc)")
    binary = tmp_path / "bpfnb_usdt"
    source = os.path.join(os.path.dirname(__file__), "..", "workloads", "usdt.c")
    subprocess.run(["gcc", "-O1", "-o", str(binary), source], check=True)
    m = 321
    program = r"""
    BPF_HASH(ticks, u32, u64);
    BPF_HASH(last, u32, u64);
    int on_tick(struct pt_regs *ctx) {
        u32 pid = bpf_get_current_pid_tgid() >> 32;
        u64 n = 0;
        bpf_usdt_readarg(1, ctx, &n);
        ticks.increment(pid);
        last.update(&pid, &n);
        return 0;
    }
    """
    proc = subprocess.Popen([str(binary), str(m)], stdin=subprocess.PIPE)
    try:
        with bpfnb.Program(program, attach=[f"usdt:{proc.pid}:tick=on_tick"]) as prog:
            with prog.run() as run:
                proc.stdin.write(b"x")
                proc.stdin.close()
                assert proc.wait(timeout=30) == 0
                run.poll(20)
            t = run.snapshot()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert t.map("ticks").set_index("key")["value"].to_dict() == {proc.pid: m}
    assert t.map("last").set_index("key")["value"].to_dict() == {proc.pid: m - 1}


def test_the_duration_counts_from_on_attach_returning(kernel):
    from bpfnb.capture import Run

    with bpfnb.Program("TRACEPOINT_PROBE(syscalls, sys_enter_getppid) { return 0; }") as prog:
        run = Run(prog, 0.3)
        began = time.monotonic()
        assert run.run_to_end(on_attach=lambda: time.sleep(0.5)) == "duration"
        assert time.monotonic() - began >= 0.8
