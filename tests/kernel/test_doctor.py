"""`bpfnb doctor` tells the truth: each claim checked against a real attempt."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bpfnb import system
from bpfnb.cerrors import captured_stderr

pytestmark = pytest.mark.kernel


def _attaches(source: str, attach=None) -> bool:
    from bcc import BPF

    try:
        with captured_stderr():
            b = BPF(text=source)
            if attach:
                attach(b)
        b.cleanup()
        return True
    except Exception:
        return False


def test_kprobe_claim_matches_reality(kernel):
    works = _attaches("int kprobe__vfs_read(void *ctx) { return 0; }")
    assert system.kprobes_available() == works


def test_fentry_claim_matches_reality(kernel):
    works = _attaches("KFUNC_PROBE(vfs_read) { return 0; }")
    assert system.fentry_available() == works


def test_tracepoint_and_perf_claims_match_reality(kernel):
    assert system.tracefs() is not None
    assert _attaches("TRACEPOINT_PROBE(sched, sched_switch) { return 0; }")
    assert system.perf_events_available()


def test_doctor_command_prints_every_check(kernel):
    out = subprocess.run([sys.executable, "-m", "bpfnb.cli", "doctor"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("bcc", "privileges", "tracefs", "kernel headers", "BTF", "kprobes",
                 "fentry", "uprobes", "ring buffer", "perf events"):
        assert name in out.stdout
    kprobe_line = next(line for line in out.stdout.splitlines() if "kprobes" in line)
    assert ("[ok" in kprobe_line) == system.kprobes_available()


def test_map_walk_claim_matches_reality(kernel):
    import bpfnb
    from bpfnb import mapdump, maps

    with bpfnb.Program("BPF_ARRAY(a, u64, 8);") as prog:
        table = prog.bpf["a"]
        try:
            keys, _ = mapdump.dump(table.map_fd, maps.key_dtype(table), maps.value_dtype(table), 8)
            works = keys.tolist() == list(range(8))
        except OSError:
            works = False
    assert system.map_walk_available() == works
