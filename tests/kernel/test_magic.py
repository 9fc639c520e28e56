"""%%bpf in a real InteractiveShell."""

from __future__ import annotations

import pytest

import bpfnb
from tests.workloads.runner import Workload

pytestmark = pytest.mark.kernel


@pytest.fixture
def ip(ipython):
    return ipython


def test_cell_stores_trace_and_shows_summary(ip, kernel, workload_bin, capsys):
    with Workload(workload_bin, n_getppid=300, k_reads=9, read_size=1000) as w:
        import threading

        threading.Timer(0.8, w.release).start()
        result = ip.run_cell(
            f"%%bpf -d 2 -D TARGET={w.pid} -o t\n"
            "BPF_HISTOGRAM(sizes);\n"
            "BPF_HASH(calls, u32, u64);\n"
            "TRACEPOINT_PROBE(syscalls, sys_enter_read) {\n"
            "  if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;\n"
            "  sizes.increment(bpf_log2l(args->count)); return 0; }\n"
            "TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {\n"
            "  u32 pid = bpf_get_current_pid_tgid() >> 32;\n"
            "  if (pid != TARGET) return 0;\n"
            "  calls.increment(pid); return 0; }\n"
        )
        w.wait()
    assert result.success, result.error_in_exec
    t = ip.user_ns["t"]
    assert isinstance(t, bpfnb.Trace)
    assert t.map("calls")["value"].tolist() == [300]
    hist = t.hist("sizes")
    assert hist.loc[hist["low"] == 512, "count"].tolist() == [9]
    shown = capsys.readouterr().out
    assert "calls" in shown and "sizes" in shown and "512 -> 1023" in shown


def test_config_sets_defaults(ip, kernel):
    ip.run_line_magic("config", "BpfMagics.duration = 0.2")
    magics = ip.find_cell_magic("bpf").__self__
    assert magics.duration == 0.2
    result = ip.run_cell("%%bpf --quiet\nBPF_HASH(c, u32, u64);\n"
                         "TRACEPOINT_PROBE(sched, sched_switch) { u32 k = 0; c.increment(k); return 0; }")
    assert result.success
    t = ip.user_ns["_bpf"]
    assert t.meta["duration_requested"] == 0.2


def _error_of(ip, cell, capsys):
    result = ip.run_cell(cell)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


def test_compile_error_shows_the_line_without_traceback(ip, kernel, capsys):
    result, shown = _error_of(ip, "%%bpf -d 0.1\nBPF_HASH(c, u32, u64);\nint f(void *ctx) { return undefined_thing; }", capsys)
    assert not result.success
    assert "line 2:" in shown and "undefined_thing" in shown
    assert "Traceback" not in shown and "helpers.h" not in shown


def test_unknown_tracepoint_suggests_names(ip, kernel, capsys):
    result, shown = _error_of(ip, "%%bpf -d 0.1\nTRACEPOINT_PROBE(sched, sched_swtich) { return 0; }", capsys)
    assert not result.success
    assert "sched_swtich" in shown and "sched_switch" in shown
    assert "Traceback" not in shown


def test_help_lists_options(ip):
    doc = ip.find_cell_magic("bpf").__doc__
    for option in ("-d", "-D", "-p", "-a", "-o", "--live"):
        assert option in doc


def test_fleet_option_traces_on_every_worker(ip, kernel):
    distributed = pytest.importorskip("distributed", reason="the fleet extra (dask) is not installed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            ip.user_ns["fleet_client"] = client
            try:
                result = ip.run_cell("%%bpf --fleet fleet_client -d 0.5 -o f --quiet\nBPF_HASH(c, u32, u64);\n"
                                     "TRACEPOINT_PROBE(sched, sched_switch) { u32 k = 0; c.increment(k); return 0; }")
            finally:
                del ip.user_ns["fleet_client"]
    assert result.success, result.error_in_exec
    counts = ip.user_ns["f"].map("c")
    assert counts["host"].nunique() == 2
    assert (counts["value"] > 0).all()
