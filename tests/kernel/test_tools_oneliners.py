"""trace and argdist one-liners against the controlled workload
(tests/workloads/workload.c): exact messages, counts and histogram buckets."""

from __future__ import annotations

import pytest

import bpfnb
from bpfnb import system
from tests.workloads.runner import Workload

pytestmark = pytest.mark.kernel


def test_trace_formats_messages_and_keeps_fields(kernel, workload_bin):
    k, size = 7, 30000
    with Workload(workload_bin, k_reads=k, read_size=size) as w:
        t = bpfnb.tools.trace(
            't:syscalls:sys_enter_read (args->count > 20000) "read %d bytes", args->count',
            duration=1.2, pid=w.pid, on_attach=w.release)
        w.wait()
    rows = t.events("trace")
    assert rows["message"].tolist() == [f"read {size} bytes"] * k
    assert rows["count"].tolist() == [size] * k
    assert set(rows["pid"]) == {w.pid} and set(rows["comm"]) == {"bpfnb_workload"}
    assert set(rows["probe"]) == {"t:syscalls:sys_enter_read"}
    assert t.lost == {"trace": 0}
    assert t.meta["tool"]["attach"] == ["tracepoint:syscalls:sys_enter_read"]


def test_trace_uprobe_strings_and_several_probes(kernel, workload_bin):
    m = 5
    with Workload(workload_bin, k_reads=1, read_size=10, m_marker=m) as w:
        t = bpfnb.tools.trace(
            f'p:{workload_bin}:bpfnb_marker "marker %d", arg1',
            f'r:{workload_bin}:bpfnb_marker (retval > 3) "returned %u", retval',
            't:sched:sched_process_exit "exit %s", args->comm',
            duration=1.2, pid=w.pid, on_attach=w.release)
        w.wait()
    rows = t.events()
    by_probe = {p: g for p, g in rows.groupby("probe")}
    assert by_probe[f"p:{workload_bin}:bpfnb_marker"]["message"].tolist() == [f"marker {i}" for i in range(m)]
    assert by_probe[f"r:{workload_bin}:bpfnb_marker"]["retval"].tolist() == [4, 5]
    assert by_probe["t:sched:sched_process_exit"]["message"].tolist() == ["exit bpfnb_workload"]


def test_argdist_histogram_of_read_sizes(kernel, workload_bin):
    k = 37
    with Workload(workload_bin, k_reads=k, read_size=4096) as w:
        t = bpfnb.tools.argdist('t:syscalls:sys_enter_read():u64:args->count', histogram=True,
                                duration=1.2, pid=w.pid, on_attach=w.release)
        w.wait()
    hist = t.hist("dist")
    counts = {(int(r.low), int(r.high)): int(r.count) for r in hist.itertuples()}
    # the workload's read of stdin began before the probe was attached: not counted
    assert {b: c for b, c in counts.items() if c} == {(4096, 8191): k}
    assert hist.attrs["expression"] == "args->count"


def test_argdist_counts_with_filter_and_label(kernel, workload_bin):
    m = 5
    with Workload(workload_bin, m_marker=m) as w:
        t = bpfnb.tools.argdist(f'r:{workload_bin}:bpfnb_marker():int:$retval:$retval % 2 == 1#odd results',
                                histogram=False, duration=1.2, pid=w.pid, on_attach=w.release)
        w.wait()
    counts = t.map("counts")
    assert list(counts.columns) == ["retval", "count"]
    assert dict(zip(counts["retval"], counts["count"])) == {1: 1, 3: 1, 5: 1}
    assert counts.attrs["label"] == "odd results"


def test_argdist_latency_of_a_uprobe(kernel, workload_bin):
    with Workload(workload_bin, m_marker=20) as w:
        t = bpfnb.tools.argdist(f'r:{workload_bin}:bpfnb_marker():u64:$latency', duration=1.2,
                                pid=w.pid, on_attach=w.release)
        w.wait()
    hist = t.hist()
    assert hist["count"].sum() == 20 and hist.loc[hist["count"] > 0, "high"].min() > 0


def test_syntax_errors_point_at_the_position(kernel):
    with pytest.raises(bpfnb.BpfnbError) as info:
        bpfnb.tools.trace('t:syscalls:sys_enter_read "%d %d", args->count', duration=1)
    lines = str(info.value).splitlines()
    assert lines[-1].index("^") == lines[-2].index('"')


def test_unknown_field_lists_the_tracepoint_fields(kernel):
    with pytest.raises(bpfnb.errors.CompileError) as info:
        bpfnb.tools.argdist("t:syscalls:sys_enter_read():u64:args->cnt", duration=0.5)
    text = str(info.value)
    assert "t:syscalls:sys_enter_read():u64:args->cnt" in text
    assert "Did you mean: count?" in text and "fd, buf, count" in text


def test_kprobe_one_liner_names_the_missing_feature(kernel):
    if system.kprobes_available():
        pytest.skip("this kernel has kprobes")
    with pytest.raises(bpfnb.errors.AttachError, match="no kprobes"):
        bpfnb.tools.trace('p::vfs_read "read"', duration=0.5)
