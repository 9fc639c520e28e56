"""What every tool shares: choosing attach points, running, recording the choice.

A tool module holds its BPF C and its post-processing; the parts below are
not repeated per tool:

- `Route`: one way to implement a tool (the probes it needs, what it
  measures, how that differs from bcc's tool). `choose(tool, routes)` takes
  the first route whose probes exist on this kernel, or raises a
  ToolUnavailableError naming the missing kernel feature.
- `run(...)`: compile, attach, call `on_attach` (so a caller can start its
  workload once the probes are live), wait for the duration (or an
  interrupt), detach, and return a Trace whose `meta["tool"]` records
  {"name", "attach", "measures", "differs_from_bcc", "options"}.
- `pid_defines(pid)` / `PID_FILTER_C`: the process filter as a define.
- `with_time(trace, frame)`: the common `time` column (wall clock) from `ts`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from .. import system
from ..errors import BpfnbError
from ..trace import Trace


class ToolError(BpfnbError):
    """A tool was called with options that cannot work."""


class ToolUnavailableError(BpfnbError):
    """This kernel lacks what a tool needs (a tracepoint, kprobes, uprobes, ...)."""


# C shared by every tool: the process filter, set with pid_defines(pid).
PID_FILTER_C = r"""
#ifndef FILTER_PID
#define FILTER_PID 0
#endif
/* true when a process filter is set and tgid is not that process */
#define BPFNB_SKIP_TGID(tgid) (FILTER_PID != 0 && (tgid) != FILTER_PID)
"""


def pid_defines(pid: int | None) -> dict:
    """The define that PID_FILTER_C reads; no define means every process."""
    if pid is None:
        return {}
    pid = int(pid)
    if pid <= 0:
        raise ToolError(f"pid={pid}: a process id is a positive integer (or None for every process)")
    return {"FILTER_PID": pid}


# -- routes ------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """One implementation of a tool on the probes named in `needs`.

    needs: "tracepoint:CAT:NAME", "kprobe:SYM", "uprobe:LIB:SYM" (any one of
    several symbols: "uprobe:c:getaddrinfo|gethostbyname").
    """

    name: str
    needs: tuple[str, ...]
    measures: str
    differs_from_bcc: str
    optional: tuple[str, ...] = field(default=())   # used when present, never required

    def missing(self) -> list[str]:
        return [n for n in self.needs if not have(n)]

    def attach_points(self) -> list[str]:
        return list(self.needs) + [n for n in self.optional if have(n)]


def have(need: str) -> bool:
    """Whether this kernel offers the probe named by a Route need."""
    kind, _, rest = need.partition(":")
    if kind == "tracepoint":
        category, _, event = rest.partition(":")
        return system.tracepoint_exists(category, event)
    if kind == "raw_tracepoint":
        tfs = system.tracefs()
        return bool(tfs) and any(os.path.isdir(os.path.join(tfs, "events", c, rest))
                                 for c in _listdir(os.path.join(tfs, "events")))
    if kind in ("kprobe", "kretprobe"):
        return system.kprobes_available() and _kernel_symbol(rest)
    if kind in ("uprobe", "uretprobe"):
        lib, _, syms = rest.partition(":")
        return system.uprobes_available() and any(user_symbol(lib, s) for s in syms.split("|"))
    raise ValueError(f"unknown route need {need!r}")


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _kernel_symbol(sym: str) -> bool:
    try:
        with open("/proc/kallsyms") as f:
            return any(line.split()[2] == sym for line in f if len(line.split()) >= 3)
    except OSError:
        return False


def user_symbol(lib: str, sym: str) -> bool:
    """Whether library `lib` ("c", a path) defines function `sym`."""
    try:
        from bcc import BPF

        path = lib.encode() if "/" in lib else BPF.find_library(lib)
        return bool(path) and BPF.get_user_addresses(path, sym.encode()) is not None
    except Exception:  # bcc raises plain Exceptions for unknown symbols
        return False


def choose(tool: str, routes: list[Route]) -> Route:
    """The first route whose probes all exist here; else a clear error."""
    for route in routes:
        if not route.missing():
            return route
    lines = [f"  - {r.name}: missing {', '.join(r.missing())}" for r in routes]
    raise ToolUnavailableError(
        f"{tool} cannot run on this kernel; every way it knows needs something absent:\n"
        + "\n".join(lines)
        + "\nRun `bpfnb doctor` to see which probe types work here."
    )


# -- running -----------------------------------------------------------------------
def run(tool: str, source: str, route: Route, *, duration: float | None, defines: dict | None = None,
        attach=None, uprobe_pid: int | None = None, on_attach=None, interval: float | None = None,
        on_interval=None, event_limit: int | None = None, hist_types: dict | None = None,
        options: dict | None = None, prepare=None, hist_interval: bool = False) -> Trace:
    """Compile, attach, run on_attach(), capture until duration/interrupt, detach.

    `prepare(program)` runs after compiling, before attaching (fill maps).
    hist_interval: read and clear histograms every `interval` (a `time` column).
    The Trace's meta["tool"] says which attach points were used and what
    they measure.
    """
    from ..capture import DEFAULT_EVENT_LIMIT, Run
    from ..program import Program

    with Program(PID_FILTER_C + source, defines=defines, attach=attach, pid=uprobe_pid,
                 hist_types=hist_types) as program:
        if prepare is not None:
            prepare(program)
        runner = Run(program, seconds(duration), event_limit=event_limit or DEFAULT_EVENT_LIMIT,
                     interval=interval, on_interval=on_interval,
                     hist_interval=hist_interval and interval is not None)
        attached(runner, on_attach)
        trace = runner.snapshot()
    trace.meta["tool"] = tool_meta(tool, route, options)
    return trace


def seconds(duration: float | None) -> float | None:
    """The Run's duration: None (until interrupted) for None or <= 0."""
    if duration is not None and duration <= 0:
        return None
    return duration


def attached(runner, on_attach=None) -> None:
    """Attach runner's probes, call on_attach(), wait for the end, detach."""
    runner.run_to_end(on_attach)


def tool_meta(tool: str, route: Route, options: dict | None = None) -> dict:
    return {
        "name": tool,
        "route": route.name,
        "attach": route.attach_points(),
        "measures": route.measures,
        "differs_from_bcc": route.differs_from_bcc,
        "options": {k: _jsonable(v) for k, v in (options or {}).items()
                    if k not in ("on_attach", "duration")},
    }


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def result(source_trace: Trace, frames: dict, *, lost: dict | None = None,
           note_if_empty: str | None = None) -> Trace:
    """A tool's Trace: its finished frames, the capture's lost counts and meta.

    frames: {(kind, name): DataFrame}. When every frame is empty, meta["tool"]
    gets a "note" saying so (a tool never returns nothing without a word).
    """
    trace = Trace(lost=lost if lost is not None else source_trace.lost, meta=dict(source_trace.meta))
    for (kind, name), frame in frames.items():
        trace.add(kind, name, frame)
    if note_if_empty and all(len(f) == 0 for f in frames.values()):
        trace.meta.setdefault("tool", {})["note"] = note_if_empty
    return trace


def with_time(trace: Trace, frame: pd.DataFrame, ts: str = "ts") -> pd.DataFrame:
    """frame with a wall-clock `time` column after `ts` (bpf_ktime_get_ns)."""
    frame = frame.copy()
    if ts in frame.columns and "monotonic_to_wall_ns" in trace.meta:
        frame.insert(frame.columns.get_loc(ts) + 1, "time", trace.wall_time(frame[ts]).to_numpy())
    return frame


def ordered(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The given columns first (those present), then the rest, rows by ts."""
    first = [c for c in columns if c in frame.columns]
    rest = [c for c in frame.columns if c not in first]
    frame = frame[first + rest]
    if "ts" in frame.columns:
        frame = frame.sort_values("ts", kind="stable")
    return frame.reset_index(drop=True)


def strings(rows) -> list[str]:
    """Rows of a u8[N][M] array (one C string per row) -> list of str."""
    return [bytes(row).split(b"\0", 1)[0].decode("utf-8", "replace") for row in rows]
