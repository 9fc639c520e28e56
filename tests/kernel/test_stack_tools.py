"""Real captures with profile, offcputime and offwaketime against known workloads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import bpfnb
from tests.conftest import WORKLOAD_C
from tests.workloads.runner import Workload

pytestmark = pytest.mark.kernel

PINGPONG_C = Path(__file__).resolve().parent.parent / "workloads" / "pingpong.c"


@pytest.fixture(scope="module")
def bin_dir():
    """A folder of our own for the workloads: pytest's basetemp folders are
    removed when other pytest sessions start meanwhile, and a deleted
    program's symbols can no longer be read."""
    path = Path(tempfile.mkdtemp(prefix="bpfnb-stack-tools-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def build(source: Path, out: Path, *flags: str) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the test workload (apt-get install gcc)")
    subprocess.run([cc, "-O1", "-g", "-fno-inline", *flags, "-o", str(out), str(source)], check=True)
    return out


@pytest.fixture(scope="module")
def spin_bin(bin_dir) -> Path:
    """tests/workloads/workload.c (bpfnb_spin), built as conftest's workload_bin is."""
    return build(WORKLOAD_C, bin_dir / "bpfnb_workload")


@pytest.fixture(scope="module")
def pingpong_bin(bin_dir) -> Path:
    """tests/workloads/pingpong.c, with frame pointers so user stacks unwind."""
    return build(PINGPONG_C, bin_dir / "bpfnb_pingpong", "-fno-omit-frame-pointer")


class Blocker:
    """pingpong.c started and waiting on stdin; .pids from its first line."""

    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([str(binary), *map(str, args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.pids = [int(p) for p in self.proc.stdout.readline().split()]

    def release(self):
        self.proc.stdin.write(b"x")
        self.proc.stdin.close()

    def wait(self):
        assert self.proc.wait(timeout=30) == 0

    def finished_during_capture(self):
        """Exited, successfully, before the capture ended (else its numbers are partial)."""
        code = self.proc.poll()
        assert code is not None, "the workload outlived the capture: the machine is too busy for this test"
        self.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def frames(stack: str) -> list[str]:
    return stack.split(";")


def has(stack_frames: list[str], pattern: str) -> bool:
    return any(re.search(pattern, f) for f in stack_frames)


# -- profile -----------------------------------------------------------------------
def reap_cpu_seconds(proc: subprocess.Popen) -> float:
    """Wait for proc and return the CPU time it used (user + system)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_profile_finds_the_spinning_function(kernel, spin_bin):
    hz = 99
    with Workload(spin_bin, spin_ms=1200) as w:
        # the workload exits before the capture ends: it resolves from what was remembered
        t = bpfnb.tools.profile(duration=2, hz=hz, on_attach=w.release)
        cpu_s = reap_cpu_seconds(w.proc)
        w.wait()
    stacks = t.stacks()
    assert list(stacks.columns) == ["comm", "pid", "stack", "value"]
    assert (stacks["pid"] != 0).all()  # idle left out
    mine = stacks[stacks["pid"] == w.pid]
    assert set(mine["comm"]) == {"bpfnb_workload"}
    samples = int(mine["value"].sum())
    # one sample per 1/hz s on CPU (the CPUs may be shared with other work)
    assert samples >= 10 and abs(samples - cpu_s * hz) <= 0.25 * cpu_s * hz + 3, (samples, cpu_s)
    in_spin = int(mine[mine["stack"].map(lambda s: "bpfnb_spin" in frames(s))]["value"].sum())
    assert in_spin >= 0.8 * samples, mine.to_string()
    assert t.meta["tool"]["attach"] == ["perf:cpu-clock", "tracepoint:sched:sched_process_exec"]
    assert f"perf:cpu-clock:{hz}=on_sample" in t.meta["probes"]
    assert t.lost == {"counts": 0}
    svg = bpfnb.flamegraph(t).to_svg()
    assert "bpfnb_spin" in svg and "bpfnb_workload" in svg


def test_profile_of_one_process_user_stacks_only(kernel, spin_bin):
    with Workload(spin_bin, spin_ms=800) as w:
        t = bpfnb.tools.profile(duration=1.2, hz=99, pid=w.pid, kernel=False, on_attach=w.release)
        w.wait()
    stacks = t.stacks()
    assert set(stacks["pid"]) == {w.pid}
    by_stack = stacks.groupby("stack")["value"].sum()
    assert by_stack.idxmax() == "bpfnb_spin"   # the leaf frame, symbolized; no kernel frames
    assert not stacks["stack"].str.contains("entry_SYSCALL|asm_", regex=True).any()
    assert t.meta["tool"]["options"]["kernel"] is False


def test_profile_rereads_symbols_after_exec(kernel, spin_bin):
    """A process seen running Python, then exec()ing the workload, resolves as the workload."""
    import sys

    code = ("import os, time\nos.read(0, 1)\nt = time.time()\nwhile time.time() - t < 0.3: pass\n"
            f"os.execv({str(spin_bin)!r}, ['bpfnb_workload', '0', '0', '0', '0', '1000'])")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        def release():  # one byte for python, one for the workload's own start gate
            proc.stdin.write(b"xy")
            proc.stdin.close()

        t = bpfnb.tools.profile(duration=1.8, hz=99, on_attach=release)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    mine = t.stacks()[lambda s: s["pid"] == proc.pid]
    assert "bpfnb_workload" in set(mine["comm"])
    after = mine[mine["comm"] == "bpfnb_workload"]
    in_spin = after[after["stack"].map(lambda s: "bpfnb_spin" in frames(s))]["value"].sum()
    assert after["value"].sum() >= 10 and in_spin >= 0.8 * after["value"].sum(), after.to_string()


def test_capture_stacks_are_symbolized_in_bulk(kernel, spin_bin):
    """A user's own program with BPF_STACK_TRACE: Trace.stacks() from snapshot.py."""
    source = r"""
    #include <uapi/linux/bpf_perf_event.h>
    struct key_t { u32 pid; int user_stack_id; int kernel_stack_id; };
    BPF_HASH(counts, struct key_t, u64);
    BPF_STACK_TRACE(stack_traces, 1024);
    int on_sample(struct bpf_perf_event_data *ctx) {
        u32 pid = bpf_get_current_pid_tgid() >> 32;
        if (pid != TARGET) return 0;
        struct key_t key = {.pid = pid};
        key.user_stack_id = stack_traces.get_stackid(&ctx->regs, BPF_F_USER_STACK);
        key.kernel_stack_id = stack_traces.get_stackid(&ctx->regs, 0);
        counts.increment(key);
        return 0;
    }
    """
    with Workload(spin_bin, spin_ms=1500) as w:
        with bpfnb.Program(source, defines={"TARGET": w.pid}, attach=["perf:cpu-clock:99=on_sample"]) as prog:
            with prog.run() as run:
                w.release()
                time.sleep(0.8)
                t = run.snapshot()  # the workload still runs: its symbols resolve
                cpu_s = cpu_seconds(w.pid)
    stacks = t.stacks("counts")
    assert list(stacks.columns) == ["pid", "stack", "value"]
    total = int(stacks["value"].sum())
    assert total >= 5 and abs(total - cpu_s * 99) <= 0.3 * cpu_s * 99 + 5, (total, cpu_s)
    in_spin = stacks[stacks["stack"].map(lambda s: "bpfnb_spin" in frames(s))]["value"].sum()
    assert in_spin >= 0.8 * total
    assert not stacks["stack"].str.contains("bpf_prog_").any()


# -- offcputime --------------------------------------------------------------------
def test_offcputime_shows_the_nanosleep_path(kernel, pingpong_bin):
    count, ms = 20, 10
    with Blocker(pingpong_bin, "sleep", count, ms) as sleeper:
        (pid,) = sleeper.pids
        t = bpfnb.tools.offcputime(duration=2, pid=pid, on_attach=sleeper.release)
        sleeper.finished_during_capture()
    stacks = t.stacks()
    assert set(stacks["pid"]) == {pid} and set(stacks["comm"]) == {"bpfnb_sleeper"}
    asleep = stacks[stacks["stack"].map(
        lambda s: has(frames(s), r"nanosleep") and has(frames(s), r"^(__)?schedule$"))]
    assert len(asleep) >= 1, stacks.to_string()
    us = int(asleep["value"].sum())
    assert count * ms * 1000 <= us <= count * ms * 1000 * 2, us  # + timer slack and run-queue waits
    # user frames resolved too: the program's main is below the libc call
    assert asleep["stack"].map(lambda s: "main" in frames(s)).any()
    assert t.meta["tool"]["attach"] == ["tracepoint:sched:sched_switch", "tracepoint:sched:sched_process_exec"]
    assert "kprobe" not in " ".join(t.meta["probes"])
    svg = bpfnb.flamegraph(t, kind="offcpu").to_svg()
    assert "do_nanosleep" in svg


def test_offcputime_min_us_leaves_out_short_blocks(kernel, pingpong_bin):
    with Blocker(pingpong_bin, "sleep", 10, 5) as sleeper:
        (pid,) = sleeper.pids
        t = bpfnb.tools.offcputime(duration=1.0, pid=pid, min_us=50_000, on_attach=sleeper.release)
        sleeper.wait()
    stacks = t.stacks()
    assert not stacks["stack"].str.contains("nanosleep").any(), stacks.to_string()
    assert t.meta["tool"]["options"]["min_us"] == 50_000


def test_offcputime_rejects_impossible_options():
    with pytest.raises(bpfnb.tools.ToolError, match="max_us"):
        bpfnb.tools.offcputime(min_us=10, max_us=5)
    with pytest.raises(bpfnb.tools.ToolError, match="no stack"):
        bpfnb.tools.offcputime(user=False, kernel=False)


# -- offwaketime -------------------------------------------------------------------
def test_offwaketime_pairs_pipe_reader_with_writer(kernel, pingpong_bin):
    rounds = 20000
    with Blocker(pingpong_bin, "pingpong", rounds) as pp:
        ping, pong = pp.pids
        t = bpfnb.tools.offwaketime(duration=2, pid=ping, on_attach=pp.release)
        pp.finished_during_capture()
    stacks = t.stacks()
    assert set(stacks["pid"]) == {ping} and set(stacks["comm"]) == {"bpfnb_ping"}
    rows = []
    for stack, us in zip(stacks["stack"], stacks["value"]):
        parts = frames(stack)
        assert parts.count("--") == 1, stack
        cut = parts.index("--")
        rows.append((parts[:cut], parts[cut + 1:-1], parts[-1], int(us)))
    piped = [r for r in rows if has(r[0], r"pipe_read") and has(r[1], r"pipe_write")]
    assert piped, "\n".join(stacks["stack"])
    blocked, waker, waker_name, _ = max(piped, key=lambda r: r[3])
    assert waker_name == "bpfnb_pong"
    assert has(blocked, r"^(__)?schedule$") and "main" in blocked  # user frames resolved
    # waker printed leaf to root: try_to_wake_up first, the pipe write below it, user frames last
    assert has(waker[:3], r"try_to_wake_up")
    assert waker.index(next(f for f in waker if "pipe_write" in f)) < waker.index("pingpong")
    total_us = sum(r[3] for r in piped)
    assert 0 < total_us < 2_000_000
    assert t.meta["tool"]["attach"] == ["tracepoint:sched:sched_waking", "tracepoint:sched:sched_switch",
                                       "tracepoint:sched:sched_process_exec"]
    svg = bpfnb.flamegraph(t, kind="offwake").to_svg()
    assert "pipe_write" in svg and "bpfnb_pong" in svg and "--" in svg


# -- folding (real kallsyms, made-up stacks) ------------------------------------
class FakeUserSymbols:
    NAMES = {0x1000: "main", 0x2000: "bpfnb_pass", 0x3000: "write"}

    def remember(self, pid):
        return True

    def resolve(self, pid, addresses):
        return [self.NAMES.get(int(a), "[unknown]") for a in addresses]


@pytest.fixture(scope="module")
def stack_table():
    from bpfnb.symbols import kernel_symbols

    ksyms = kernel_symbols()
    want = ["__schedule", "schedule", "do_nanosleep", "try_to_wake_up", "anon_pipe_write", "pipe_write"]
    at = {n: int(a) for a, n in zip(ksyms.addresses, ksyms.names) if n in want}
    write = "anon_pipe_write" if "anon_pipe_write" in at else "pipe_write"
    return {
        1: [at["__schedule"], at["schedule"], at["do_nanosleep"]],   # leaf first, as bcc walks
        2: [0x2000, 0x1000],
        3: [at["try_to_wake_up"], at[write]],
        4: [0x3000, 0x1000],
    }, write


def test_fold_stack_ids_puts_missing_markers_where_bcc_does(kernel, stack_table):
    from bpfnb.snapshot import fold_stack_ids

    table, _ = stack_table
    got = fold_stack_ids([1, -17, 1, 1], [2, 2, -14, -17], [5, 5, 5, 5], table.get, FakeUserSymbols())
    assert got == [
        "main;bpfnb_pass;do_nanosleep;schedule;__schedule",
        "main;bpfnb_pass;[Missing Kernel Stack]",
        "do_nanosleep;schedule;__schedule",                       # -EFAULT: no user stack
        "[Missing User Stack];do_nanosleep;schedule;__schedule",
    ]


def test_offwake_fold_is_bcc_offwaketime_f_layout(kernel, stack_table):
    import pandas as pd

    from bpfnb.tools.offwaketime import fold_offwake

    table, write = stack_table
    rows = pd.DataFrame({"pid": [7, 7], "waker_pid": [8, 8], "user_stack_id": [2, 2],
                         "kernel_stack_id": [1, 1], "waker_user_stack_id": [4, 4],
                         "waker_kernel_stack_id": [3, 3], "comm": ["ping", "ping"],
                         "waker_comm": ["pong", "pong"], "value": [10, 32]})
    got = fold_offwake(rows, table.get, FakeUserSymbols(), user=True, kernel=True)
    assert got.to_dict("records") == [{
        "comm": "ping", "pid": 7, "value": 42,
        "stack": f"main;bpfnb_pass;do_nanosleep;schedule;__schedule;--;try_to_wake_up;{write};write;main;pong",
    }]
