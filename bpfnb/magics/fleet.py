"""%%bpf_fleet: the %%bpf cell on every worker of a Dask cluster.

    %%bpf_fleet [--client VAR] [-w WORKER ...] [-d SECONDS] [-D NAME=VALUE ...] [-p PID] [-a SPEC ...] [-o VAR]
    <BPF C, or a tool name such as runqlat>

The Client is the variable named by --client, else the only
dask.distributed.Client in the notebook's namespace, else the current one.
The merged Trace (a `host` column in every frame) is stored in VAR
(default `_bpf`); the cell shows it and a per-host summary (failures too).

`%%bpf --fleet [VAR]` is meant to call run_cell() below; until bpf.py
grows that option, %%bpf_fleet is the way in.
"""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .bpf import parse_defines, user_errors


def find_client(shell, name: str | None):
    """The Client named `name` in the namespace, or the only one there, or the current one."""
    try:
        from distributed import Client, get_client
    except ImportError:
        raise UsageError("the fleet needs Dask: pip install bpfnb[fleet]") from None
    ns = shell.user_ns
    if name:
        if not isinstance(ns.get(name), Client):
            raise UsageError(f"--client {name}: no dask.distributed.Client named {name!r} in this notebook")
        return ns[name]
    found = [k for k, v in ns.items() if isinstance(v, Client) and not k.startswith("_")]
    if len(found) == 1:
        return ns[found[0]]
    if len(found) > 1:
        raise UsageError(f"several Clients ({', '.join(found)}); name one with --client VAR")
    try:
        return get_client()
    except ValueError:
        raise UsageError("no Dask Client: run `from dask.distributed import Client; client = Client(...)` "
                         "first") from None


def run_cell(shell, cell: str, *, client=None, workers=None, duration=None, defines=None, pid=None,
             attach=None, out: str = "_bpf", quiet: bool = False, **options):
    """Capture `cell` (BPF C or a tool name) on the fleet; store and show the Trace."""
    import bpfnb.fleet as fleet

    text = cell.strip()
    is_tool = text.isidentifier()
    with user_errors():
        if is_tool:
            trace = fleet.capture(client, text, duration=duration, workers=workers,
                                  **({"pid": pid} if pid is not None else {}))
        else:
            trace = fleet.capture(client, cell, duration=duration, workers=workers, defines=defines or None,
                                  attach=attach or None, pid=pid, **options)
    shell.user_ns[out] = trace
    if not quiet:
        display(trace)
        display(fleet.summary(trace))
    return trace


@magics_class
class FleetMagics(Magics):
    @magic_arguments()
    @argument("--client", default=None, metavar="VAR", help="the variable holding the dask.distributed.Client")
    @argument("-w", "--worker", action="append", default=[], metavar="WORKER",
              help="a worker (address, host label or index) to trace on; repeatable; default all")
    @argument("-d", "--duration", type=float, default=5.0, help="seconds to trace on every worker")
    @argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE", help="a C define, repeatable")
    @argument("-p", "--pid", type=int, default=None, help="process of interest (the same pid on every host)")
    @argument("-a", "--attach", action="append", default=[], metavar="SPEC", help="an attach spec, repeatable")
    @argument("-o", "--out", default="_bpf", metavar="VAR", help="variable to store the Trace in")
    @argument("--quiet", action="store_true", help="store the Trace without displaying it")
    @cell_magic
    def bpf_fleet(self, line, cell):
        """Run the cell's BPF C (or a tool name) on every Dask worker at once; store the merged Trace."""
        args = parse_argstring(self.bpf_fleet, line)
        workers = [int(w) if w.isdigit() else w for w in args.worker] or None
        run_cell(self.shell, cell, client=find_client(self.shell, args.client), workers=workers,
                        duration=args.duration or None, defines=parse_defines(args.define), pid=args.pid,
                        attach=args.attach, out=args.out, quiet=args.quiet)


def load_ipython_extension(ipython) -> None:
    """Register %%bpf_fleet (bpfnb.magics.load_ipython_extension should call this)."""
    ipython.register_magics(FleetMagics)
