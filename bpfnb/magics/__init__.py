"""IPython magics: thin wrappers that parse the magic line, call the library,
store and display the result. Loaded by `%load_ext bpfnb`."""

from __future__ import annotations


def load_ipython_extension(ipython) -> None:
    from .bpf import BpfMagics
    from .bpftrace import BpftraceMagics
    from .fleet import FleetMagics
    from .tools import ToolMagics

    magics = BpfMagics(shell=ipython)
    ipython.register_magics(magics)
    ipython.register_magics(BpftraceMagics)
    ipython.register_magics(ToolMagics)
    ipython.register_magics(FleetMagics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


def unload_ipython_extension(ipython) -> None:
    magics = ipython.magics_manager.registry.get("BpfMagics")
    if magics is not None and magics in ipython.configurables:
        ipython.configurables.remove(magics)
