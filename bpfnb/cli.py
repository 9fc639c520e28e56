"""The `bpfnb` command line.

    bpfnb doctor                          what works on this machine, and fixes
    bpfnb capture PROG.c -d 5 --out DIR   trace a BPF C file, save the Trace, print a summary
    bpfnb show DIR                        print the summary of a saved Trace
"""

from __future__ import annotations

import argparse
import sys

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
    return parser


COMMANDS = {"doctor": _doctor, "capture": _capture, "show": _show}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BpfnbError as exc:
        print(f"bpfnb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
