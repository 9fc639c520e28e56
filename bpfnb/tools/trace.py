"""trace: bcc-style one-liners that print a formatted message per event.

    bpfnb.tools.trace('t:syscalls:sys_enter_read (args->count > 20000) "read %d bytes", args->count')
    bpfnb.tools.trace('r:c:malloc (retval == 0) "malloc failed"', 'p:c:free "free %x", arg1')

See bpfnb.tools.oneliner for the probe syntax.
"""

from __future__ import annotations

import pandas as pd

from ..errors import CompileError
from . import _base, _probegen
from ._base import Route
from .oneliner import TraceSpec, column_name, parse_trace, python_format, translate

ROUTES = [
    Route(
        "the probes named in the spec",
        needs=(),
        measures="each event of the given tracepoints / uprobes / uretprobes (kprobes where the "
                 "kernel has them) that passes the filter, with the formatted message",
        differs_from_bcc="same probe syntax as bcc's trace for t:, p:, r:; USDT (u:), stack traces "
                         "(-K/-U), STRCMP filters and %f/%K/%U conversions are not supported. "
                         "Strings keep 80 bytes.",
    ),
]


def plan() -> Route:
    return ROUTES[0]


def trace(*probes: str, duration: float = 5, pid: int | None = None, max_events: int | None = None,
          on_attach=None):
    """Trace events with bcc's trace probe syntax; one row per event.

    Options (bcc's trace): pid (-p), max_events (-M: stop after this many).

    Returns a Trace with events "trace": ts, time, pid, tid, comm, probe (the
    spec's probe), message (the format applied), and one column per format
    argument (args->count -> "count", arg1 -> "arg1", retval -> "retval",
    other expressions -> "value1", ...). Rows of different probes share the
    frame; a column a probe does not have is empty there.
    """
    if not probes:
        raise _base.ToolError('trace needs at least one probe, e.g. \'t:syscalls:sys_enter_read "%d", args->count\'')
    specs = [parse_trace(p) for p in probes]
    _check_unique_tracepoints(specs)
    source, attach, columns = build(specs)
    route = Route(ROUTES[0].name, needs=(), measures=ROUTES[0].measures,
                  differs_from_bcc=ROUTES[0].differs_from_bcc)
    try:
        raw = _base.run("trace", source, route, duration=duration, defines=_base.pid_defines(pid),
                        attach=attach, uprobe_pid=pid, on_attach=on_attach, event_limit=max_events,
                        options=dict(probes=list(probes), pid=pid, max_events=max_events))
    except CompileError as exc:
        raise _probegen.explain(exc, [s.probe for s in specs], list(probes)) from None
    raw.meta["tool"]["attach"] = [a.rsplit("=", 1)[0] for a in attach]
    frames = [messages(raw.events(f"events{i}"), spec, columns[i]) for i, spec in enumerate(specs)]
    if len(frames) > 1:  # integer columns missing in some probes' rows stay integers
        frames = [f.astype({c: str(f[c].dtype).replace("u", "U").replace("int", "Int")
                            for c in f.columns if f[c].dtype.kind in "iu"}) for f in frames]
        frame = pd.concat(frames, ignore_index=True)
    else:
        frame = frames[0]
    frame = _base.ordered(_base.with_time(raw, frame), ["ts", "time", "pid", "tid", "comm", "probe", "message"])
    lost = {"trace": sum(raw.lost.get(f"events{i}", 0) for i in range(len(specs)))}
    return _base.result(raw, {("events", "trace"): frame}, lost=lost,
                        note_if_empty="no event of these probes passed the filter during the capture")


def _check_unique_tracepoints(specs: list[TraceSpec]) -> None:
    seen = set()
    for spec in specs:
        if spec.probe.kind == "tracepoint":
            if spec.probe.target in seen:
                raise _base.ToolError(f"{spec.probe.text} appears twice; combine the two into one probe")
            seen.add(spec.probe.target)


def build(specs: list[TraceSpec]) -> tuple[str, list[str], list[list[str]]]:
    """C source, attach specs and per-probe column names for the specs."""
    parts, attach, columns = [], [], []
    for i, spec in enumerate(specs):
        c, specs_i, cols = _probe_c(i, spec)
        parts.append(c)
        attach += specs_i
        columns.append(cols)
    return "#include <uapi/linux/ptrace.h>\n" + "\n".join(parts), attach, columns


def _probe_c(i: int, spec: TraceSpec) -> tuple[str, list[str], list[str]]:
    probe, fn = spec.probe, f"probe{i}"
    used: set = set()
    cols = [column_name(a, used, f"value{j + 1}") for j, a in enumerate(spec.args)]
    numbers = [j for j, c in enumerate(spec.conversions) if c != "s"]
    strings = [j for j, c in enumerate(spec.conversions) if c == "s"]
    fields = "".join(
        f"    {'s64' if spec.conversions[j] in 'dic' else 'u64'} a{j};\n" for j in numbers
    ) + "".join(f"    char a{j}[{_probegen.STR_LEN}];\n" for j in strings)
    head, attach = _probegen.header(probe, fn)
    uses_latency = "$latency" in " ".join(spec.args) + (spec.filter or "")
    before, latency_body, extra = (_probegen.latency_parts(probe, fn, uses_latency) if probe.is_return
                                   else ("", "", []))
    body = [latency_body,
            "    u64 id = bpf_get_current_pid_tgid();\n",
            "    if (BPFNB_SKIP_TGID(id >> 32)) return 0;\n"]
    if spec.filter:
        body.append(f"    if (!({translate(spec.filter, probe, (), spec.text)})) return 0;\n")
    body += [
        "    int zero = 0;\n",
        f"    struct ev{i}_t *e = scratch{i}.lookup(&zero);\n",
        "    if (!e) return 0;\n",
        "    e->ts = bpf_ktime_get_ns();\n    e->pid = id >> 32;\n    e->tid = (u32)id;\n",
        "    bpf_get_current_comm(&e->comm, sizeof(e->comm));\n",
    ]
    for j in numbers:
        ctype = "s64" if spec.conversions[j] in "dic" else "u64"
        body.append(f"    e->a{j} = ({ctype})({translate(spec.args[j], probe, (), spec.text)});\n")
    for j in strings:
        body.append(f"    {_probegen.read_string(f'e->a{j}', spec.args[j], probe, (), spec.text)}\n")
    body.append(f"    events{i}.perf_submit(ctx, e, sizeof(*e));\n    return 0;\n}}\n")
    c = (f"struct ev{i}_t {{\n    u64 ts;\n    u32 pid;\n    u32 tid;\n    char comm[16];\n{fields}}};\n"
         f"BPF_PERCPU_ARRAY(scratch{i}, struct ev{i}_t, 1);\nBPF_PERF_OUTPUT(events{i});\n"
         + before + head + "".join(body))
    return c, extra + attach, cols


def messages(frame: pd.DataFrame, spec: TraceSpec, cols: list[str]) -> pd.DataFrame:
    """Raw events of one probe -> rows with `probe`, `message` and named argument columns."""
    frame = frame.rename(columns={f"a{j}": col for j, col in enumerate(cols)})
    if spec.format is None:
        text = [""] * len(frame)
    else:
        fmt = python_format(spec.format)
        values = [frame[c].tolist() for c in cols]
        text = [_apply(fmt, tuple(v[k] for v in values)) for k in range(len(frame))]
    frame.insert(0, "message", pd.Series(text, index=frame.index, dtype=object))
    frame.insert(0, "probe", spec.probe.text)
    return frame


def _apply(fmt: str, values: tuple) -> str:
    try:
        return fmt % values
    except (TypeError, ValueError, OverflowError):
        return fmt + " " + " ".join(map(str, values))
