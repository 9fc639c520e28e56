"""The tool registry, the `bpfnb run` entry (run_tool_cli) and the tool magics."""

from __future__ import annotations

import os

import pytest
from IPython.testing import globalipapp
from IPython.testing.globalipapp import start_ipython

import bpfnb
from bpfnb.magics.tools import ToolMagics
from bpfnb.tools import ToolError, ToolUnavailableError
from bpfnb.tools.cli import parse_tool_args, run_tool_cli
from tests.kernel.test_tools_support import Released
from tests.workloads.runner import Workload

pytestmark = pytest.mark.kernel

MINE = ["execsnoop", "opensnoop", "ext4slower", "biolatency", "biosnoop", "cachestat", "tcpconnect",
        "tcpaccept", "tcpretrans", "tcplife", "gethostlatency", "runqlat", "trace", "argdist"]


def test_available_lists_every_tool_with_its_attach_points(kernel):
    table = bpfnb.tools.available()
    assert set(MINE + ["profile", "offcputime", "offwaketime"]) == set(table["tool"])
    rows = table.set_index("tool")
    for name in MINE:
        assert rows.loc[name, "available"], rows.loc[name, "problem"]
        assert rows.loc[name, "attach"]
    assert not any("kprobe" in rows.loc[n, "attach"] for n in MINE)   # none here
    for name in ("profile", "offcputime", "offwaketime"):   # other modules: listed, and a reason if not usable
        assert rows.loc[name, "available"] or rows.loc[name, "problem"]


def test_unknown_tool_names_the_closest(kernel):
    with pytest.raises(ToolError, match="Did you mean: runqlat"):
        bpfnb.tools.get("runqlatt")


def test_missing_tool_module_is_a_clear_error(kernel, monkeypatch):
    monkeypatch.setitem(bpfnb.tools.TOOLS, "offwaketime", "no_such_module_for_test")
    with pytest.raises(ToolUnavailableError, match="not installed"):
        bpfnb.tools.get("offwaketime")


def test_options_are_checked(kernel):
    with pytest.raises(ToolError, match="pid=-3"):
        bpfnb.tools.opensnoop(duration=1, pid=-3)
    with pytest.raises(ToolError, match="choose one"):
        bpfnb.tools.runqlat(duration=1, pids=True, tids=True)
    with pytest.raises(ToolError, match="no such block device"):
        bpfnb.tools.biosnoop(duration=1, disk="nosuchdisk0")
    with pytest.raises(ToolError, match="exactly one numeric value"):
        bpfnb.tools.argdist("t:syscalls:sys_enter_read():char*:$comm", histogram=True, duration=1)


def test_tool_meta_records_the_choice(kernel, workload_bin):
    with Workload(workload_bin, k_reads=3, read_size=100) as w:
        t = bpfnb.tools.opensnoop(duration=0.8, pid=w.pid, on_attach=w.release)
        w.wait()
    tool = t.meta["tool"]
    assert {"name", "attach", "measures", "differs_from_bcc"} <= set(tool)
    assert tool["name"] == "opensnoop" and tool["options"]["pid"] == w.pid
    assert "tracepoint:syscalls:sys_enter_openat" in tool["attach"]
    assert t.meta["start_wall"] <= t.meta["end_wall"]
    assert "/dev/zero" in set(t.events()["path"])
    assert str(t.events()["time"].dtype).startswith("datetime64")


def test_cli_parses_options_from_the_signature():
    assert parse_tool_args("ext4slower", ["--min-ms", "0.5", "-p", "7", "-d", "2"]) == \
        ([], {"min_ms": 0.5, "pid": 7}, 2.0)
    args, kwargs, _ = parse_tool_args("argdist", ["t:a:b():u64:args->x", "--no-histogram"])
    assert args == ["t:a:b():u64:args->x"] and kwargs["histogram"] is False
    args, kwargs, _ = parse_tool_args("trace", ["t:a:b", "t:c:d", "--max-events", "9"])
    assert args == ["t:a:b", "t:c:d"] and kwargs["max_events"] == 9
    assert parse_tool_args("biolatency", ["--disks", "--interval", "1"])[1]["disks"] is True


def test_run_tool_cli_saves_the_trace(kernel, tmp_path, capsys):
    out = tmp_path / "rq.bpfnb"
    assert run_tool_cli(["runqlat", "-d", "0.5", "--milliseconds", "--out", str(out)]) == 0
    assert "saved to" in capsys.readouterr().out
    loaded = bpfnb.load(out)
    assert loaded.meta["tool"]["name"] == "runqlat"
    assert loaded.meta["tool"]["options"]["milliseconds"] is True
    assert run_tool_cli(["ext4slower", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ip():
    from IPython.core.interactiveshell import InteractiveShell

    # another test may already have made the process's one InteractiveShell
    if InteractiveShell.initialized():
        shell = InteractiveShell.instance()
    else:
        start_ipython()                        # returns the shell only on its first call
        shell = globalipapp.get_ipython()
    shell.register_magics(ToolMagics)
    return shell


def looping(code: str, seconds: float = 6):
    """A child repeating `code` for a while: a magic has no on_attach hook, so the
    workload runs long enough to cover compile, attach and the capture."""
    w = Released(f"import os, time\nend = time.time() + {seconds}\nwhile time.time() < end:\n"
                 + "".join(f"    {line}\n" for line in code.splitlines()) + "    time.sleep(0.02)\n")
    w.release()
    return w


def test_bpf_tool_magic_stores_the_trace(ip, kernel):
    with looping("os.close(os.open('/dev/zero', os.O_RDONLY))") as w:
        result = ip.run_cell(f"%bpf_tool opensnoop -d 1 -p {w.pid} -o opens --quiet")
    assert result.success, result.error_in_exec
    opens = ip.user_ns["opens"].events()
    assert set(opens["path"]) == {"/dev/zero"} and set(opens["pid"]) == {w.pid}
    assert ip.user_ns["opens"].meta["tool"]["options"]["pid"] == w.pid


def test_bpf_trace_and_argdist_magics(ip, kernel):
    read = "fd = os.open('/dev/zero', os.O_RDONLY); os.read(fd, 30000); os.read(fd, 4096); os.close(fd)"
    with looping(read) as w:
        result = ip.run_cell(
            f"""%bpf_trace -d 1 -p {w.pid} -o tr --quiet 't:syscalls:sys_enter_read (args->count > 20000) "read %d bytes", args->count'""")
        assert result.success, result.error_in_exec
        result = ip.run_cell(
            f"%bpf_argdist -d 1 -p {w.pid} -C -o ad --quiet 't:syscalls:sys_enter_read():u64:args->count'")
        assert result.success, result.error_in_exec
    messages = ip.user_ns["tr"].events()["message"]
    assert len(messages) >= 5 and set(messages) == {"read 30000 bytes"}
    counts = dict(zip(ip.user_ns["ad"].map("counts")["count_value"], ip.user_ns["ad"].map("counts")["count"]))
    assert set(counts) == {30000, 4096} and abs(counts[30000] - counts[4096]) <= 1


def test_magic_errors_show_without_traceback(ip, kernel, capsys):
    result = ip.run_cell("""%bpf_trace 't:syscalls:sys_enter_read "%d %d", args->count'""")
    assert type(result.error_in_exec).__name__ == "UsageError"
    err = capsys.readouterr()
    text = err.out + err.err
    assert "2 conversion(s) but 1 argument(s)" in text and "^" in text and "Traceback" not in text
    result = ip.run_cell("%bpf_tool nosuchtool")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert os.environ.get("BPFNB_NEVER_SET") is None
