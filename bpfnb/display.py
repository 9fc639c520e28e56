"""The compact summary a Trace shows in a notebook (HTML) or a terminal (text):
outputs with row counts, lost events as a warning, first rows, histograms.
"""

from __future__ import annotations

import html

import pandas as pd

HEAD_ROWS = 5


def _hist_text(frame, name: str) -> str:
    try:
        from .frames.histtext import format_hist

        keys = [c for c in frame.columns if c not in ("low", "high", "count", "time")]
        return format_hist(frame, label=name, section_header=", ".join(keys) or "Bucket ptr")
    except Exception:  # a histogram we cannot draw as text still shows as a table
        return frame.to_string(index=False)


def warnings(trace) -> list[str]:
    out = []
    for name, lost in trace.lost.items():
        if lost:
            out.append(f"{lost:,} events lost from {name!r} (buffers full): enlarge the buffer "
                       "(buffer_pages=..., %config BpfMagics.buffer_pages) or filter in the kernel")
    for name, n in trace.meta.get("over_limit", {}).items():
        out.append(f"{n:,} events from {name!r} arrived after the event limit and were not kept "
                   "(raise event_limit=... / %config BpfMagics.event_limit)")
    if trace.meta.get("stopped_by") == "event limit":
        out.append("the capture stopped early: an output reached the event limit")
    out += unknown_frame_warnings(trace)
    spill = trace.meta.get("spill") or {}
    for name, info in (spill.get("outputs") or {}).items():
        out.append(f"events {name!r}: {info.get('rows', 0):,} rows spilled to Parquet under "
                   f"{spill.get('folder')} (memory limit {spill.get('memory_limit'):,} bytes), not held "
                   f"in memory; query them with bpfnb.fleet.load_many({spill.get('folder')!r})")
    return out


UNKNOWN_SHARE_WARN = 0.2   # share of samples with an unresolved frame worth a word
SHALLOW_SHARE_WARN = 0.5   # share of one-frame stacks: the walk stopped at the leaf


def unknown_frame_warnings(trace) -> list[str]:
    """A warning per stacks output whose frames look unwalkable, saying why and what to do.

    Two symptoms of programs without frame pointers: [unknown] frames, and
    stacks that stop after their first frame.
    """
    out = []
    for name in trace.outputs.get("stacks", []):
        frame = trace.stacks(name)
        if not len(frame) or "stack" not in frame.columns or "value" not in frame.columns:
            continue
        weight = pd.to_numeric(frame["value"], errors="coerce").fillna(0.0)  # a summary never raises
        total = weight.sum()
        if total <= 0:
            continue
        stacks = frame["stack"].astype(str)
        unknown = stacks.str.contains("[unknown]", regex=False)
        shallow = ~stacks.str.contains(";", regex=False) & ~stacks.str.startswith("[Missing")
        if weight[unknown].sum() / total >= UNKNOWN_SHARE_WARN:
            bad, what = unknown, "have [unknown] frames"
        elif weight[shallow].sum() / total >= SHALLOW_SHARE_WARN:
            bad, what = shallow, "stop after one frame"
        else:
            continue
        who = ""
        if "comm" in frame.columns:
            by = weight[bad].groupby(frame.loc[bad, "comm"]).sum().sort_values(ascending=False)
            who = " (" + ", ".join(f"{comm} {value / total:.0%}" for comm, value in by.head(3).items()) + ")"
        out.append(f"stacks {name!r}: {weight[bad].sum() / total:.0%} of the samples {what}{who}. Frames "
                   "are walked by frame pointer: rebuild those programs with -fno-omit-frame-pointer, "
                   "install their debug symbols, or run Python 3.12+ with -X perf; short-lived processes "
                   "also need to live until the capture has seen them")
    return out


def _header(trace) -> str:
    meta = trace.meta
    parts = []
    start, end = meta.get("start_wall"), meta.get("end_wall")
    if start and end:
        parts.append(f"{end - start:.1f} s")
    if meta.get("stopped_by"):
        parts.append(f"ended by {meta['stopped_by']}")
    if meta.get("probes"):
        parts.append(f"{len(meta['probes'])} probe{'s' if len(meta['probes']) != 1 else ''}")
    return "bpfnb Trace" + (f" ({', '.join(parts)})" if parts else "")


def trace_text(trace) -> str:
    lines = [_header(trace)]
    for kind, name, rows, lost in trace.summary_rows():
        lost_text = f", {lost:,} LOST" if lost else ""
        lines.append(f"  {kind:<7} {name:<20} {rows:>10,} rows{lost_text}   .{kind}({name!r})")
    for warning in warnings(trace):
        lines.append(f"WARNING: {warning}")
    for kind, name, frame in trace.items():
        if kind == "hist" and len(frame) and "time" not in frame.columns:
            lines += ["", _hist_text(frame, name)]
        elif kind in ("events", "stacks", "map") and len(frame):
            lines += ["", f"{kind} {name!r}, first rows:", frame.head(HEAD_ROWS).to_string()]
    return "\n".join(lines)


def trace_html(trace) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(kind)}</td><td><code>{esc(name)}</code></td><td style='text-align:right'>{n:,}</td>"
        f"<td style='text-align:right;{'color:#c00;font-weight:bold' if lost else ''}'>{lost:,}</td>"
        f"<td><code>t.{esc(kind)}({esc(repr(name))})</code></td></tr>"
        for kind, name, n, lost in trace.summary_rows()
    )
    parts = [
        f"<div class='bpfnb-trace'><b>{esc(_header(trace))}</b>",
        "<table><thead><tr><th>kind</th><th>output</th><th>rows</th><th>lost</th><th>get it with</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>",
    ]
    for warning in warnings(trace):
        parts.append(f"<div style='color:#a00;font-weight:bold'>&#9888; {esc(warning)}</div>")
    for kind, name, frame in trace.items():
        if kind == "hist" and len(frame) and "time" not in frame.columns:
            parts.append(f"<details open><summary>hist <code>{esc(name)}</code></summary>"
                         f"<pre>{esc(_hist_text(frame, name))}</pre></details>")
        elif len(frame):
            parts.append(f"<details><summary>{esc(kind)} <code>{esc(name)}</code>: first rows</summary>"
                         f"{frame.head(HEAD_ROWS).to_html()}</details>")
    parts.append("</div>")
    return "\n".join(parts)
