"""Importers and exporters: saved traces, bpftrace JSON, bcc's printed histograms, folded stacks.

Names are loaded on first use, so importing one format does not import the others.
"""

from __future__ import annotations

import importlib

# public name -> module under bpfnb.io
_NAMES = {
    "save_trace": "native",
    "load": "native",
    "read_bpftrace": "bpftrace",
    "read_bcc_hist": "bcctext",
}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'bpfnb.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    globals()[name] = value
    return value
