"""Fleet pictures: per-host histograms, hosts-by-time heat maps, flame graphs by host.

    bpfnb.fleet.hist(t)                                   # one small multiple per host
    hm = bpfnb.fleet.heatmap(t, value="lat_us", agg="p99")  # rows = hosts, columns = time
    hm.matrix                                             # the numbers (a DataFrame)
    bpfnb.fleet.flamegraph(t, host="web-3")               # one host's profile
    bpfnb.fleet.flamegraph(t, host="web-3", baseline="web-1")  # differential, by host

The numbers (host_matrix) are pure pandas; drawing is SVG written here
(hover titles per cell) or matplotlib for .ax / PNG, imported only then.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BpfnbError
from ..plot._picture import Picture
from .capture import HOST

AGGS = ("count", "sum", "mean", "max", "p50", "p90", "p99")
__all__ = ["hist", "heatmap", "host_matrix", "flamegraph", "HostHeatMap", "PictureError"]


class PictureError(BpfnbError, ValueError):
    """A fleet picture cannot be drawn from what was given."""


def _frame(data, kind: str, name: str | None) -> pd.DataFrame:
    from ..trace import Trace

    frame = data.frame(kind, name) if isinstance(data, Trace) else data
    if not isinstance(frame, pd.DataFrame):
        raise PictureError(f"give a fleet Trace or a DataFrame, not {type(data).__name__}")
    if HOST not in frame.columns:
        raise PictureError(f"the frame has no {HOST!r} column: fleet pictures need a capture from "
                           "bpfnb.fleet.capture or frames from bpfnb.fleet.load_many")
    return frame


def _hosts(frame: pd.DataFrame, hosts) -> list[str]:
    present = list(dict.fromkeys(frame[HOST].tolist()))
    if hosts is None:
        return present
    hosts = [hosts] if isinstance(hosts, str) else list(hosts)
    missing = [h for h in hosts if h not in present]
    if missing:
        from ..errors import did_you_mean

        raise PictureError(f"no host {missing[0]!r} in this frame." + did_you_mean(missing[0], present)
                           + f" Hosts: {', '.join(present)}.")
    return hosts


# -- histograms ----------------------------------------------------------------------------
def hist(data, name: str | None = None, *, hosts=None, ax=None, **options):
    """Per-host small multiples of a histogram (one Axes per host, shared x).

    Other key columns (e.g. per-pid histograms) are summed within each host.
    options go to bpfnb.plot.hist (labels, log_count, title, ...).
    """
    from ..frames.hist import key_columns
    from ..plot.hist import hist as plot_hist

    frame = _frame(data, "hist", name)
    chosen = _hosts(frame, hosts)
    frame = frame[frame[HOST].isin(chosen)]
    if [k for k in key_columns(frame) if k != HOST]:
        attrs = dict(frame.attrs)
        frame = frame.groupby([HOST, "low", "high"], sort=False, as_index=False)["count"].sum()
        frame.attrs = attrs
    # categories keep the fleet's host order (plot.hist sorts its groups)
    attrs = dict(frame.attrs)
    frame = frame.assign(**{HOST: pd.Categorical(frame[HOST], categories=chosen)})
    frame.attrs = attrs
    return plot_hist(frame, ax=ax, by=HOST, layout="small_multiples", **options)


# -- heat map: hosts x time -----------------------------------------------------------------
def host_matrix(data, time: str = "ts", value: str | None = None, *, agg: str = "count",
                step: float | None = None, name: str | None = None, hosts=None,
                max_columns: int = 120) -> pd.DataFrame:
    """A DataFrame: one row per host, one column per time step (seconds from the first event).

    time: bpf_ktime_get_ns() nanoseconds (or datetimes); with a fleet Trace
    each host's clock is turned to wall time first, so columns line up.
    agg: count (events), or sum/mean/max/p50/p90/p99 of `value`. A histogram
    frame with a `time` column (hist_interval) gives counts per interval.
    """
    from ..trace import Trace

    if agg not in AGGS:
        raise PictureError(f"agg={agg!r}: use one of {', '.join(AGGS)}")
    is_trace = isinstance(data, Trace)
    kind = "events"
    if is_trace and not data.names("events") and data.names("hist"):
        kind = "hist"
    frame = _frame(data, kind, name)
    chosen = _hosts(frame, hosts)
    frame = frame[frame[HOST].isin(chosen)]
    if {"low", "high", "count"} <= set(frame.columns):  # hist snapshots over time
        if "time" not in frame.columns:
            raise PictureError("this histogram has no time column; capture with hist_interval=True")
        seconds = frame["time"].astype(float).to_numpy()
        weights = frame["count"].to_numpy()
        values = None
        agg = "sum"
    else:
        if time not in frame.columns:
            raise PictureError(f"no column {time!r}; name the time column with time=...")
        if agg != "count" and (value is None or value not in frame.columns):
            raise PictureError(f"agg={agg!r} needs value=COLUMN (columns: {', '.join(map(str, frame.columns))})")
        seconds = _seconds(data if is_trace else None, frame, time)
        values = frame[value].to_numpy(dtype=float) if value is not None and agg != "count" else None
        weights = None
    seconds = seconds - (np.nanmin(seconds) if len(seconds) else 0.0)
    span = float(np.nanmax(seconds)) if len(seconds) else 0.0
    if step is None:
        step = _nice_step(span / max_columns) if span > 0 else 1.0
    columns = np.floor(seconds / step).astype(np.int64)
    n_cols = int(columns.max()) + 1 if len(columns) else 1
    cell = pd.DataFrame({HOST: frame[HOST].to_numpy(), "col": columns})
    if weights is not None:
        cell["v"] = weights
        grouped = cell.groupby([HOST, "col"], sort=False)["v"].sum()
    elif agg == "count":
        grouped = cell.groupby([HOST, "col"], sort=False).size()
    else:
        cell["v"] = values
        g = cell.groupby([HOST, "col"], sort=False)["v"]
        grouped = g.quantile(int(agg[1:]) / 100) if agg.startswith("p") else getattr(g, agg)()
    matrix = grouped.unstack("col").reindex(index=chosen, columns=range(n_cols))
    matrix.columns = pd.Index(np.arange(n_cols) * step, name="t_s")
    matrix.index.name = HOST
    matrix.attrs.update(step=step, agg=agg, value=value)
    return matrix


def _seconds(trace, frame: pd.DataFrame, time: str) -> np.ndarray:
    col = frame[time]
    if pd.api.types.is_datetime64_any_dtype(col):
        return (col - col.min()).dt.total_seconds().to_numpy()
    hosts_meta = (trace.meta.get("hosts") or {}) if trace is not None else {}
    offsets = frame[HOST].map(lambda h: (hosts_meta.get(h) or {}).get("monotonic_to_wall_ns") or 0)
    return (col.to_numpy(dtype=np.int64) + offsets.to_numpy(dtype=np.int64)) / 1e9


def _nice_step(x: float) -> float:
    exp = math.floor(math.log10(x)) if x > 0 else 0
    for m in (1, 2, 5, 10):
        if m * 10 ** exp >= x:
            return float(m * 10 ** exp)
    return float(10 ** (exp + 1))


def heatmap(data, time: str = "ts", value: str | None = None, *, agg: str = "count",
            step: float | None = None, name: str | None = None, hosts=None,
            title: str | None = None, width: int = 960) -> "HostHeatMap":
    """A heat map with one row per host and time columns; colour = agg of value (or count)."""
    matrix = host_matrix(data, time, value, agg=agg, step=step, name=name, hosts=hosts)
    what = "events" if matrix.attrs["agg"] == "count" else f"{matrix.attrs['agg']} of {value or 'count'}"
    return HostHeatMap(matrix, title=title or f"{what} per host over time", width=width)


class HostHeatMap(Picture):
    """Hosts x time: .matrix (DataFrame), SVG/HTML display, .ax, .save(), text."""

    def __init__(self, matrix: pd.DataFrame, *, title: str, width: int = 960):
        self.matrix = matrix
        self.title = title
        self.width = int(width)

    def __repr__(self) -> str:
        return (f"<HostHeatMap {len(self.matrix)} hosts x {self.matrix.shape[1]} columns, "
                f"step {self.matrix.attrs['step']:g} s, {self.matrix.attrs['agg']}>")

    def to_svg(self) -> str:
        from ..plot.heatmap import palette

        m = self.matrix.to_numpy(dtype=float)
        rows, cols = m.shape
        left, right, top, bottom, row_h = 160, 30, 40, 40, 22
        pw = self.width - left - right
        cw = pw / max(cols, 1)
        height = top + rows * row_h + bottom
        finite = m[np.isfinite(m)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        colors = palette()
        step = self.matrix.attrs["step"]
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{height}" '
               f'font-family="sans-serif" font-size="11">',
               f'<rect width="{self.width}" height="{height}" fill="#fff"/>',
               f'<text x="{self.width / 2:.0f}" y="18" text-anchor="middle" font-size="14">'
               f"{html.escape(self.title)}</text>"]
        for r, host in enumerate(self.matrix.index):
            y = top + r * row_h
            out.append(f'<text x="{left - 6}" y="{y + row_h * 0.7:.1f}" text-anchor="end">'
                       f"{html.escape(str(host))}</text>")
            for c in range(cols):
                v = m[r, c]
                if not np.isfinite(v) or (self.matrix.attrs["agg"] == "count" and v == 0):
                    continue  # empty cells stay blank
                k = 0 if hi == lo else int(round((v - lo) / (hi - lo) * (len(colors) - 1)))
                out.append(f'<rect x="{left + c * cw:.2f}" y="{y}" width="{cw + 0.05:.2f}" '
                           f'height="{row_h - 2}" fill="{colors[k]}"><title>{html.escape(str(host))}\n'
                           f"{c * step:g}-{(c + 1) * step:g} s\n{self.matrix.attrs['agg']} {v:g}"
                           "</title></rect>")
        base = top + rows * row_h
        out.append(f'<text x="{left}" y="{base + 16}">0 s</text>'
                   f'<text x="{left + pw}" y="{base + 16}" text-anchor="end">{cols * step:g} s</text>'
                   f'<text x="{left + pw / 2:.0f}" y="{base + 32}" text-anchor="middle">'
                   f"time ({step:g} s columns; colour {lo:g} to {hi:g})</text></svg>")
        return "\n".join(out)

    def text(self, max_cols: int = 80) -> str:
        shades = " .:-=+*#%@"
        m = self.matrix.to_numpy(dtype=float)
        group = max(1, math.ceil(m.shape[1] / max_cols))
        width = max(len(str(h)) for h in self.matrix.index) if len(self.matrix) else 1
        hi = np.nanmax(m) if np.isfinite(m).any() else 0
        lines = [repr(self), self.title]
        for host, row in zip(self.matrix.index, m):
            cells = [np.nanmax(row[i:i + group]) if np.isfinite(row[i:i + group]).any() else np.nan
                     for i in range(0, len(row), group)]
            chars = "".join(" " if not np.isfinite(v) or v <= 0 else
                            shades[max(1, int(round(v / hi * (len(shades) - 1))))] for v in cells)
            lines.append(f"{str(host):>{width}} |{chars}|")
        return "\n".join(lines)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(self.width / 96, 0.4 * len(self.matrix) + 1.5))
        m = self.matrix.to_numpy(dtype=float)
        step = self.matrix.attrs["step"]
        image = ax.imshow(np.ma.masked_invalid(m), aspect="auto", interpolation="nearest", cmap="YlOrRd",
                          extent=(0, m.shape[1] * step, len(m) - 0.5, -0.5))
        ax.set_yticks(range(len(m)), [str(h) for h in self.matrix.index])
        ax.set_xlabel("time (s)")
        ax.set_title(self.title)
        ax.figure.colorbar(image, ax=ax, label=self.matrix.attrs["agg"])
        return ax

    def save(self, path) -> str:
        path = Path(path)
        if path.suffix.lower() == ".svg":
            path.write_text(self.to_svg(), encoding="utf-8")
        elif path.suffix.lower() == ".png":
            self.ax.figure.savefig(path, dpi=120, bbox_inches="tight")
        else:
            raise PictureError(f"cannot save a host heat map as {path.suffix or 'no suffix'}; use .svg or .png")
        return str(path)


# -- flame graphs by host ------------------------------------------------------------------
def flamegraph(data, host=None, *, baseline=None, name: str | None = None, kind: str = "oncpu", **options):
    """A flame graph of some hosts (host: a label or a list), or of host against baseline.

    host=None: every host, each under a root frame named after it.
    baseline=LABEL (or list): kind="diff", red where `host` has more than the baseline.
    """
    from ..plot.flamegraph import flamegraph as draw

    frame = _frame(data, "stacks", name)
    if baseline is not None:
        if host is None:
            raise PictureError("a differential flame graph needs host=... to compare with the baseline")
        return draw(_for_hosts(frame, host), kind="diff", other=_for_hosts(frame, baseline),
                    title=options.pop("title", f"{_names(host)} against {_names(baseline)}"), **options)
    if host is None:
        return draw(frame, kind=kind, **options)
    return draw(_for_hosts(frame, host), kind=kind,
                title=options.pop("title", None) or f"{_names(host)}", **options)


def _for_hosts(frame: pd.DataFrame, hosts) -> pd.DataFrame:
    chosen = _hosts(frame, hosts)
    part = frame[frame[HOST].isin(chosen)].drop(columns=[HOST])
    keys = [c for c in part.columns if c not in ("stack", "value")]
    return part.groupby(keys + ["stack"], sort=False, as_index=False, dropna=False)["value"].sum() \
        if keys else part.groupby("stack", sort=False, as_index=False)["value"].sum()


def _names(hosts) -> str:
    return hosts if isinstance(hosts, str) else ", ".join(map(str, hosts))
