"""Captures always leave the kernel as they found it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import bpfnb
from bpfnb import system

pytestmark = pytest.mark.kernel

SMALL = r"""
BPF_HASH(counts, u32, u64);
BPF_PERF_OUTPUT(events);
TRACEPOINT_PROBE(sched, sched_switch) {
    u32 cpu = bpf_get_smp_processor_id();
    counts.increment(cpu);
    return 0;
}
"""


def our_programs() -> dict:
    """Programs, maps, links and perf events this process holds."""
    return system.own_bpf_objects()


def test_fifty_captures_leave_no_programs(kernel):
    before = our_programs()
    system_before = set(system.loaded_program_ids())
    for _ in range(50):
        t = bpfnb.capture(SMALL, duration=0.05)
        assert t.meta["stopped_by"] == "duration"
    assert our_programs() == before
    # system-wide too: every program still loaded that was not there before
    # belongs to some other process (another tracer on a shared machine)
    leftover = set(system.loaded_program_ids()) - system_before
    assert not leftover - programs_held_by_other_processes(), leftover


def test_errors_leave_no_programs(kernel):
    before = our_programs()
    bad_attach = SMALL + "\nint extra(void *ctx) { return 0; }\n"
    for _ in range(5):
        with pytest.raises(bpfnb.errors.AttachError):
            bpfnb.capture(bad_attach, duration=0.05, attach=["uprobe:c:no_such_symbol_xyz=extra"])
        with pytest.raises(bpfnb.errors.CompileError):
            bpfnb.capture(SMALL + "\nint broken(", duration=0.05)
    assert our_programs() == before


def programs_held_by_other_processes() -> set[int]:
    held = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fdinfo"):
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    for line in info:
                        if line.startswith("prog_id:"):
                            held.add(int(line.split()[1]))
        except OSError:
            continue
    return held


SIGINT_SCRIPT = textwrap.dedent(
    """
    import sys, bpfnb
    src = sys.stdin.read()
    t = bpfnb.capture(src, duration=None, interval=0.1,
                      on_interval=lambda run, e: print("ATTACHED", flush=True) if e < 0.15 else None)
    print("STOPPED_BY", t.meta["stopped_by"], flush=True)
    print("ROWS", int(t.map("counts")["value"].sum()), flush=True)
    from bpfnb import system
    print("LEFT", sum(system.own_bpf_objects().values()), flush=True)
    """
)


def test_sigint_returns_partial_trace_promptly(kernel):
    proc = subprocess.Popen([sys.executable, "-c", SIGINT_SCRIPT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    proc.stdin.write(SMALL)
    proc.stdin.close()
    line = proc.stdout.readline()
    assert line.strip() == "ATTACHED", line
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    proc.wait(timeout=30)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 0, out
    assert "STOPPED_BY interrupt" in out
    rows = int(out.split("ROWS")[1].split()[0])
    assert rows > 0  # what was captured before the interrupt comes back
    assert elapsed < 3.0, f"took {elapsed:.1f} s to stop after SIGINT"
    assert "LEFT 0" in out, out
