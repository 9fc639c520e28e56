"""Tracepoint format files: the fields a tracepoint gives, with their C types."""

from __future__ import annotations

import os
import re

from .. import system

_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:\d+;\s*size:(?P<size>\d+);")


def fields(category: str, event: str) -> dict[str, str]:
    """{field name: declaration type} e.g. {"filename": "const char *", "comm": "char[16]",
    "name": "__data_loc char[]"}; {} when the format cannot be read."""
    tfs = system.tracefs()
    path = os.path.join(tfs or "", "events", category, event, "format")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for m in _FIELD.finditer(text):
        decl = m.group("decl").strip()
        arr = re.match(r"(.*?)\s*([A-Za-z_]\w*)\s*(\[[^\]]*\])$", decl)
        if arr:
            name, ctype = arr.group(2), f"{arr.group(1)}{arr.group(3)}"
        else:
            nm = re.match(r"(.*?)([A-Za-z_]\w*)$", decl)
            if not nm:
                continue
            name, ctype = nm.group(2), nm.group(1).strip()
        if not name.startswith("common_"):
            out[name] = ctype
    return out


def string_kind(ctype: str, category: str) -> str:
    """How to read a string field: 'data_loc', 'array', 'user' or 'kernel' pointer."""
    if ctype.startswith("__data_loc"):
        return "data_loc"
    if "[" in ctype:
        return "array"
    return "user" if category == "syscalls" else "kernel"
