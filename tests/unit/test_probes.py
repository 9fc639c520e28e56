"""Attach-spec parsing and the probes implied by bcc's naming conventions."""

import pytest

from bpfnb.errors import AttachSpecError
from bpfnb.probes import AttachSpec, convention_probes, parse_spec, parse_specs


@pytest.mark.parametrize(
    "text, kind, target, fn",
    [
        ("tracepoint:sched:sched_switch=on_switch", "tracepoint", ("sched", "sched_switch"), "on_switch"),
        ("t:block:block_rq_issue=f", "tracepoint", ("block", "block_rq_issue"), "f"),
        ("raw_tracepoint:sched_wakeup=w", "raw_tracepoint", ("sched_wakeup",), "w"),
        ("kprobe:vfs_read=r", "kprobe", ("vfs_read",), "r"),
        ("kretprobe:vfs_read=rr", "kretprobe", ("vfs_read",), "rr"),
        ("uprobe:c:malloc=on_malloc", "uprobe", ("c", "malloc"), "on_malloc"),
        ("uretprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:getaddrinfo=ret",
         "uretprobe", ("/usr/lib/x86_64-linux-gnu/libc.so.6", "getaddrinfo"), "ret"),
        ("usdt:1234:gc__start=g", "usdt", ("1234", "gc__start"), "g"),
        ("perf:cpu-clock:49=on_sample", "perf", ("cpu-clock", "49"), "on_sample"),
        ("  tracepoint : sched : sched_switch = f ", "tracepoint", ("sched", "sched_switch"), "f"),
    ],
)
def test_parse_valid_specs(text, kind, target, fn):
    spec = parse_spec(text)
    assert (spec.kind, spec.target, spec.fn) == (kind, target, fn)
    assert parse_spec(spec.label) == spec


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("tracepoint:sched:sched_switch", "names no function"),
        ("tracepiont:sched:sched_switch=f", "Did you mean: tracepoint"),
        ("tracepoint:sched_switch=f", "tracepoint:sched:sched_switch=on_switch"),
        ("uprobe:malloc=f", "uprobe:c:malloc"),
        ("perf:cpu-clok:49=f", "Did you mean: cpu-clock"),
        ("perf:cpu-clock:fast=f", "sampling frequency"),
        ("tracepoint:sched:sched_switch=1fn", "not a C function name"),
    ],
)
def test_parse_errors_name_the_problem(text, fragment):
    with pytest.raises(AttachSpecError) as err:
        parse_spec(text)
    assert fragment in str(err.value)
    assert text.strip() in str(err.value) or text in str(err.value)


def test_parse_specs_accepts_one_or_many():
    assert parse_specs(None) == []
    assert len(parse_specs("t:sched:sched_switch=f")) == 1
    spec = AttachSpec("tracepoint", ("a", "b"), "f")
    assert parse_specs([spec, "rt:sched_switch=g"])[0] is spec


def test_conventions_found_in_source():
    source = """
    TRACEPOINT_PROBE(sched, sched_switch) { return 0; }
    RAW_TRACEPOINT_PROBE(sched_wakeup) { return 0; }
    int kprobe__vfs_read(struct pt_regs *ctx) { return 0; }
    int kretprobe__vfs_write(struct pt_regs *ctx) { return 0; }
    KFUNC_PROBE(do_sys_open) { return 0; }
    int helper(void) { return 0; }
    """
    found = {(s.kind, s.target, s.fn) for s in convention_probes(source)}
    assert found == {
        ("tracepoint", ("sched", "sched_switch"), "tracepoint__sched__sched_switch"),
        ("raw_tracepoint", ("sched_wakeup",), "raw_tracepoint__sched_wakeup"),
        ("kprobe", ("vfs_read",), "kprobe__vfs_read"),
        ("kretprobe", ("vfs_write",), "kretprobe__vfs_write"),
        ("fentry", ("do_sys_open",), "kfunc__do_sys_open"),
    }
