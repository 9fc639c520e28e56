"""Latency heat maps: time columns x latency rows, colour = count.

    hm = bpfnb.heatmap(events, time="ts", value="lat_us", step="1s", quantile=0.99)
    hm                 # notebook: SVG with hover (time, latency, count, column %)
    hm.to_svg(); hm.save("lat.svg" | "lat.png" | "lat.html"); hm.ax  # matplotlib

Binning is bpfnb.frames.heatbins (pure); this module draws. The SVG is
written directly (fast, no matplotlib); matplotlib is imported only for
.ax / .plot() / PNG. Empty cells stay blank; every column and row is drawn.
"""

from __future__ import annotations

import html
import itertools
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..frames.heatbins import (
    DEFAULT_ROWS,
    HeatBins,
    HeatMapError,
    bin_events,
    bin_hist,
    nice_ceil,
)
from ._picture import Picture

# colour ramp for counts, light (few) to dark (many); anchors chosen by hand
_ANCHORS = [(255, 246, 190), (253, 205, 100), (245, 145, 50), (220, 70, 35),
            (160, 20, 40), (80, 0, 50)]
PALETTE_SIZE = 64


@lru_cache(maxsize=1)
def palette() -> tuple[str, ...]:
    anchors = np.array(_ANCHORS, dtype=float)
    pos = np.linspace(0, len(anchors) - 1, PALETTE_SIZE)
    lo = np.floor(pos).astype(int).clip(0, len(anchors) - 2)
    frac = (pos - lo)[:, None]
    rgb = anchors[lo] * (1 - frac) + anchors[lo + 1] * frac
    return tuple("#%02x%02x%02x" % tuple(int(round(c)) for c in row) for row in rgb)


_ids = itertools.count()


def heatmap(
    data,
    time: str = "ts",
    value: str = "lat_us",
    *,
    step=None,
    rows: int = DEFAULT_ROWS,
    row_size: float | None = None,
    scale: str = "linear",
    min_value: float | None = None,
    max_value: float | None = None,
    quantile: float | None = None,
    time_unit: str | None = None,
    time_marks: str = "end",
    title: str | None = None,
    color_scale: str = "linear",
    width: int = 960,
    height: int = 420,
) -> "HeatMap":
    """A latency heat map of per-event data, or of histogram snapshots over time.

    data: an events DataFrame with a time and a value column; or a histogram
    frame ([keys...], low, high, count) with a `time` column (an in-kernel
    heat map: one snapshot per interval, counts per interval); or a Trace
    (its histogram with a time column, else its events).
    time: ns (bpf_ktime_get_ns), us, ms, s or datetime; see
    bpfnb.frames.heatbins for how the unit is told (time_unit= overrides).
    step: column width ('1s', '100ms', seconds); default <= 150 columns.
    rows / row_size / scale ("linear" | "log"): the value rows.
    max_value / quantile: cut-off at the top to see the body past outliers;
    what is above is counted and reported, not drawn.
    color_scale: "linear" or "log" mapping of counts to colours.
    """
    if color_scale not in ("linear", "log"):
        raise HeatMapError(f"color_scale must be 'linear' or 'log', not {color_scale!r}")
    frame, is_hist = _frame_of(data, time)
    if is_hist:
        bins = bin_hist(frame, time=time if time in frame.columns else "time", step=step,
                        max_value=max_value, time_marks=time_marks)
        value_label = frame.attrs.get("label", value if value != "lat_us" else "value")
    else:
        missing = [c for c in (time, value) if c not in frame.columns]
        if missing:
            raise HeatMapError(
                f"no column {missing[0]!r} in the frame (columns: {', '.join(map(str, frame.columns))}); "
                "name them with time=... and value=..."
            )
        bins = bin_events(frame[time], frame[value], step=step, rows=rows, row_size=row_size,
                          scale=scale, min_value=min_value, max_value=max_value,
                          quantile=quantile, time_unit=time_unit, time_name=time)
        value_label = value
    return HeatMap(bins, title=title, value_label=value_label, color_scale=color_scale,
                   width=width, height=height)


def _frame_of(data, time: str) -> tuple[pd.DataFrame, bool]:
    from ..trace import Trace

    if isinstance(data, Trace):
        for name in data.names("hist"):
            if "time" in data.hist(name).columns:
                return data.hist(name), True
        if data.names("events"):
            return data.events(), False
        raise HeatMapError("this trace has no events and no histogram with a time column; "
                           "capture per-event latencies or a histogram with an interval")
    if not isinstance(data, pd.DataFrame):
        raise HeatMapError(f"heatmap() takes a DataFrame or a Trace, not {type(data).__name__}")
    is_hist = {"low", "high", "count"} <= set(data.columns) and (
        time in data.columns or "time" in data.columns)
    return data, is_hist


class HeatMap(Picture):
    """A finished heat map: bins plus how to draw them."""

    def __init__(self, bins: HeatBins, *, title=None, value_label="value",
                 color_scale="linear", width=960, height=420):
        self.bins = bins
        self.value_label = value_label
        self.title = title if title is not None else f"{value_label} over time"
        self.color_scale = color_scale
        self.width, self.height = int(width), int(height)

    # -- data ------------------------------------------------------------------
    @property
    def counts(self) -> np.ndarray:
        """counts[row, column], row 0 = lowest values."""
        return self.bins.counts

    def to_frame(self) -> pd.DataFrame:
        """Non-empty cells as rows: t_low, t_high, v_low, v_high, count, column_share."""
        b = self.bins
        r, c = np.nonzero(b.counts)
        counts = b.counts[r, c]
        col_total = b.counts.sum(axis=0)
        return pd.DataFrame({
            "t_low": b.time_edges[c], "t_high": b.time_edges[c + 1],
            "v_low": b.value_edges[r], "v_high": b.value_edges[r + 1],
            "count": counts, "column_share": counts / col_total[c],
        })

    # -- SVG ---------------------------------------------------------------------
    def to_svg(self) -> str:
        """A standalone SVG: one <rect class="cell"> per non-empty cell, with hover text."""
        return _svg(self)

    # -- notebook ------------------------------------------------------------------
    def to_html(self, svg: str | None = None) -> str:
        """An HTML fragment: the SVG inline (a static picture) plus a hover script."""
        div_id = f"bpfnb-heatmap-{next(_ids)}-{id(self) & 0xFFFFFF:x}"
        svg = self.to_svg() if svg is None else svg
        return (f'<div class="bpfnb-heatmap" id="{div_id}" style="position:relative;'
                f'max-width:{self.width}px">{svg}</div>'
                f"<script>(function(){{{_hover_js()}\n"
                f'attachHover(document.getElementById("{div_id}"));}})();</script>')

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_mimebundle_(self, include=None, exclude=None):
        svg = self.to_svg()
        return {"text/plain": self.text(), "image/svg+xml": svg, "text/html": self.to_html(svg)}

    def widget(self):
        """An anywidget view of this heat map (hover as in the HTML output)."""
        view = heatmap_widget_class()()
        view.svg = self.to_svg()
        return view

    # -- text ----------------------------------------------------------------------
    def __repr__(self) -> str:
        b = self.bins
        return (f"<HeatMap {b.n_cols} columns x {b.n_rows} rows, step {b.step:g} s, "
                f"{b.total:,} events drawn, {b.nonempty:,} cells"
                + (f", {b.above:,} above the top" if b.above else "") + ">")

    def text(self, max_cols: int = 100, max_rows: int = 20) -> str:
        """A character picture: rows top = high values, shades by count."""
        return _text_picture(self, max_cols, max_rows)

    # -- matplotlib (.ax comes from Picture) ---------------------------------------
    def plot(self, ax=None):
        """Draw on a matplotlib Axes (a new figure if ax is None); returns the Axes."""
        return _plot_mpl(self, ax)

    def save(self, path) -> str:
        """Write .svg, .html (interactive, standalone) or .png; returns the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".svg":
            path.write_text(self.to_svg(), encoding="utf-8")
        elif suffix in (".html", ".htm"):
            page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
                    f"{html.escape(self.title)}</title></head><body>{self.to_html()}</body></html>")
            path.write_text(page, encoding="utf-8")
        elif suffix == ".png":
            self.ax.figure.savefig(path, dpi=120, bbox_inches="tight")
        else:
            raise HeatMapError(f"cannot save a heat map as {suffix or 'a file without suffix'}; "
                               "use .svg, .html or .png")
        return str(path)


@lru_cache(maxsize=1)
def _hover_js() -> str:
    source = (Path(__file__).with_name("heatmap.js")).read_text(encoding="utf-8")
    return source.split("// --- anywidget", 1)[0]


@lru_cache(maxsize=1)
def heatmap_widget_class():
    """The anywidget class (created on first use: anywidget is imported only then)."""
    import anywidget
    import traitlets

    class HeatMapWidget(anywidget.AnyWidget):
        _esm = Path(__file__).with_name("heatmap.js")
        svg = traitlets.Unicode("").tag(sync=True)

    return HeatMapWidget


# -- labels -------------------------------------------------------------------------
def _fmt(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x)}"
    return f"{x:.4g}"


def _fmt_compact(x: float) -> str:
    for div, suffix in ((1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if x >= div and x % div == 0:
            return f"{int(x // div)}{suffix}"
    return _fmt(x)


def _time_label(hm: HeatMap) -> str:
    b = hm.bins
    if isinstance(b.start, pd.Timestamp):
        return f"time since {b.start.isoformat(sep=' ', timespec='milliseconds')} (s)"
    return "time since start (s)"


def _row_labels(b: HeatBins) -> list[str]:
    e = b.value_edges
    if b.integer_values:
        return [f"{int(e[i])} -> {int(e[i + 1]) - 1}" for i in range(b.n_rows)]
    return [f"{_fmt(e[i])} -> {_fmt(e[i + 1])}" for i in range(b.n_rows)]


def _col_labels(b: HeatBins) -> list[str]:
    t = b.time_edges
    return [f"{_fmt(round(t[i], 9))}-{_fmt(round(t[i + 1], 9))} s" for i in range(b.n_cols)]


def _color_index(counts: np.ndarray, vmax: int, color_scale: str) -> np.ndarray:
    if vmax <= 1:
        return np.full(counts.shape, PALETTE_SIZE - 1, dtype=np.int64)
    if color_scale == "log":
        frac = np.log(counts) / math.log(vmax)
    else:
        frac = (counts - 1) / (vmax - 1)
    return np.clip(np.rint(frac * (PALETTE_SIZE - 1)), 0, PALETTE_SIZE - 1).astype(np.int64)


def _value_ticks(b: HeatBins, max_ticks: int = 8) -> list[tuple[float, str]]:
    """(row-space position, label) for the value axis."""
    e = b.value_edges
    if b.scale == "linear" and b.n_rows > 1:
        size = e[1] - e[0]
        span = e[-1] - e[0]
        tick = nice_ceil(span / max_ticks)
        start = math.ceil(e[0] / tick) * tick
        vals = np.arange(start, e[-1] + tick * 1e-9, tick)
        return [((v - e[0]) / size, _fmt(round(v, 9))) for v in vals]
    if b.scale == "log" and e[-1] > e[0] > 0:
        return _log_ticks(e[0], e[-1], b.n_rows, max_ticks)
    every = max(1, math.ceil((b.n_rows + 1) / max_ticks))
    fmt = _fmt_compact if b.scale == "log2" else (lambda x: f"{x:.3g}")
    return [(i, fmt(e[i])) for i in range(0, b.n_rows + 1, every)]


def _log_ticks(bottom: float, top: float, n_rows: int, max_ticks: int):
    """Ticks at 1/2/5 x 10**k (fewer when crowded), placed on geometric rows."""
    per_row = n_rows / math.log(top / bottom)
    decades = range(math.floor(math.log10(bottom)), math.ceil(math.log10(top)) + 1)
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        vals = [m * 10.0 ** k for k in decades for m in mantissas]
        vals = [v for v in vals if bottom <= v <= top * (1 + 1e-9)]
        if len(vals) <= max_ticks:
            break
    return [(math.log(v / bottom) * per_row, _fmt(v) if v < 1e6 else f"{v:.0e}") for v in vals]


def _time_ticks(b: HeatBins, max_ticks: int = 10) -> list[tuple[float, str]]:
    span = b.time_edges[-1]
    tick = nice_ceil(span / max_ticks)
    vals = np.arange(0, span + tick * 1e-9, tick)
    return [(v / b.step, _fmt(round(v, 9))) for v in vals]


# -- SVG writer ------------------------------------------------------------------------
def _svg(hm: HeatMap) -> str:
    b = hm.bins
    W, H = hm.width, hm.height
    left, right, top, bottom = 78, 96, 40, 46
    pw, ph = W - left - right, H - top - bottom
    cw, rh = pw / b.n_cols, ph / b.n_rows
    r, c = np.nonzero(b.counts)
    counts = b.counts[r, c]
    vmax = int(counts.max()) if counts.size else 0
    colors = palette()
    cidx = _color_index(counts, vmax, hm.color_scale)
    col_total = b.counts.sum(axis=0)
    xs = np.round(left + c * cw, 2)
    ys = np.round(top + (b.n_rows - 1 - r) * rh, 2)
    w, h = f"{cw + 0.05:.2f}", f"{rh + 0.05:.2f}"  # a hair wider: no seams between cells
    rows_txt, cols_txt = _row_labels(b), _col_labels(b)
    unit = html.escape(str(hm.value_label))
    share = counts / np.maximum(col_total[c], 1) * 100
    cells = [
        f'<rect class="cell" x="{x}" y="{y}" width="{w}" height="{h}" fill="{colors[k]}">'
        f"<title>time {cols_txt[ci]}\n{unit} {rows_txt[ri]}\ncount {n} ({s:.1f}% of column)"
        f"</title></rect>"
        for x, y, k, ci, ri, n, s in zip(xs.tolist(), ys.tolist(), cidx.tolist(), c.tolist(),
                                         r.tolist(), counts.tolist(), share.tolist())
    ]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="#fff"/>',
        f'<text x="{W / 2:.0f}" y="16" text-anchor="middle" font-size="14">'
        f"{html.escape(hm.title)}</text>",
        f'<text x="{W / 2:.0f}" y="31" text-anchor="middle" fill="#555">{html.escape(_subtitle(hm))}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>',
        '<g class="cells">', *cells, "</g>",
    ]
    out += _axes_svg(hm, left, top, pw, ph, cw, rh)
    out += _legend_svg(hm, vmax, W - right + 22, top, ph)
    out.append("</svg>")
    return "\n".join(out)


def _subtitle(hm: HeatMap) -> str:
    b = hm.bins
    parts = [f"{b.total:,} events", f"{b.step:g} s columns"]
    if b.above:
        parts.append(f"{b.above:,} above {_fmt(b.value_edges[-1])} not drawn")
    if b.below:
        parts.append(f"{b.below:,} below {_fmt(b.value_edges[0])} in the bottom row")
    return "; ".join(parts)


def _axes_svg(hm, left, top, pw, ph, cw, rh) -> list[str]:
    b = hm.bins
    out = []
    base = top + ph
    for pos, label in _time_ticks(b):
        x = left + pos * cw
        out.append(f'<line x1="{x:.2f}" y1="{base}" x2="{x:.2f}" y2="{base + 4}" stroke="#444"/>'
                   f'<text x="{x:.2f}" y="{base + 15}" text-anchor="middle">{label}</text>')
    for pos, label in _value_ticks(b):
        y = base - pos * rh
        out.append(f'<line x1="{left - 4}" y1="{y:.2f}" x2="{left}" y2="{y:.2f}" stroke="#444"/>'
                   f'<text x="{left - 6}" y="{y + 4:.2f}" text-anchor="end">{label}</text>')
    out.append(f'<text x="{left + pw / 2:.0f}" y="{base + 34}" text-anchor="middle">'
               f"{html.escape(_time_label(hm))}</text>")
    scale = {"log": " (log rows)", "log2": " (log2 buckets)"}.get(b.scale, "")
    out.append(f'<text transform="translate(16,{top + ph / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{html.escape(str(hm.value_label) + scale)}</text>')
    return out


def _legend_svg(hm, vmax, x, top, ph) -> list[str]:
    colors = palette()
    n = 16
    bar_h = min(ph, 200)
    step = bar_h / n
    out = [f'<text x="{x}" y="{top - 4}">count</text>']
    for i in range(n):
        k = round(i * (PALETTE_SIZE - 1) / (n - 1))
        y = top + bar_h - (i + 1) * step
        out.append(f'<rect x="{x}" y="{y:.2f}" width="14" height="{step + 0.05:.2f}" '
                   f'fill="{colors[k]}"/>')
    out.append(f'<text x="{x + 18}" y="{top + 9}">{vmax:,}</text>')
    out.append(f'<text x="{x + 18}" y="{top + bar_h}">1</text>')
    if hm.color_scale == "log":
        out.append(f'<text x="{x}" y="{top + bar_h + 14}" fill="#555">log</text>')
    return out


# -- text picture ----------------------------------------------------------------------
_SHADES = " .:-=+*#%@"


def _text_picture(hm: HeatMap, max_cols: int, max_rows: int) -> str:
    b = hm.bins
    counts = b.counts
    col_group = max(1, math.ceil(b.n_cols / max_cols))
    row_group = max(1, math.ceil(b.n_rows / max_rows))
    grid = _block_sum(counts, row_group, col_group)
    vmax = grid.max() if grid.size else 0
    lines = [repr(hm), f"{hm.title}: {_subtitle(hm)}"]
    n_rows = grid.shape[0]
    labels = []
    for i in range(n_rows):
        hi = min((i + 1) * row_group, b.n_rows)
        labels.append(_fmt(b.value_edges[hi]))
    label_w = max(len(s) for s in labels)
    for i in reversed(range(n_rows)):
        row = grid[i]
        shade = np.where(row > 0, 1 + np.rint((row / max(vmax, 1)) * (len(_SHADES) - 2)), 0)
        lines.append(f"{labels[i]:>{label_w}} |" + "".join(_SHADES[int(s)] for s in shade) + "|")
    span = b.time_edges[-1]
    lines.append(" " * label_w + f" 0 s{'':>{max(1, grid.shape[1] - 6)}}{_fmt(span)} s")
    lines.append(f"({hm.value_label} rows, up to the value shown; {col_group * b.step:g} s per "
                 f"character; .:-=+*#%@ = few to many)")
    return "\n".join(lines)


def _block_sum(a: np.ndarray, rg: int, cg: int) -> np.ndarray:
    r, c = a.shape
    pad = np.zeros((math.ceil(r / rg) * rg, math.ceil(c / cg) * cg), dtype=a.dtype)
    pad[:r, :c] = a
    return pad.reshape(pad.shape[0] // rg, rg, pad.shape[1] // cg, cg).sum(axis=(1, 3))


# -- matplotlib ---------------------------------------------------------------------------
def _plot_mpl(hm: HeatMap, ax=None):
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap, LogNorm, Normalize

    b = hm.bins
    if ax is None:
        _, ax = plt.subplots(figsize=(hm.width / 96, hm.height / 96))
    masked = np.ma.masked_equal(b.counts, 0)  # empty cells stay blank
    vmax = max(int(b.counts.max()), 1)
    norm = LogNorm(1, vmax) if hm.color_scale == "log" and vmax > 1 else Normalize(1, vmax)
    mesh = ax.pcolormesh(b.time_edges, np.arange(b.n_rows + 1), masked,
                         cmap=ListedColormap(list(palette())), norm=norm, shading="flat")
    ticks = _value_ticks(b)
    ax.set_yticks([p for p, _ in ticks], [t for _, t in ticks])
    ax.set_xlim(b.time_edges[0], b.time_edges[-1])
    ax.set_ylim(0, b.n_rows)
    ax.set_xlabel(_time_label(hm))
    scale = {"log": " (log rows)", "log2": " (log2 buckets)"}.get(b.scale, "")
    ax.set_ylabel(f"{hm.value_label}{scale}")
    ax.set_title(f"{hm.title}\n{_subtitle(hm)}", fontsize="medium")
    ax.figure.colorbar(mesh, ax=ax, label="count")
    return ax
