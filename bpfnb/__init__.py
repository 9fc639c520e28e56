"""bpfnb: Linux BPF tracing in notebooks.

    import bpfnb
    t = bpfnb.capture(C_TEXT, duration=5)   # -> Trace of DataFrames
    %load_ext bpfnb                          # then %%bpf cells

Public names are imported lazily so that `import bpfnb` is cheap and works
without bcc, IPython or matplotlib (analysis of saved traces needs none).
"""

from __future__ import annotations

import importlib

from .capture import capture  # eager: the submodule of the same name must not shadow it
from .errors import BpfnbError
from .trace import Trace

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None means the module itself
_LAZY = {
    "Program": ("bpfnb.program", "Program"),
    "load": ("bpfnb.io.native", "load"),
    "read_folded": ("bpfnb.io.folded", "read_folded"),
    "write_folded": ("bpfnb.io.folded", "write_folded"),
    "read_bpftrace": ("bpfnb.io.bpftrace", "read_bpftrace"),
    "read_bcc_hist": ("bpfnb.io.bcctext", "read_bcc_hist"),
    "run_bpftrace": ("bpfnb.bpftrace_run", "run_bpftrace"),
    "flamegraph": ("bpfnb.plot.flamegraph", "flamegraph"),
    "heatmap": ("bpfnb.plot.heatmap", "heatmap"),
    "format_hist": ("bpfnb.frames.histtext", "format_hist"),
    "tools": ("bpfnb.tools", None),
    "plot": ("bpfnb.plot", None),
    "frames": ("bpfnb.frames", None),
    "errors": ("bpfnb.errors", None),
    "fleet": ("bpfnb.fleet", None),
    "report": ("bpfnb.report", None),
}

__all__ = ["BpfnbError", "Trace", "capture", "load_ipython_extension", *_LAZY]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'bpfnb' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython):
    """%load_ext bpfnb: register %%bpf and friends (imported only now)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython):
    from .magics import unload_ipython_extension as unload

    unload(ipython)
