"""Line magics for the tool library: %bpf_tool, %bpf_trace, %bpf_argdist.

    %bpf_tool [-o VAR] [--quiet] NAME [tool options]      e.g. %bpf_tool ext4slower --min-ms 1 -d 10
    %bpf_trace [-d S] [-p PID] [-M N] [-o VAR] 'PROBE' ['PROBE' ...]
    %bpf_argdist [-d S] [-p PID] [-C] [-o VAR] 'SPEC'

Each parses its line only, calls bpfnb.tools.NAME, stores the Trace in VAR
(default `_bpf`) and displays it. Register with
`ipython.register_magics(ToolMagics)`.
"""

from __future__ import annotations

import argparse

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .bpf import user_errors

DEFAULT_VAR = "_bpf"


def _unquote(text: str) -> str:
    """IPython's magic-line splitting keeps quotes; drop one outer pair."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _pop_out(options: list[str]) -> tuple[list[str], str | None, bool]:
    """Take -o/--out VAR and --quiet out of a tool's option list (tools have neither)."""
    rest, var, quiet, i = [], None, False, 0
    while i < len(options):
        item = options[i]
        if item in ("-o", "--out") and i + 1 < len(options):
            var, i = options[i + 1], i + 2
            continue
        if item == "--quiet":
            quiet = True
        else:
            rest.append(item)
        i += 1
    return rest, var, quiet


@magics_class
class ToolMagics(Magics):
    """%bpf_tool, %bpf_trace and %bpf_argdist."""

    def _store(self, trace, var: str | None, quiet: bool) -> None:
        self.shell.user_ns[var or DEFAULT_VAR] = trace
        if quiet:
            return
        display(trace)
        tool = trace.meta.get("tool", {})
        if tool.get("note"):
            print(f"{tool.get('name', 'tool')}: {tool['note']}")

    @magic_arguments()
    @argument("-o", "--out", default=None, metavar="VAR", help="variable to store the Trace in (default _bpf)")
    @argument("--quiet", action="store_true", help="store the Trace without displaying it")
    @argument("name", help="the tool: see bpfnb.tools.available()")
    @argument("options", nargs=argparse.REMAINDER,
              help="the tool's options, e.g. --min-ms 1 -d 10 (`%%bpf_tool NAME --help` lists them)")
    @line_magic
    def bpf_tool(self, line):
        """Run a tool of bpfnb.tools with its options; store and show the Trace."""
        args = parse_argstring(self.bpf_tool, line)
        options, var, quiet = _pop_out([_unquote(o) for o in args.options])
        with user_errors():
            from ..tools import get
            from ..tools.cli import parse_tool_args

            fn = get(args.name)
            try:
                positional, kwargs, duration = parse_tool_args(args.name, options, prog=f"%bpf_tool {args.name}")
            except SystemExit:    # --help printed the options
                return
            trace = fn(*positional, duration=duration or None, **kwargs)
        self._store(trace, var or args.out, quiet or args.quiet)

    @magic_arguments()
    @argument("-d", "--duration", type=float, default=5.0, help="seconds to trace (0: until interrupted)")
    @argument("-p", "--pid", type=int, default=None, help="only this process")
    @argument("-M", "--max-events", type=int, default=None, help="stop after this many events")
    @argument("-o", "--out", default=None, metavar="VAR", help="variable to store the Trace in (default _bpf)")
    @argument("--quiet", action="store_true", help="store the Trace without displaying it")
    @argument("probes", nargs="+", metavar="PROBE",
              help='a bcc trace probe in quotes, e.g. \'t:syscalls:sys_enter_read "%%d", args->count\'')
    @line_magic
    def bpf_trace(self, line):
        """bcc-style trace one-liners: one row per event with a formatted message."""
        args = parse_argstring(self.bpf_trace, line)
        with user_errors():
            from ..tools.trace import trace

            result = trace(*[_unquote(p) for p in args.probes], duration=args.duration or None, pid=args.pid,
                           max_events=args.max_events)
        self._store(result, args.out, args.quiet)

    @magic_arguments()
    @argument("-d", "--duration", type=float, default=5.0, help="seconds to trace (0: until interrupted)")
    @argument("-p", "--pid", type=int, default=None, help="only this process")
    @argument("-C", "--count", action="store_true", help="count distinct values instead of a histogram")
    @argument("-H", "--histogram", action="store_true", help="a log2 histogram (the default)")
    @argument("-o", "--out", default=None, metavar="VAR", help="variable to store the Trace in (default _bpf)")
    @argument("--quiet", action="store_true", help="store the Trace without displaying it")
    @argument("spec", metavar="SPEC", help="a bcc argdist spec in quotes, e.g. 't:syscalls:sys_enter_read():u64:args->count'")
    @line_magic
    def bpf_argdist(self, line):
        """bcc-style argdist: a value's histogram (-H, default) or counts (-C) at a probe."""
        args = parse_argstring(self.bpf_argdist, line)
        with user_errors():
            from ..tools.argdist import argdist

            result = argdist(_unquote(args.spec), histogram=not args.count, duration=args.duration or None,
                             pid=args.pid)
        self._store(result, args.out, args.quiet)
