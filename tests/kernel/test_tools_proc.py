"""Process tools against workloads started by the test: execsnoop, opensnoop,
gethostlatency, runqlat."""

from __future__ import annotations

import os

import pytest

import bpfnb
from tests.kernel.test_tools_support import Released

pytestmark = pytest.mark.kernel


def test_execsnoop_sees_command_and_args(kernel):
    code = "import os\nos.execv('/bin/echo', ['/bin/echo', 'bpfnb-exec-marker', '--flag=42'])"
    with Released(code) as w:
        t = bpfnb.tools.execsnoop(duration=1.2, on_attach=w.release)
        w.wait()
    rows = t.events("execs")
    mine = rows[rows["pid"] == w.pid]
    assert len(mine) == 1, rows[["pid", "comm", "args"]]
    row = mine.iloc[0]
    assert row["filename"] == "/bin/echo"
    assert row["argv"] == ["/bin/echo", "bpfnb-exec-marker", "--flag=42"]
    assert row["args"] == "/bin/echo bpfnb-exec-marker --flag=42"
    assert row["comm"] == "echo" and row["ret"] == 0
    assert row["ppid"] == os.getpid()
    assert t.meta["tool"]["name"] == "execsnoop"
    assert "tracepoint:syscalls:sys_enter_execve" in t.meta["tool"]["attach"]


def test_execsnoop_failed_exec(kernel):
    code = "import os\ntry:\n    os.execv('/nonexistent/bpfnb', ['x'])\nexcept OSError:\n    pass"
    with Released(code) as w:
        t = bpfnb.tools.execsnoop(duration=1, failed=True, on_attach=w.release)
        w.wait()
    rows = t.events()
    mine = rows[rows["pid"] == w.pid]
    assert mine["filename"].tolist() == ["/nonexistent/bpfnb"]
    assert mine["ret"].tolist() == [-2]                      # -ENOENT
    assert (rows["ret"] != 0).all()


def test_opensnoop_sees_the_opened_path(kernel, tmp_path):
    target = tmp_path / "bpfnb-opened.txt"
    code = (f"import os\nfd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT, 0o600)\nos.close(fd)\n"
            "try:\n    os.open('/nonexistent/bpfnb-missing', os.O_RDONLY)\nexcept OSError:\n    pass\n")
    with Released(code) as w:
        t = bpfnb.tools.opensnoop(duration=1.2, pid=w.pid, on_attach=w.release)
        w.wait()
    rows = t.events("opens")
    assert set(rows["pid"]) == {w.pid}
    ok = rows[rows["path"] == str(target)]
    assert len(ok) == 1
    assert ok.iloc[0]["fd"] >= 0 and ok.iloc[0]["errno"] == 0
    assert "O_WRONLY" in ok.iloc[0]["flags_text"] and "O_CREAT" in ok.iloc[0]["flags_text"]
    missing = rows[rows["path"] == "/nonexistent/bpfnb-missing"]
    assert missing["errno"].tolist() == [2] and missing["fd"].tolist() == [-1]


def test_gethostlatency_times_getaddrinfo_localhost(kernel):
    code = "import socket\nsocket.getaddrinfo('localhost', 80)\n"
    with Released(code) as w:
        t = bpfnb.tools.gethostlatency(duration=1.5, pid=w.pid, on_attach=w.release)
        w.wait()
    rows = t.events("lookups")
    mine = rows[(rows["pid"] == w.pid) & (rows["func"] == "getaddrinfo")]
    assert mine["host"].tolist() == ["localhost"]
    assert mine.iloc[0]["lat_ms"] > 0 and mine.iloc[0]["ret"] == 0
    assert "uprobe:c:getaddrinfo" in t.meta["tool"]["attach"]


def test_runqlat_sees_latency_under_cpu_contention(kernel):
    spin = "import time\nend = time.time() + 1.0\nwhile time.time() < end:\n    pass\n"
    workers = [Released(spin) for _ in range(2 * (os.cpu_count() or 2))]
    try:
        def release_all():
            for w in workers:
                w.release()

        t = bpfnb.tools.runqlat(duration=1.5, pid=workers[0].pid, on_attach=release_all)
        for w in workers:
            w.wait()
    finally:
        for w in workers:
            w.__exit__()
    hist = t.hist("latency")
    assert hist.attrs["unit"] == "usecs"
    assert hist["count"].sum() >= 10, hist
    # twice as many spinners as CPUs: the tracked one waits whole time slices (ms)
    assert hist.loc[hist["count"] > 0, "high"].max() >= 1023, hist


def test_runqlat_per_process_histograms(kernel):
    spin = "import time\nend = time.time() + 0.6\nwhile time.time() < end:\n    pass\n"
    workers = [Released(spin) for _ in range(3)]
    try:
        t = bpfnb.tools.runqlat(duration=1, pids=True, milliseconds=True,
                                on_attach=lambda: [w.release() for w in workers])
    finally:
        for w in workers:
            w.__exit__()
    hist = t.hist()
    assert {"pid", "low", "high", "count"} <= set(hist.columns)
    assert hist.attrs["unit"] == "msecs"
    assert {w.pid for w in workers} & set(hist["pid"])


def test_execsnoop_marks_truncated_argument_lists(kernel):
    code = "import os\nos.execv('/bin/true', ['/bin/true'] + [str(i) for i in range(10)])"
    with Released(code) as w:
        t = bpfnb.tools.execsnoop(duration=1, max_args=4, on_attach=w.release)
        w.wait()
    row = t.events().set_index("pid").loc[w.pid]
    assert row["argv"] == ["/bin/true", "0", "1", "2"] and row["truncated"]
