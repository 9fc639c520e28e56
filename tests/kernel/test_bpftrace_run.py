"""run_bpftrace with the real bpftrace on this machine, against a known workload."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import bpfnb
from bpfnb.bpftrace_run import BPFTRACE, bpftrace_version, run_bpftrace
from bpfnb.errors import AttachError, BpfnbError, CompileError, SetupError

pytestmark = pytest.mark.kernel

HAVE_BPFTRACE = os.path.exists(BPFTRACE) or shutil.which("bpftrace") is not None
needs_bpftrace = pytest.mark.skipif(
    os.geteuid() != 0 or not HAVE_BPFTRACE,
    reason="needs root and bpftrace (run `make setup` as root)",
)

SMALL, BIG = 777, 5000  # read sizes nothing else on the machine uses
N_SMALL, N_BIG = 40, 7

WORKLOAD = f"""
import os, sys
sys.stdin.read(1)                       # wait to be released
fd = os.open("/dev/zero", os.O_RDONLY)
for _ in range({N_SMALL}):
    os.read(fd, {SMALL})
for _ in range({N_BIG}):
    os.read(fd, {BIG})
"""


class Workload:
    """A python child that does known reads once released (after attach)."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", WORKLOAD], stdin=subprocess.PIPE, text=True)
        self.pid = self.proc.pid

    def release_and_wait(self):
        self.proc.stdin.write("x")
        self.proc.stdin.close()
        assert self.proc.wait(30) == 0

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def workload():
    w = Workload()
    yield w
    w.cleanup()


@needs_bpftrace
def test_exact_counts_maps_hists_stats_and_printf(workload):
    who = f"/pid == {workload.pid} && (args->count == {SMALL} || args->count == {BIG})/"
    program = (
        f"tracepoint:syscalls:sys_enter_read {who} {{ @reads[comm, args->count] = count(); "
        f"@h = hist(args->count); @l = lhist(args->count, 0, 1000, 100); @s = stats(args->count); "
        f'@a = avg(args->count); printf("read %d\\n", args->count); }}'
    )
    t = run_bpftrace(program, duration=0.5, on_attached=workload.release_and_wait)

    reads = t.map("@reads").sort_values("count_key").reset_index(drop=True)
    assert reads["comm"].str.startswith("python").all()
    assert_frame_equal(
        reads.drop(columns="comm"),
        pd.DataFrame({"count_key": np.array([SMALL, BIG]), "value": np.array([N_SMALL, N_BIG])}),
        check_dtype=True,
    )
    h = t.hist("@h")
    assert h.attrs == {"hist_type": "log2", "step": 1}
    assert h[["low", "high", "count"]].values.tolist() == [[512, 1023, N_SMALL], [4096, 8191, N_BIG]]
    lin = t.hist("@l")
    assert lin.attrs == {"hist_type": "linear", "step": 100}
    assert lin[["low", "high", "count"]].values.tolist() == [[700, 799, N_SMALL], [1000, 2**63 - 1, N_BIG]]
    total = N_SMALL * SMALL + N_BIG * BIG
    assert t.map("@s").values.tolist() == [[N_SMALL + N_BIG, total // (N_SMALL + N_BIG), total]]
    assert t.map("@a")["average"].tolist() == [total // (N_SMALL + N_BIG)]
    ev = t.events()
    assert ev["message"].tolist() == [f"read {SMALL}"] * N_SMALL + [f"read {BIG}"] * N_BIG
    assert t.lost == {}
    assert t.meta["source"] == program and t.meta["tool"] == "bpftrace"
    assert t.meta["bpftrace_version"] == bpftrace_version() != ""
    assert t.meta["duration_requested"] == 0.5 and t.meta["attached_probes"] == 1
    assert t.meta["stopped_by"] == "duration"
    assert 0 < t.meta["end_wall"] - t.meta["start_wall"] < 30


@needs_bpftrace
def test_duration_stops_it_with_sigint_and_maps_are_printed():
    start = time.monotonic()
    # END runs when bpftrace is stopped: it measures the traced time itself
    program = "BEGIN { @start = nsecs; } END { @ms = (nsecs - @start) / 1000000; delete(@start); }"
    t = run_bpftrace(program, duration=1.0)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 10
    assert 1000 <= t.map("@ms")["value"][0] < 3000
    assert t.meta["stopped_by"] == "duration"


@needs_bpftrace
def test_program_that_exits_itself_without_duration():
    t = run_bpftrace('BEGIN { printf("hi\\n"); @x = 3; exit(); }')
    assert t.events()["message"].tolist() == ["hi"]
    assert t.map("@x")["value"].tolist() == [3]
    assert t.meta["stopped_by"] == "exit" and t.meta["warnings"] == []


@needs_bpftrace
def test_interrupt_returns_the_partial_trace():
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        start = time.monotonic()
        t = run_bpftrace("BEGIN { @start = nsecs; } END { @ms = (nsecs - @start) / 1000000; delete(@start); }")
        elapsed = time.monotonic() - start
    finally:
        timer.cancel()
    assert t.meta["stopped_by"] == "interrupt"
    assert 1000 <= t.map("@ms")["value"][0] < 5000  # traced until the interrupt at 1.5 s
    assert elapsed < 10


@needs_bpftrace
def test_syntax_error_is_a_compile_error_with_bpftrace_message():
    with pytest.raises(CompileError) as err:
        run_bpftrace("tracepoint:syscalls:sys_enter_read { @ = count( }", duration=1)
    message = str(err.value)
    assert "syntax error" in message and "stdin:1:" in message
    assert "RLIMIT_MEMLOCK" not in message


@needs_bpftrace
def test_unknown_tracepoint_is_an_attach_error_with_suggestions():
    with pytest.raises(AttachError, match=r"tracepoint not found: sched:sched_swtich[\s\S]*Did you mean: sched:sched_switch"):
        run_bpftrace("tracepoint:sched:sched_swtich { @ = count(); }", duration=1)


@needs_bpftrace
def test_unavailable_kprobe_is_an_attach_error():
    with pytest.raises(AttachError, match=r"kprobe:vfs_read"):
        run_bpftrace("kprobe:vfs_read { @ = count(); }", duration=1)


@needs_bpftrace
def test_trace_saves_and_loads(tmp_path):
    t = run_bpftrace('BEGIN { @m[1, "a"] = 5; @h = hist(1000); exit(); }')
    back = bpfnb.load(t.save(tmp_path / "bt"))
    assert_frame_equal(back.map("@m"), t.map("@m"), check_dtype=True)
    assert back.map("@m").columns.tolist() == ["key0", "key1", "value"]
    assert back.hist("@h")[["low", "high", "count"]].values.tolist() == [[512, 1023, 1]]
    assert back.meta == t.meta


def test_missing_bpftrace_is_a_setup_error(tmp_path):
    with pytest.raises(SetupError, match=r"make setup.*apt-get install bpftrace"):
        run_bpftrace("BEGIN { exit(); }", bpftrace=str(tmp_path / "no-bpftrace"))
    assert issubclass(SetupError, BpfnbError)


@needs_bpftrace
def test_exact_counts_when_the_program_has_its_own_begin(workload):
    program = (
        'BEGIN { printf("tracing\\n"); } '
        f"tracepoint:syscalls:sys_enter_read /pid == {workload.pid} && args->count == {SMALL}/ {{ @n = count(); }}"
    )
    t = run_bpftrace(program, duration=0.3, on_attached=workload.release_and_wait)
    assert t.map("@n")["value"].tolist() == [N_SMALL]
    assert t.events()["message"].tolist() == ["tracing"]  # the attach marker is not shown
    assert t.meta["attached_probes"] == 2


def _bpftrace_children() -> list[int]:
    """bpftrace processes whose parent is this test process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm == "bpftrace" and int(fields[1]) == os.getpid():
            found.append(int(entry))
    return found


@needs_bpftrace
def test_attach_timeout_kills_bpftrace_and_says_so():
    # bpftrace needs tens of milliseconds to compile and attach, not one
    with pytest.raises(BpfnbError, match=r"did not attach its probes within 0\.001 s.*timeout="):
        run_bpftrace("tracepoint:syscalls:sys_enter_read { @ = count(); }", duration=1, timeout=0.001)
    assert _bpftrace_children() == []


@needs_bpftrace
def test_command_run_with_c_keeps_its_output():
    t = run_bpftrace(
        "tracepoint:syscalls:sys_enter_execve { @execs = count(); }",
        extra_args=["-c", "/bin/echo hello from -c"],
    )
    ev = t.events()
    assert ev[ev["type"] == "stdout"]["message"].tolist() == ["hello from -c"]
    assert t.meta["stopped_by"] == "exit"
