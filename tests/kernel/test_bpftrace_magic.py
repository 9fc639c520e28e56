"""%%bpftrace in a real InteractiveShell, running the real bpftrace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest

import bpfnb
from bpfnb.bpftrace_run import BPFTRACE

pytestmark = pytest.mark.kernel

HAVE_BPFTRACE = os.path.exists(BPFTRACE) or shutil.which("bpftrace") is not None
needs_bpftrace = pytest.mark.skipif(
    os.geteuid() != 0 or not HAVE_BPFTRACE,
    reason="needs root and bpftrace (run `make setup` as root)",
)

SIZE, COUNT = 1234, 17   # a read size nothing else on the machine uses


@pytest.fixture
def ip(ipython):
    """The suite's shared InteractiveShell (tests/conftest.py), bpfnb loaded."""
    return ipython


def _reader():
    """A process that reads COUNT x SIZE bytes from /dev/zero once released."""
    code = (f"import os,sys; sys.stdin.read(1); fd=os.open('/dev/zero', os.O_RDONLY)\n"
            f"for _ in range({COUNT}): os.read(fd, {SIZE})\n")
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)


@needs_bpftrace
def test_cell_stores_trace_with_the_workloads_counts(ip, capsys):
    proc = _reader()
    # released once bpftrace has had time to attach (it compiles in well under 2 s here)
    threading.Timer(2.0, lambda: (proc.stdin.write(b"x"), proc.stdin.flush())).start()
    result = ip.run_cell(
        f"%%bpftrace -d 4 -o bt\n"
        f"tracepoint:syscalls:sys_enter_read /pid == {proc.pid}/ {{ @reads[args->count] = count(); "
        f"@sizes = hist(args->count); }}\n"
    )
    proc.wait(10)
    assert result.success, result.error_in_exec
    t = ip.user_ns["bt"]
    assert isinstance(t, bpfnb.Trace)
    reads = t.map("@reads")
    assert reads.loc[reads["count_key"] == SIZE, "value"].tolist() == [COUNT]
    sizes = t.hist("@sizes")
    assert sizes.loc[sizes["low"] == 1024, "count"].tolist() == [COUNT]
    assert t.meta["tool"] == "bpftrace" and t.meta["stopped_by"] == "duration"
    shown = capsys.readouterr().out
    assert "@reads" in shown and "@sizes" in shown


@needs_bpftrace
def test_default_variable_and_quiet(ip, capsys):
    result = ip.run_cell('%%bpftrace -d 0 --quiet\nBEGIN { printf("hello %d\\n", 42); exit(); }\n')
    assert result.success, result.error_in_exec
    t = ip.user_ns["_bpftrace"]
    assert t.events("printf")["message"].tolist() == ["hello 42"]
    assert t.meta["stopped_by"] == "exit"
    assert "hello" not in capsys.readouterr().out


def _shown(ip, cell, capsys):
    result = ip.run_cell(cell)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


@needs_bpftrace
def test_syntax_error_shows_bpftraces_message_without_traceback(ip, capsys):
    result, shown = _shown(ip, "%%bpftrace -d 1\ntracepoint:syscalls:sys_enter_read { @x = count( }\n", capsys)
    assert not result.success
    assert "CompileError" in shown and "syntax error" in shown
    assert "Traceback" not in shown


@needs_bpftrace
def test_unknown_tracepoint_names_it_and_suggests(ip, capsys):
    result, shown = _shown(ip, "%%bpftrace -d 1\ntracepoint:sched:sched_swtich { @ = count(); }\n", capsys)
    assert not result.success
    assert "AttachError" in shown and "sched_swtich" in shown and "sched:sched_switch" in shown
    assert "Traceback" not in shown


def test_help_lists_options(ip):
    doc = ip.find_cell_magic("bpftrace").__doc__
    for option in ("-d", "-o", "-p", "--quiet"):
        assert option in doc


def test_bad_option_is_a_usage_error(ip, capsys):
    result, shown = _shown(ip, "%%bpftrace --nope\nBEGIN { exit(); }\n", capsys)
    assert not result.success
    assert "Traceback" not in shown


def test_config_sets_the_default_duration_and_variable(ip):
    magics = ip.find_cell_magic("bpftrace").__self__
    ip.run_line_magic("config", "BpftraceMagics.duration = 0.5")
    ip.run_line_magic("config", "BpftraceMagics.default_var = 'bt_last'")
    try:
        assert (magics.duration, magics.default_var) == (0.5, "bt_last")
    finally:
        ip.run_line_magic("config", "BpftraceMagics.duration = 5.0")
        ip.run_line_magic("config", "BpftraceMagics.default_var = '_bpftrace'")
