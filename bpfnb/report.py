"""A self-contained HTML report of a Trace: pictures, tables, metadata, lost counts.

    bpfnb.report.write_report(trace, "out/run")        # -> out/run/report.html
    html = bpfnb.report.report_html(trace, title="runqlat on db1")

One file, nothing fetched from elsewhere: histograms are PNGs embedded as
data URIs, heat maps and flame graphs inline SVG (with their hover / zoom /
search scripts), tables plain HTML. Each output gets the picture that fits:

- hist without a `time` column: bars (modes marked), bcc's text, percentiles;
- hist with a `time` column (an in-kernel heat map): the heat map, then the
  histogram summed over time;
- events with a latency column (lat_us, lat_ms, lat_ns, ms, ...) and a `ts`:
  a latency heat map and percentiles; every events frame: its first rows;
- stacks: a flame graph (on-CPU, off-CPU or off-wake after the tool);
- maps: the rows with the largest values.

Sections come in that order (histograms, stacks, events, maps), pictures first.

Lost events are shown at the top, in red, whenever any were counted.
Needs matplotlib for the histogram pictures; no root, no bcc.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from pathlib import Path

import pandas as pd

from .display import warnings as trace_warnings
from .errors import BpfnbError

__all__ = ["report_html", "write_report", "ReportError", "REPORT_FILE"]

REPORT_FILE = "report.html"
MAX_ROWS = 20
MAX_PANELS = 8  # keyed histograms: one panel per key, at most this many
# per-event latency columns, in order of preference: (column, unit label)
LATENCY_COLUMNS = (("lat_us", "µs"), ("lat_ms", "ms"), ("lat_ns", "ns"), ("latency_us", "µs"),
                   ("delta_us", "µs"), ("ms", "ms"))
SECTION_ORDER = ("hist", "stacks", "events", "map")  # pictures first; maps are often scratch state
FLAME_KIND_OF_TOOL = {"profile": "oncpu", "offcputime": "offcpu", "offwaketime": "offwake"}

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1240px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:.5em 0} td,th{border:1px solid #ccc;padding:2px 8px}
td{text-align:right} th{background:#f0f0f0} .lost{color:#b00;font-weight:bold}
.meta td{text-align:left} .note{color:#555} img{max-width:100%}"""


class ReportError(BpfnbError):
    """A report cannot be written where asked."""


# -- the page -----------------------------------------------------------------------
def report_html(trace, *, title: str | None = None, max_rows: int = MAX_ROWS) -> str:
    """The whole report of trace as one HTML document (a string)."""
    title = title or default_title(trace)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{_esc(title)}</h1>",
             f"<p class='note'>{_esc(_subtitle(trace))}</p>", _lost_section(trace), _outputs_table(trace)]
    for kind, name, frame in sorted(trace.items(), key=lambda item: SECTION_ORDER.index(item[0])):
        parts.append(f"<h2>{_esc(kind)} <code>{_esc(name)}</code> "
                     f"<span class='note'>({len(frame):,} rows)</span></h2>")
        parts.append(_section(trace, kind, name, frame, max_rows))
    parts += [_meta_section(trace), "</body></html>"]
    return "\n".join(p for p in parts if p)


def write_report(trace, path, *, title: str | None = None) -> Path:
    """Write the report; path is a folder (report.html goes in it) or an .html file."""
    path = Path(path)
    target = path if path.suffix.lower() in (".html", ".htm") else path / REPORT_FILE
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(report_html(trace, title=title), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report {target}: {exc.strerror or exc}; "
                          "choose a folder you can write to (--out DIR)") from None
    return target


def default_title(trace) -> str:
    tool = (trace.meta.get("tool") or {})
    name = tool.get("name") if isinstance(tool, dict) else tool
    host = trace.meta.get("host")
    return f"{name or 'bpfnb trace'}" + (f" on {host}" if host else "")


def _subtitle(trace) -> str:
    meta = trace.meta
    bits = []
    start, end = meta.get("start_wall"), meta.get("end_wall")
    if start:
        when = _dt.datetime.fromtimestamp(start, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        bits.append(f"traced {when}")
    if start and end:
        bits.append(f"for {end - start:.1f} s")
    if meta.get("stopped_by"):
        bits.append(f"(ended by {meta['stopped_by']})")
    if meta.get("kernel"):
        bits.append(f"Linux {meta['kernel']}")
    return " ".join(bits) or "no capture metadata"


# -- sections -----------------------------------------------------------------------
def _lost_section(trace) -> str:
    warnings = trace_warnings(trace)
    if not warnings:
        return "<p>Lost events: 0 (nothing was dropped).</p>"
    items = "".join(f"<li>{_esc(w)}</li>" for w in warnings)
    return f"<div class='lost'>&#9888; Events were lost:<ul>{items}</ul></div>"


def _outputs_table(trace) -> str:
    rows = "".join(
        f"<tr><td style='text-align:left'>{_esc(kind)}</td><td style='text-align:left'><code>{_esc(name)}"
        f"</code></td><td>{n:,}</td><td class='{'lost' if lost else ''}'>{lost:,}</td></tr>"
        for kind, name, n, lost in trace.summary_rows())
    return ("<table><thead><tr><th>kind</th><th>output</th><th>rows</th><th>lost</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _section(trace, kind: str, name: str, frame: pd.DataFrame, max_rows: int) -> str:
    if frame.empty:
        return "<p class='note'>No rows: nothing matched during the capture.</p>"
    try:
        if kind == "hist":
            return _hist_section(frame, name)
        if kind == "events":
            return _events_section(frame, max_rows)
        if kind == "stacks":
            return _stacks_section(trace, frame, name)
        return _map_section(frame, max_rows)
    except Exception as exc:  # noqa: BLE001 - one bad picture must not lose the whole report
        return (f"<p class='lost'>Could not draw this output ({_esc(type(exc).__name__)}: {_esc(str(exc))}); "
                f"its first rows:</p>{_table(frame.head(max_rows))}")


def _hist_section(frame: pd.DataFrame, name: str) -> str:
    from .frames.hist import key_columns, percentiles
    from .frames.histtext import format_hist

    label = str(frame.attrs.get("unit") or frame.attrs.get("label") or "value")
    parts = []
    if "time" in frame.columns:
        from .plot.heatmap import heatmap

        parts.append(heatmap(frame, title=f"{name} over time ({label})").to_html())
        keys = [k for k in key_columns(frame) if k != "time"]
        summed = frame.groupby(keys + ["low", "high"], as_index=False, sort=True)["count"].sum()
        summed.attrs.update(frame.attrs)
        frame = summed
        parts.append("<p class='note'>Summed over the whole capture:</p>")
    parts.append(_png(_hist_figure(frame, f"{name} ({label})", label)))
    keys = key_columns(frame)
    parts.append(f"<pre>{_esc(format_hist(frame, label=label, section_header=', '.join(keys) or 'Bucket ptr'))}</pre>")
    parts.append("<p>Percentiles (interpolated within buckets):</p>" + _table(percentiles(frame, (50, 90, 99, 99.9))))
    return "\n".join(parts)


def _hist_figure(frame: pd.DataFrame, title: str, label: str):
    """Bars of one histogram, or small multiples of the MAX_PANELS keys with the most counts."""
    from matplotlib.figure import Figure

    from .frames.hist import key_columns
    from .plot.hist import hist as plot_hist

    keys = key_columns(frame)
    if not keys:
        fig = Figure(figsize=(9, 3.6))
        plot_hist(frame, ax=fig.subplots(), label=label, title=title)
    else:
        totals = frame.groupby(keys, sort=False)["count"].sum()
        largest = totals.nlargest(MAX_PANELS).index.to_frame(index=False)
        if len(totals) > MAX_PANELS:
            title += f" — the {MAX_PANELS} of {len(totals)} keys with the most counts"
        shown = frame.merge(largest, on=keys)
        shown.attrs.update(frame.attrs)
        fig = Figure(figsize=(9, 1.4 + 1.5 * len(largest)))
        axes = fig.subplots(len(largest), 1, sharex=True, squeeze=False)[:, 0]
        plot_hist(shown, ax=axes if len(largest) > 1 else axes[0], layout="small_multiples",
                  label=label, title=title)
    fig.tight_layout()
    return fig


def latency_column(frame: pd.DataFrame) -> tuple[str, str] | None:
    """(column, unit) of the per-event latency in frame, or None."""
    for column, unit in LATENCY_COLUMNS:
        if column in frame.columns and pd.api.types.is_numeric_dtype(frame[column]):
            return column, unit
    return None


def _events_section(frame: pd.DataFrame, max_rows: int) -> str:
    parts = []
    found = latency_column(frame)
    if found and "ts" in frame.columns and len(frame) > 1:
        from .plot.heatmap import heatmap

        column, unit = found
        parts.append(heatmap(frame, time="ts", value=column, quantile=0.999 if len(frame) > 1000 else None,
                             title=f"{column} ({unit}) over time").to_html())
        quantiles = frame[column].quantile([0.5, 0.9, 0.99, 0.999, 1.0])
        stats = pd.DataFrame({"events": [len(frame)], **{f"p{q * 100:g}" if q < 1 else "max": [v]
                                                          for q, v in quantiles.items()}})
        parts.append(f"<p>{_esc(column)} ({_esc(unit)}) percentiles:</p>{_table(stats.round(3))}")
        slowest = frame.nlargest(min(10, len(frame)), column)
        parts.append(f"<p>Slowest {len(slowest)}:</p>{_table(_printable(slowest))}")
    shown = _printable(frame.head(max_rows))
    parts.append(f"<p>First {len(shown)} of {len(frame):,} rows:</p>{_table(shown)}")
    return "\n".join(parts)


def _stacks_section(trace, frame: pd.DataFrame, name: str) -> str:
    from .plot.flamegraph import flamegraph

    tool = trace.meta.get("tool")
    tool = tool.get("name") if isinstance(tool, dict) else tool
    kind = frame.attrs.get("flame_kind") or FLAME_KIND_OF_TOOL.get(tool, "oncpu")
    graph = flamegraph(frame.dropna(subset=["stack"]), kind=kind, subtitle=name)
    top = graph.top(15)
    return (graph._repr_mimebundle_()["text/html"]
            + f"<p>Widest functions (inclusive):</p>{_table(top)}")


def _map_section(frame: pd.DataFrame, max_rows: int) -> str:
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    value = "value" if "value" in frame.columns else (numeric[-1] if numeric else None)
    rows = frame.nlargest(max_rows, value) if value and len(frame) > max_rows else frame.head(max_rows)
    what = f"the {len(rows)} rows with the largest {value!r}" if len(frame) > max_rows else "all rows"
    return f"<p>{_esc(what)}:</p>{_table(_printable(rows))}"


def _meta_section(trace) -> str:
    meta = trace.meta
    tool = meta.get("tool") if isinstance(meta.get("tool"), dict) else {}
    fields = [("host", meta.get("host")), ("kernel", meta.get("kernel")),
              ("bcc version", meta.get("bcc_version")), ("bpftrace version", meta.get("bpftrace_version")),
              ("tool", tool.get("name") or meta.get("tool")), ("attach points", tool.get("attach") or meta.get("probes")),
              ("measures", tool.get("measures")), ("differs from bcc", tool.get("differs_from_bcc")),
              ("options", tool.get("options")), ("defines", meta.get("defines")),
              ("duration requested (s)", meta.get("duration_requested")), ("ended by", meta.get("stopped_by")),
              ("lost", trace.lost or 0)]
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_text(v))}</td></tr>" for k, v in fields
                   if v not in (None, "", [], {}))
    source = meta.get("source")
    program = f"<h3>Program</h3><pre>{_esc(source)}</pre>" if source else ""
    return f"<h2>How this was traced</h2><table class='meta'>{rows}</table>{program}"


# -- helpers ------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='histogram' src='data:image/png;base64,{data}'>"


def _printable(frame: pd.DataFrame) -> pd.DataFrame:
    """Array cells (raw struct fields) shortened so a table stays readable."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: _text(v)[:120])
    return out


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, float_format=lambda x: f"{x:,.3f}".rstrip("0").rstrip("."))


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _esc(text) -> str:
    return html.escape(str(text))
