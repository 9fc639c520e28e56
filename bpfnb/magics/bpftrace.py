"""%%bpftrace: run a cell of bpftrace with the distribution's bpftrace, store a Trace.

    %%bpftrace [-d SECONDS] [-o VAR] [-p PID] [--quiet]
    tracepoint:syscalls:sys_enter_read { @bytes = hist(args->count); }

The cell goes to `bpfnb.bpftrace_run.run_bpftrace` (``bpftrace -f json -e
CELL``); its maps, histograms, stats and printf lines come back as the
frames of a Trace (see bpfnb.io.bpftrace), stored in VAR (default `_bpftrace`)
and displayed like a %%bpf capture. bpftrace's own error messages are shown
without a Python traceback. Needs root (or CAP_BPF + CAP_PERFMON).
"""

from __future__ import annotations

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Float, Unicode

from .bpf import user_errors


@magics_class
class BpftraceMagics(Magics):
    """The %%bpftrace magic. Configure with %config BpftraceMagics.<option> = value."""

    duration = Float(5.0, help="default seconds to trace (-d); 0 = until the program exits or is interrupted"
                     ).tag(config=True)
    timeout = Float(60.0, help="seconds allowed for bpftrace to compile and attach").tag(config=True)
    default_var = Unicode("_bpftrace", help="variable the Trace is stored in when -o is not given"
                          ).tag(config=True)

    @magic_arguments()
    @argument("-d", "--duration", type=float, default=None,
              help="seconds to trace (default: BpftraceMagics.duration, 5); 0 = until the program "
                   "calls exit() or the cell is interrupted")
    @argument("-o", "--out", default=None, metavar="VAR",
              help="variable to store the Trace in (default _bpftrace)")
    @argument("-p", "--pid", type=int, default=None, help="passed to bpftrace as -p PID (uprobes, usdt)")
    @argument("--quiet", action="store_true", help="store the Trace without displaying it")
    @cell_magic
    def bpftrace(self, line, cell):
        """Run the cell with bpftrace (JSON output), store and show the Trace."""
        args = parse_argstring(self.bpftrace, line)
        duration = self.duration if args.duration is None else args.duration
        extra = ["-p", str(args.pid)] if args.pid is not None else []
        with user_errors():
            from ..bpftrace_run import run_bpftrace

            trace = run_bpftrace(cell, duration=duration or None, timeout=self.timeout, extra_args=extra)
        self.shell.user_ns[args.out or self.default_var] = trace
        if not args.quiet:
            display(trace)
