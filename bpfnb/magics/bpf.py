"""%%bpf: compile a cell of BPF C, trace, and store the Trace in a variable.

    %%bpf [-d SECONDS] [-D NAME=VALUE ...] [-p PID] [-a ATTACH_SPEC ...] [-o VAR] [--live]

Defaults come from traitlets, so `%config BpfMagics.duration = 10` works.
"""

from __future__ import annotations

import contextlib

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Float, Int, Unicode

from ..errors import BpfnbError


@contextlib.contextmanager
def user_errors():
    """bpfnb errors become UsageErrors: the message, without a traceback."""
    try:
        yield
    except BpfnbError as exc:
        raise UsageError(f"{type(exc).__name__}: {exc}") from None


def parse_defines(items) -> dict:
    defines = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not name:
            raise UsageError(f"-D {item!r}: expected NAME=VALUE, e.g. -D TARGET=1234")
        defines[name] = _number_or_text(value) if sep else None
    return defines


def _number_or_text(value: str):
    try:
        return int(value, 0)
    except ValueError:
        return value


@magics_class
class BpfMagics(Magics):
    """bpfnb's magics. Configure with %config BpfMagics.<option> = value."""

    duration = Float(5.0, help="default capture duration in seconds (-d)").tag(config=True)
    buffer_pages = Int(0, help="perf buffer pages per CPU; 0 sizes them for a 20,000-event burst").tag(config=True)
    event_limit = Int(10_000_000, help="stop a capture once an output holds this many events").tag(config=True)
    interval = Float(1.0, help="seconds between live view updates (--live)").tag(config=True)
    default_var = Unicode("_bpf", help="variable the Trace is stored in when -o is not given").tag(config=True)

    @magic_arguments()
    @argument("-d", "--duration", type=float, default=None,
              help="seconds to trace (default: BpfMagics.duration, 5); 0 = until interrupted or Stop")
    @argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE",
              help="a C preprocessor define, repeatable")
    @argument("-p", "--pid", type=int, default=None,
              help="process of interest: defines PID, filters uprobes/USDT, resolves user stacks")
    @argument("-a", "--attach", action="append", default=[], metavar="SPEC",
              help="an attach spec, e.g. tracepoint:sched:sched_switch=fn or uprobe:c:malloc=fn; repeatable")
    @argument("-o", "--out", default=None, metavar="VAR", help="variable to store the Trace in (default _bpf)")
    @argument("--live", action="store_true", help="update a histogram/heat map while tracing, with a Stop button")
    @argument("--heatmap", action="store_true",
              help="read and clear histograms every interval: trace.hist() gets a time column")
    @argument("-i", "--interval", type=float, default=None, help="seconds between live updates / heat-map columns")
    @argument("--quiet", action="store_true", help="store the Trace without displaying it")
    @argument("--fleet", nargs="?", const="", default=None, metavar="CLIENT_VAR",
              help="trace on every worker of the notebook's dask.distributed Client (bpfnb.fleet)")
    @cell_magic
    def bpf(self, line, cell):
        """Compile the cell's BPF C, trace, detach, and store the Trace."""
        args = parse_argstring(self.bpf, line)
        duration = self.duration if args.duration is None else args.duration
        if args.fleet is not None:
            from .fleet import find_client, run_cell

            run_cell(self.shell, cell, client=find_client(self.shell, args.fleet or None),
                     duration=duration, defines=parse_defines(args.define), pid=args.pid,
                     attach=args.attach, out=args.out or self.default_var, quiet=args.quiet)
            return
        with user_errors():
            import bpfnb

            trace = bpfnb.capture(
                cell,
                duration=duration or None,
                defines=parse_defines(args.define),
                attach=args.attach or None,
                pid=args.pid,
                live=args.live,
                interval=args.interval or (self.interval if (args.live or args.heatmap) else None),
                hist_interval=args.heatmap,
                event_limit=self.event_limit or None,
                buffer_pages=self.buffer_pages or None,
            )
        self.shell.user_ns[args.out or self.default_var] = trace
        if not args.quiet:
            display(trace)

