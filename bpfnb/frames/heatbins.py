"""Binning for latency heat maps: time columns x value rows -> counts.

Pure numpy, no drawing. Two inputs:

- per-event arrays (bin_events): a time and a value per event;
- an in-kernel heat map (bin_hist): a histogram frame with a `time` column,
  one snapshot per interval, counts per interval.

Every column from the first event to the last is kept, the last (partial)
one included, and every row up to the one holding the maximum value: the
classic trace2heatmap.pl drops its last column and top row, this does not.

Times: datetime64 columns, or numbers in a unit given by `time_unit`
("ns", "us", "ms", "s"); when not given, a name ending in _ns/_us/_ms/_s
(or an upper-case name with a unit suffix, "TIMEus") decides, else integers are taken as
nanoseconds (bpf_ktime_get_ns) and floats as seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .hist import HistogramError, hist_type_of, key_columns, log2_bounds, slots_of, step_of

TICKS_PER_SECOND = {"ns": 1_000_000_000, "us": 1_000_000, "ms": 1_000, "s": 1}
DEFAULT_MAX_COLUMNS = 150
DEFAULT_ROWS = 50


class HeatMapError(HistogramError):
    """Heat-map input or options that cannot work as given."""


@dataclass(frozen=True)
class HeatBins:
    """counts[row, column]; row 0 holds the lowest values, column 0 the earliest."""

    counts: np.ndarray  # (n_rows, n_cols) int64
    time_edges: np.ndarray  # (n_cols + 1,) seconds since `start`
    value_edges: np.ndarray  # (n_rows + 1,) row i holds [edge i, edge i+1)
    scale: str  # "linear" | "log" | "log2" (rows of a log2 histogram)
    step: float  # column width, seconds
    start: object = 0.0  # time origin: a pd.Timestamp for datetimes, else the raw first time
    time_unit: str = "s"
    above: int = 0  # events above the top edge: not drawn (max_value / quantile cut-off)
    below: int = 0  # events below the bottom edge: counted in row 0
    integer_values: bool = False  # rows hold whole numbers: label "low -> high"
    meta: dict = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return self.counts.shape[0]

    @property
    def n_cols(self) -> int:
        return self.counts.shape[1]

    @property
    def total(self) -> int:
        """Events drawn (above the cut-off excluded)."""
        return int(self.counts.sum())

    @property
    def nonempty(self) -> int:
        """Number of cells with at least one event: the cells a renderer draws."""
        return int(np.count_nonzero(self.counts))

    def row_label(self, row: int) -> str:
        low, high = self.value_edges[row], self.value_edges[row + 1]
        if self.integer_values:
            return f"{int(low)} -> {int(high) - 1}"
        return f"{_num(low)} -> {_num(high)}"


def _num(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.3e}"


# -- time handling ---------------------------------------------------------------
def time_unit_of(series_or_array, name: str | None = None, time_unit: str | None = None) -> str:
    """'datetime' or one of ns/us/ms/s; see the module docstring for the rules."""
    arr = series_or_array
    dtype = getattr(arr, "dtype", None)
    if dtype is not None and (np.issubdtype(dtype, np.datetime64)
                              or isinstance(dtype, pd.DatetimeTZDtype)):
        return "datetime"
    if time_unit is not None:
        if time_unit not in TICKS_PER_SECOND:
            raise HeatMapError(f"time_unit must be one of {', '.join(TICKS_PER_SECOND)}, "
                               f"not {time_unit!r}")
        return time_unit
    if name:
        m = re.search(r"_(ns|us|ms|s|sec|secs|seconds)$", name, flags=re.IGNORECASE) or re.search(
            r"[A-Z](ns|us|ms|s)$", name)  # "ts_ns", "lat_ms", "TIMEus"; not "ts"
        if m:
            unit = m.group(1).lower()
            return "s" if unit.startswith("s") else unit
    if dtype is not None and dtype.kind in "iu":
        return "ns"
    return "s"


def _time_ticks(time, unit: str) -> tuple[np.ndarray, int, object]:
    """(ticks as int64 or float64, ticks per second, origin for labels)."""
    if unit == "datetime":
        ser = pd.Series(time) if not isinstance(time, pd.Series) else time
        if isinstance(ser.dtype, pd.DatetimeTZDtype):
            ser = ser.dt.tz_convert("UTC").dt.tz_localize(None)
        ticks = ser.to_numpy(dtype="datetime64[ns]").view(np.int64)
        return ticks, TICKS_PER_SECOND["ns"], "datetime"
    arr = time.to_numpy() if isinstance(time, pd.Series) else np.asarray(time)
    if arr.dtype.kind == "u":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "if":
        raise HeatMapError(f"the time column holds {arr.dtype}, not numbers or datetimes; "
                           "convert it (pd.to_datetime or astype) first")
    return arr, TICKS_PER_SECOND[unit], None


def _start(ticks, origin) -> object:
    """HeatBins.start from the time origin's ticks: a pd.Timestamp for datetimes, else a plain number."""
    if origin == "datetime":
        return pd.Timestamp(int(ticks), unit="ns")
    return ticks.item() if hasattr(ticks, "item") else ticks


def nice_ceil(x: float) -> float:
    """The smallest of 1, 2, 5 x 10**k that is >= x."""
    if x <= 0:
        return 1.0
    exp = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        v = m * 10.0 ** exp
        if v >= x * (1 - 1e-12):
            return float(v) if v < 1 else float(round(v, 12))
    return 10.0 ** (exp + 1)


def parse_step(step) -> float | None:
    """Seconds from a number, a pandas Timedelta or a string like '100ms'."""
    if step is None:
        return None
    if isinstance(step, (int, float, np.integer, np.floating)):
        seconds = float(step)
    else:
        try:
            seconds = pd.Timedelta(step).total_seconds()
        except (ValueError, TypeError):
            raise HeatMapError(f"step={step!r} is not a duration; give seconds (0.5) "
                               "or a string like '100ms'") from None
    if not seconds > 0:
        raise HeatMapError(f"step must be a positive duration, not {step!r}")
    return seconds


# -- per-event binning --------------------------------------------------------------
def bin_events(
    time,
    values,
    *,
    step=None,
    rows: int = DEFAULT_ROWS,
    row_size: float | None = None,
    scale: str = "linear",
    min_value: float | None = None,
    max_value: float | None = None,
    quantile: float | None = None,
    time_unit: str | None = None,
    time_name: str | None = None,
) -> HeatBins:
    """Count events per (time column, value row).

    step: column width (seconds, '100ms', Timedelta); default the smallest
    of 1/2/5 x 10**k seconds giving at most 150 columns.
    rows / row_size: number of value rows (default 50) or, for linear
    rows, their width (default: the smallest 1/2/5 x 10**k width giving
    at most `rows` rows). scale "linear" or "log" (geometric rows).
    max_value / quantile (e.g. 0.99): the top of the value axis; events
    above it are not drawn and counted in .above. min_value: the bottom
    (default 0 for linear, the smallest positive value for log); events
    below it are drawn in row 0 and counted in .below.
    """
    if scale not in ("linear", "log"):
        raise HeatMapError(f"scale must be 'linear' or 'log', not {scale!r}")
    if max_value is not None and quantile is not None:
        raise HeatMapError("give max_value= or quantile=, not both")
    if rows < 1:
        raise HeatMapError(f"rows must be >= 1, not {rows}")
    unit = time_unit_of(time, time_name, time_unit)
    ticks, per_second, origin = _time_ticks(time, unit)
    vals = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if vals.dtype.kind not in "iuf":
        raise HeatMapError(f"the value column holds {vals.dtype}, not numbers; convert it first")
    if len(ticks) != len(vals):
        raise HeatMapError(f"{len(ticks)} times for {len(vals)} values")
    if len(vals) == 0:
        raise HeatMapError("no events to draw: the frame is empty")
    if vals.dtype.kind == "f" and np.isnan(vals).any() or (
            ticks.dtype.kind == "f" and np.isnan(ticks).any()):
        raise HeatMapError("times or values contain NaN; drop those rows first (.dropna())")

    col, n_cols, step_s, t_first = _columns(ticks, per_second, parse_step(step))
    edges, row_of, integer_rows = _value_rows(vals, rows, row_size, scale, min_value,
                                              max_value, quantile)
    n_rows = len(edges) - 1
    row = row_of(vals)
    below = int(np.count_nonzero(row < 0))
    np.clip(row, 0, n_rows, out=row)  # row n_rows collects the events above the top
    flat = col * (n_rows + 1) + row
    grid = np.bincount(flat, minlength=n_cols * (n_rows + 1)).reshape(n_cols, n_rows + 1)
    above = int(grid[:, n_rows].sum())
    counts = np.ascontiguousarray(grid[:, :n_rows].T)
    return HeatBins(
        counts=counts,
        time_edges=np.arange(n_cols + 1) * step_s,
        value_edges=edges,
        scale=scale,
        step=step_s,
        start=_start(t_first, origin),
        time_unit=unit,
        above=above,
        below=below,
        integer_values=integer_rows,
    )


def _columns(ticks: np.ndarray, per_second: int, step_s: float | None):
    t_first, t_last = ticks.min(), ticks.max()
    span_s = float(t_last - t_first) / per_second
    if step_s is None:
        step_s = nice_ceil(span_s / DEFAULT_MAX_COLUMNS) if span_s > 0 else 1.0
    step_ticks = step_s * per_second
    if ticks.dtype.kind == "i" and float(step_ticks).is_integer():
        col = (ticks - t_first) // np.int64(step_ticks)  # exact for integer clocks
    else:
        col = np.floor((ticks - t_first) / step_ticks).astype(np.int64)
    n_cols = int(col.max()) + 1
    return col, n_cols, step_s, t_first


def _value_rows(vals, rows, row_size, scale, min_value, max_value, quantile):
    """(edges, function value -> row index (may be <0 or >= n_rows), integer rows?)."""
    data_min, data_max = vals.min(), vals.max()
    if quantile is not None:
        if not 0 < quantile <= 1:
            raise HeatMapError(f"quantile must be within (0, 1], e.g. 0.99, not {quantile}")
        max_value = float(np.quantile(vals, quantile))
    top = float(data_max if max_value is None else max_value)
    integer_data = vals.dtype.kind in "iu"
    if scale == "linear":
        bottom = float(min(0, data_min) if min_value is None else min_value)
        if top < bottom:
            raise HeatMapError(f"max_value {top} is below min_value {bottom}")
        if row_size is None:
            width = (top - bottom + (1 if integer_data else 0)) / rows
            row_size = nice_ceil(width) if width > 0 else 1.0
            if integer_data:
                row_size = max(1.0, float(math.ceil(row_size)))
        elif row_size <= 0:
            raise HeatMapError(f"row_size must be positive, not {row_size}")
        n_rows = int(math.floor((top - bottom) / row_size)) + 1  # the top value's row is drawn
        edges = bottom + np.arange(n_rows + 1) * row_size
        whole = integer_data and float(row_size).is_integer() and float(bottom).is_integer()
        cut = top < data_max  # a cut-off inside the top row's span still drops what is above

        def row_of(v, bottom=bottom, size=row_size, whole=whole, top=top, cut=cut):
            if whole:
                row = (v.astype(np.int64, copy=False) - np.int64(bottom)) // np.int64(size)
            else:
                row = np.floor((v - bottom) / size).astype(np.int64)
            if cut:
                row[v > top] = len(edges) - 1
            return row

        return edges, row_of, whole

    positive = vals[vals > 0] if min_value is None else None
    bottom = float(positive.min() if min_value is None and positive.size else (min_value or 1.0))
    if bottom <= 0:
        raise HeatMapError(f"a log scale needs min_value > 0, not {bottom}")
    if top <= bottom:
        top = bottom * 2
    edges = bottom * (top / bottom) ** (np.arange(rows + 1) / rows)
    edges[-1] = top
    factor = rows / math.log(top / bottom)

    def row_of(v, bottom=bottom, top=top, factor=factor, rows=rows):
        with np.errstate(divide="ignore", invalid="ignore"):
            row = np.floor(np.log(np.maximum(v, bottom * 1e-300) / bottom) * factor)
        row = np.where(v <= 0, -1, row).astype(np.int64)
        np.minimum(row, rows - 1, out=row)
        row[v > top] = rows
        row[(v < bottom)] = -1
        return row

    return edges, row_of, False


# -- in-kernel heat maps: histogram snapshots over time -------------------------------
def bin_hist(
    hist: pd.DataFrame,
    *,
    time: str = "time",
    step=None,
    max_value: float | None = None,
    time_marks: str = "end",
) -> HeatBins:
    """Heat-map bins from a histogram frame with a time column.

    Each distinct time is one snapshot holding that interval's counts; with
    time_marks="end" (default) the time is when the snapshot was taken, so
    the column covers [time - step, time); "start" means [time, time + step).
    step defaults to the frame's attrs["interval"], else the smallest gap
    between snapshots.
    Rows are the histogram's buckets from the lowest to the highest
    non-empty one (scale "log2" for log2 histograms). Key columns other
    than time are summed over. max_value drops buckets starting above it.
    """
    if time not in hist.columns:
        raise HeatMapError(f"the histogram has no {time!r} column; an in-kernel heat map "
                           "needs one snapshot per interval (capture with an interval), "
                           "or pass per-event data instead")
    key_columns(hist)
    if time_marks not in ("end", "start"):
        raise HeatMapError(f"time_marks must be 'end' or 'start', not {time_marks!r}")
    kind = hist_type_of(hist)
    part = hist[hist["count"] > 0]
    if max_value is not None:
        above_mask = part["low"].to_numpy(dtype=np.float64) > max_value
    else:
        above_mask = np.zeros(len(part), dtype=bool)
    if part.empty or above_mask.all():
        raise HeatMapError("the histogram has no counts to draw")
    above = int(part["count"].to_numpy()[above_mask].sum())
    drawn = part[~above_mask]
    slots = slots_of(drawn)
    first_slot, last_slot = int(slots.min()), int(slots.max())
    all_slots = np.arange(first_slot, last_slot + 1)
    if kind == "log2":
        lows, highs = log2_bounds(all_slots)
        edges = np.append(lows.astype(np.float64), float(highs[-1]) + 1)
    else:
        width = step_of(hist)
        edges = np.arange(first_slot, last_slot + 2, dtype=np.float64) * width

    unit = time_unit_of(hist[time], time, None)
    times = hist[time]
    ticks, per_second, origin = _time_ticks(times, unit)
    snap = np.unique(ticks)
    if step is not None:
        step_s = parse_step(step)
    elif hist.attrs.get("interval"):  # captures record their interval
        step_s = float(hist.attrs["interval"])
    elif len(snap) > 1:
        step_s = float(np.diff(snap).min()) / per_second
    else:
        step_s = float(snap[0]) / per_second if origin is None and snap[0] > 0 else 1.0
    step_ticks = step_s * per_second
    t_ticks, _, _ = _time_ticks(drawn[time], unit)
    first = snap.min()
    col = np.rint((t_ticks - first) / step_ticks).astype(np.int64)
    n_cols = int(np.rint((snap.max() - first) / step_ticks)) + 1
    row = slots - first_slot
    counts = np.zeros((len(all_slots), n_cols), dtype=np.int64)
    np.add.at(counts, (row, col), drawn["count"].to_numpy(dtype=np.int64))
    origin_ticks = first - step_ticks if time_marks == "end" else first
    return HeatBins(
        counts=counts,
        time_edges=np.arange(n_cols + 1) * step_s,
        value_edges=edges,
        scale="log2" if kind == "log2" else "linear",
        step=step_s,
        start=_start(origin_ticks, origin),
        time_unit=unit,
        above=above,
        integer_values=True,
        meta={"source": "hist"},
    )
