"""`bpfnb report` and `bpfnb run`: reports from saved traces, tool options, progress.

The last test runs `bpfnb run runqlat` for real (root and bcc; skipped otherwise).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pandas as pd
import pytest

import bpfnb
from bpfnb.cli import Progress, build_parser, main
from tests.unit.test_report import synthetic_trace


def test_report_rebuilds_report_html_from_a_run_folder(tmp_path, capsys):
    synthetic_trace().save(tmp_path / "trace.bpfnb")
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert re.search(r"8 -&gt; 15\s+: 100", page) and "testhost" in page
    assert f"wrote the report {tmp_path / 'report.html'}" in capsys.readouterr().out


def test_report_of_a_trace_folder_goes_beside_it(tmp_path):
    saved = synthetic_trace().save(tmp_path / "run1.bpfnb")
    assert main(["report", saved]) == 0
    assert (tmp_path / "run1.html").is_file()
    assert main(["report", saved, "--out", str(tmp_path / "other.html")]) == 0
    assert "biosnoop on testhost" in (tmp_path / "other.html").read_text(encoding="utf-8")
    assert main(["report", saved, "--out", str(tmp_path / "t.html"), "--title", "Disk <study>"]) == 0
    assert "<h1>Disk &lt;study&gt;</h1>" in (tmp_path / "t.html").read_text(encoding="utf-8")


def test_report_of_a_folder_without_a_trace_says_what_to_pass(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no saved trace" in err and "bpfnb run" in err
    synthetic_trace().save(tmp_path / "a.bpfnb")
    synthetic_trace().save(tmp_path / "b.bpfnb")
    assert main(["report", str(tmp_path)]) == 2
    assert "2 saved traces (a.bpfnb, b.bpfnb)" in capsys.readouterr().err


@pytest.mark.skipif(not os.access(sys.executable, os.X_OK),
                    reason="this interpreter is not executable by this user (a venv on a private python)")
def test_report_from_the_console_script(tmp_path):
    synthetic_trace().save(tmp_path / "trace.bpfnb")
    done = subprocess.run([sys.executable, "-m", "bpfnb.cli", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.html").stat().st_size > 10_000


def _split(argv):
    """What main() hands to the tool: (parsed args, the words after TOOL it does not know)."""
    args, extra = build_parser().parse_known_args(argv)
    return args, extra


def test_run_passes_tool_options_and_positionals_through():
    args, extra = _split(["run", "trace", 't:syscalls:sys_enter_read "r"', "-d", "3", "--out", "d",
                          "-p", "42", "--max-events", "5"])
    assert (args.tool, args.duration, args.out) == ("trace", 3.0, "d")
    assert extra == ['t:syscalls:sys_enter_read "r"', "-p", "42", "--max-events", "5"]
    from bpfnb.tools.cli import parse_tool_args

    assert parse_tool_args("runqlat", ["--milliseconds", "-p", "42", "--interval", "0.5"])[:2] == (
        [], {"milliseconds": True, "pid": 42, "pids": False, "tids": False, "interval": 0.5})


def test_unknown_tool_option_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "runqlat", "--milisecond", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --milisecond" in err and "bpfnb run runqlat --help" in err
    assert not (tmp_path / "x").exists()


def test_run_help_lists_the_tools_options_and_out(capsys):
    assert main(["run", "biolatency", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--out DIR" in out and "--flags" in out and "--disks" in out
    assert main(["run", "biolatency"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err


def test_unknown_tool_is_an_error_with_suggestions(tmp_path, capsys):
    assert main(["run", "runqlatt", "-d", "1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "runqlatt" in err and "runqlat" in err
    assert not (tmp_path / "x").exists()


def test_other_commands_still_refuse_unknown_options():
    with pytest.raises(SystemExit):
        main(["show", "x", "--bogus"])


class _Stream(io.StringIO):
    def isatty(self):
        return False


def test_progress_prints_elapsed_and_remaining():
    stream = _Stream()
    progress = Progress("runqlat", 60, stream=stream, every=0.05)
    progress.start()
    time.sleep(0.3)
    progress.stop()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3
    assert all(re.fullmatch(r"bpfnb run runqlat: \d+ s traced, (59|60) s left", ln) for ln in lines)
    quiet = _Stream()
    short = Progress("runqlat", 2, stream=quiet, every=0.05)
    short.start()
    time.sleep(0.2)
    short.stop()
    assert quiet.getvalue() == ""


@pytest.mark.kernel
def test_run_runqlat_saves_the_trace_and_writes_the_report(kernel, tmp_path):
    if "runqlat" not in bpfnb.tools.names():
        pytest.skip("bpfnb.tools has no runqlat yet")
    out = tmp_path / "runq"
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    hog2 = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    hog3 = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        done = subprocess.run([sys.executable, "-m", "bpfnb.cli", "run", "runqlat", "--duration", "1",
                               "--out", str(out)], capture_output=True, text=True, timeout=120)
    finally:
        for proc in (hog, hog2, hog3):
            proc.kill()
            proc.wait()
    assert done.returncode == 0, done.stderr
    trace = bpfnb.load(out / "trace.bpfnb")
    hist = trace.hist("latency")
    assert hist["count"].sum() > 0 and hist.attrs["unit"] == "usecs"
    assert trace.meta["tool"]["name"] == "runqlat"
    assert 0.9 < trace.meta["end_wall"] - trace.meta["start_wall"] < 10
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "runqlat on" in page
    # the report's histogram text holds the saved counts
    total = int(hist["count"].sum())
    shown = sum(int(n) for n in re.findall(r"-&gt; \d+\s+: (\d+)", page))
    assert shown == total
    assert isinstance(hist, pd.DataFrame)
