"""The tool library: bcc's everyday tools as functions that return Traces.

    import bpfnb
    t = bpfnb.tools.execsnoop(duration=5)
    t.events()                       # one row per exec()
    bpfnb.tools.available()          # every tool, and the attach points it uses here

Each tool lives in its own module (bpfnb/tools/NAME.py) and is imported on
first use. Every tool picks its attach points on the running kernel
(tracepoints first) and records the choice in `trace.meta["tool"]`; see
docs/tools.md for what each measures and how it differs from bcc's tool.
"""

from __future__ import annotations

import importlib

import pandas as pd

from ._base import ToolError, ToolUnavailableError

# tool name -> module (bpfnb.tools.<module>) and the function in it
TOOLS = {
    "execsnoop": "execsnoop",
    "opensnoop": "opensnoop",
    "ext4slower": "ext4slower",
    "biolatency": "biolatency",
    "biosnoop": "biosnoop",
    "cachestat": "cachestat",
    "tcpconnect": "tcpconnect",
    "tcpaccept": "tcpaccept",
    "tcpretrans": "tcpretrans",
    "tcplife": "tcplife",
    "gethostlatency": "gethostlatency",
    "runqlat": "runqlat",
    "profile": "profile",          # from the flame-graph work (issue 5)
    "offcputime": "offcputime",    # from the flame-graph work (issue 5)
    "offwaketime": "offwaketime",  # from the flame-graph work (issue 5)
    "trace": "trace",
    "argdist": "argdist",
}

__all__ = ["available", "get", "names", "ToolError", "ToolUnavailableError", *TOOLS]


def names() -> list[str]:
    """Every tool's name, in the talk's checklist order."""
    return list(TOOLS)


def _module(name: str):
    if name not in TOOLS:
        from ..errors import did_you_mean

        raise ToolError(f"no tool named {name!r}." + did_you_mean(name, TOOLS)
                        + f" The tools are: {', '.join(TOOLS)}.")
    try:
        module = importlib.import_module(f"{__name__}.{TOOLS[name]}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{TOOLS[name]}":
            raise
        raise ToolUnavailableError(
            f"the tool {name!r} is not installed in this bpfnb (no module bpfnb/tools/{TOOLS[name]}.py); "
            "it comes with the flame-graph work. Update bpfnb, or use bpfnb.capture with your own program."
        ) from None
    # importing bpfnb.tools.NAME binds the package attribute NAME to the module;
    # bpfnb.tools.NAME is the tool function
    if hasattr(module, name):
        globals()[name] = getattr(module, name)
    return module


def get(name: str):
    """The tool function `name` (e.g. get("runqlat")(duration=5))."""
    return getattr(_module(name), name)


def __getattr__(name: str):
    if name in TOOLS:
        fn = get(name)
        globals()[name] = fn
        return fn
    raise AttributeError(f"module 'bpfnb.tools' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(TOOLS))


def available() -> pd.DataFrame:
    """One row per tool: whether it runs on this kernel, the attach points it
    would use here, and what they measure (or what is missing)."""
    rows = []
    for name in TOOLS:
        row = {"tool": name, "available": False, "route": "", "attach": "", "measures": "", "problem": ""}
        try:
            module = _module(name)
            plan = getattr(module, "plan", None)
            if plan is None:
                row.update(available=True, problem="(this tool does not describe its attach points)")
            else:
                route = plan()
                row.update(available=True, route=route.name, measures=route.measures,
                           attach=", ".join(route.attach_points()) or "(the probes named in the spec)")
        except Exception as exc:  # a missing module or kernel feature: say which
            row["problem"] = str(exc)
        rows.append(row)
    return pd.DataFrame(rows)
