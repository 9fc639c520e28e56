"""The `bpfnb` command line.

    bpfnb doctor                          what works on this machine, and fixes
    bpfnb capture PROG.c -d 5 --out DIR   trace a BPF C file, save the Trace, print a summary
    bpfnb show DIR                        print the summary of a saved Trace
    bpfnb run TOOL [--OPTION ...] -d S --out DIR
                                          run a tool (bpfnb.tools), save DIR/trace.bpfnb
                                          and write DIR/report.html
    bpfnb report DIR                      rebuild DIR/report.html from the saved Trace
"""

from __future__ import annotations

import argparse
import inspect
import sys
import threading
import time
from pathlib import Path

from .errors import BpfnbError


def _doctor(args) -> int:
    from .system import checks, doctor_text

    print(doctor_text())
    essential = {"bcc", "privileges", "tracefs"}
    return 0 if all(c.ok for c in checks() if c.name in essential) else 1


def _defines(items) -> dict:
    from .magics.bpf import parse_defines

    return parse_defines(items)


def _capture(args) -> int:
    from pathlib import Path

    from .capture import capture
    from .display import trace_text

    source = Path(args.program).read_text()
    trace = capture(source, duration=args.duration or None, defines=_defines(args.define),
                    attach=args.attach or None, pid=args.pid)
    print(trace_text(trace))
    if args.out:
        path = trace.save(args.out)
        print(f"saved to {path}")
    return 0


def _show(args) -> int:
    from .display import trace_text
    from .io.native import load

    print(trace_text(load(args.path)))
    return 0


TRACE_DIR = "trace.bpfnb"  # the saved Trace inside a `bpfnb run` folder


def _run(args) -> int:
    from .display import trace_text
    from .report import write_report

    if args.help or not args.out:
        return _run_help(args)
    trace = _run_tool(args.tool, args.tool_args, args.duration)
    out = Path(args.out)
    path = trace.save(out / TRACE_DIR)
    report = write_report(trace, out)
    print(trace_text(trace))
    print(f"saved the trace to {path}\nwrote the report {report}")
    return 0


def _run_help(args) -> int:
    from .tools.cli import tool_parser

    text = tool_parser(args.tool, f"bpfnb run {args.tool}", duration_default=args.duration).format_help()
    print(text.replace("[-d DURATION]", "[-d DURATION] --out DIR", 1))
    print("  --out DIR             folder for the saved trace (DIR/trace.bpfnb) and DIR/report.html")
    if not args.help:
        print("bpfnb run: --out DIR is required", file=sys.stderr)
        return 2
    return 0


def _run_tool(name: str, tool_args: list[str], duration: float):
    """Call bpfnb.tools.NAME(duration=..., **options from --option words), with progress."""
    from .tools import get
    from .tools.cli import parse_tool_args

    function = get(name)
    positional, options, _ = parse_tool_args(name, tool_args, prog=f"bpfnb run {name}")
    progress = Progress(name, duration)
    if "on_attach" in inspect.signature(function).parameters:
        options["on_attach"] = progress.start
    else:
        progress.start()
    try:
        return function(*positional, duration=duration or None, **options)
    finally:
        progress.stop()


class UsageError(BpfnbError):
    """A command line that cannot work as given."""


class Progress:
    """Elapsed / remaining seconds on stderr while a tool traces (every second on
    a terminal, every 10 s otherwise); silent for runs of 3 s or less."""

    def __init__(self, name: str, duration: float, stream=None, every: float | None = None):
        self.name, self.duration = name, duration
        self.stream = stream or sys.stderr
        self.every = every
        self._done = threading.Event()
        self._thread = None

    def start(self) -> None:
        if self._thread is not None or (self.duration and self.duration <= 3):
            return
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        tty = self.stream.isatty()
        while not self._done.wait(self.every or (1.0 if tty else 10.0)):
            elapsed = time.monotonic() - self._started
            left = f", {max(0.0, self.duration - elapsed):.0f} s left" if self.duration else " (Ctrl-C to stop)"
            self.stream.write(f"{chr(13) if tty else ''}bpfnb run {self.name}: {elapsed:.0f} s traced{left}"
                              f"{'' if tty else chr(10)}")
            self.stream.flush()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            if self.stream.isatty():
                self.stream.write("\n")


def _report(args) -> int:
    from .io.native import load
    from .report import write_report

    folder = Path(args.dir)
    saved = _saved_trace(folder)
    target = Path(args.out) if args.out else (
        folder.with_suffix(".html") if saved == folder else folder / "report.html")
    print(f"wrote the report {write_report(load(saved), target, title=args.title)}")
    return 0


def _saved_trace(folder: Path) -> Path:
    """The trace a report is built from: folder itself, folder/trace.bpfnb, or its only *.bpfnb."""
    if (folder / "meta.json").is_file():
        return folder
    if (folder / TRACE_DIR).is_dir():
        return folder / TRACE_DIR
    found = sorted(folder.glob("*.bpfnb")) if folder.is_dir() else []
    if len(found) == 1:
        return found[0]
    what = "no saved trace" if not found else f"{len(found)} saved traces ({', '.join(p.name for p in found)})"
    raise UsageError(f"{folder}: {what}; pass a folder written by `bpfnb run` (it holds {TRACE_DIR}) "
                     "or a .bpfnb trace folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bpfnb", description="Linux BPF tracing into DataFrames.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="what works on this machine and what to do about what does not")
    cap = sub.add_parser("capture", help="trace a BPF C program file and save the Trace")
    cap.add_argument("program", help="a file of BPF C (bcc dialect)")
    cap.add_argument("-d", "--duration", type=float, default=5.0, help="seconds (0: until Ctrl-C)")
    cap.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE")
    cap.add_argument("-a", "--attach", action="append", default=[], metavar="SPEC")
    cap.add_argument("-p", "--pid", type=int, default=None)
    cap.add_argument("--out", default=None, help="save the Trace to this .bpfnb folder")
    show = sub.add_parser("show", help="print the summary of a saved Trace")
    show.add_argument("path")
    run = sub.add_parser("run", help="run a tool, save its Trace and write an HTML report",
                         allow_abbrev=False, add_help=False)
    run.add_argument("tool", help="a tool of bpfnb.tools: runqlat, biolatency, execsnoop, ...")
    run.add_argument("-d", "--duration", type=float, default=10.0, help="seconds (0: until Ctrl-C)")
    run.add_argument("--out", metavar="DIR", help="folder for trace.bpfnb and report.html")
    run.add_argument("-h", "--help", action="store_true", help="the tool's options")
    report = sub.add_parser("report", help="rebuild the HTML report from a saved Trace")
    report.add_argument("dir", help="a folder written by `bpfnb run`, or a .bpfnb trace folder")
    report.add_argument("--out", default=None, help="the report file (default DIR/report.html)")
    report.add_argument("--title", default=None, help="the report's title (default: the tool and host)")
    return parser


COMMANDS = {"doctor": _doctor, "capture": _capture, "show": _show, "run": _run, "report": _report}


def main(argv=None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if args.command == "run":
        args.tool_args = extra
    elif extra:
        build_parser().parse_args(argv)  # exits with argparse's message
    try:
        return COMMANDS[args.command](args)
    except BpfnbError as exc:
        print(f"bpfnb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
