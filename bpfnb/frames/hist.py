"""Histogram frames: [key columns...], low, high, count.

Bucket bounds follow bcc's printing exactly:
- log2 (bpf_log2l): slot 0 is never filled by bpf_log2l; slot 1 holds 0 and 1
  ("0 -> 1"), slot i>1 holds (1 << (i-1)) .. (1 << i) - 1 ("4096 -> 8191");
  slot 64 holds 2**63 .. 2**64 - 1.
- linear: slot i holds the values i * step .. i * step + step - 1.

The frame's attrs carry {"hist_type": "log2"|"linear", "step": int}. Every
column other than low, high and count is a key column (a `time` column of an
in-kernel heat map is one too).

Functions here are pure pandas/numpy: from_slots (map slots -> frame),
from_values (raw values -> frame, bucketed as bpf_log2l does), percentiles,
combine and diff.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import BpfnbError

BOUND_COLUMNS = ("low", "high", "count")
LOG2_SLOTS = 65  # bcc's log2_index_max: slots 0..64 hold any u64


class HistogramError(BpfnbError, ValueError):
    """A histogram frame or the values for one are not usable as given."""


# -- bucket math ---------------------------------------------------------
def log2_bounds(slots) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of log2 slots as bcc's print_log2_hist labels them."""
    slots = np.asarray(slots, dtype=np.int64)
    if slots.size and (slots.min() < 0 or slots.max() >= LOG2_SLOTS):
        raise HistogramError(
            f"log2 slots must be 0..{LOG2_SLOTS - 1}, got {slots.min()}..{slots.max()}; "
            "is this a linear histogram? pass hist_type='linear'"
        )
    one = np.uint64(1)
    shift = np.minimum(slots, 63).astype(np.uint64)
    top = np.left_shift(one, shift)  # 1 << i, for i < 64
    high = np.where(slots >= 64, np.uint64(0xFFFF_FFFF_FFFF_FFFF), top - one)
    low = np.where(slots >= 64, np.uint64(1 << 63), np.right_shift(top, one))
    low = np.where(slots == 1, np.uint64(0), low)  # slot 1: "0 -> 1"
    low = np.where(slots == 0, np.uint64(0), low)
    high = np.where(slots == 0, np.uint64(0), high)
    return low.astype(np.uint64), high.astype(np.uint64)


def log2_slot(values) -> np.ndarray:
    """The slot bpf_log2l(v) gives each value: 0 and 1 -> 1, v >= 2 -> floor(log2 v) + 1.

    Values must be non-negative integers (floats are truncated, as the C
    conversion to unsigned long would).
    """
    v = np.asarray(values)
    if v.dtype.kind == "f":
        v = np.trunc(v)
    v = v.astype(np.uint64, copy=False)
    # frexp gives the bit length; float rounding of values >= 2**53 may be
    # one off near powers of two, corrected exactly below
    _, exp = np.frexp(v.astype(np.float64))
    slot = exp.astype(np.int64)
    big = v >= np.uint64(1 << 53)
    if big.any():
        s = np.minimum(slot[big], 64)
        vb = v[big]
        low = np.left_shift(np.uint64(1), (s - 1).astype(np.uint64))
        s = np.where(low > vb, s - 1, s)
        slot[big] = s
    return np.maximum(slot, 1)


def slots_of(hist: pd.DataFrame) -> np.ndarray:
    """Slot index of every row of a histogram frame (inverse of from_slots)."""
    hist_type, step = hist_type_of(hist), step_of(hist)
    if hist_type == "log2":
        return _log2_slot_of_high(hist["high"].to_numpy(dtype=np.uint64))
    return hist["low"].to_numpy(dtype=np.int64) // step


def _log2_slot_of_high(high: np.ndarray) -> np.ndarray:
    # a log2 slot's high bound is (1 << slot) - 1: its bit length is the slot
    return np.where(high == 0, 0, log2_slot(high))


def hist_type_of(hist: pd.DataFrame) -> str:
    """'log2' or 'linear': from attrs, else guessed from the bounds."""
    kind = hist.attrs.get("hist_type")
    if kind in ("log2", "linear"):
        return kind
    if len(hist) == 0:
        return "log2"
    high = hist["high"].to_numpy(dtype=np.uint64)
    low = hist["low"].to_numpy(dtype=np.uint64)
    exp_low, exp_high = log2_bounds(_log2_slot_of_high(high))
    widths = high - low
    if np.array_equal(exp_low, low) and np.array_equal(exp_high, high) and (
        len(np.unique(widths)) > 1 or len(hist) == 1 and high[0] != low[0]
    ):
        return "log2"
    return "linear"


def step_of(hist: pd.DataFrame) -> int:
    """The linear bucket width (1 for log2 frames)."""
    step = hist.attrs.get("step")
    if step:
        return int(step)
    if hist_type_of(hist) == "linear" and len(hist):
        return int(hist["high"].iloc[0] - hist["low"].iloc[0] + 1)
    return 1


def key_columns(hist: pd.DataFrame) -> list[str]:
    """Every column that is not low, high or count, in frame order."""
    missing = [c for c in BOUND_COLUMNS if c not in hist.columns]
    if missing:
        raise HistogramError(
            f"not a histogram frame: no {', '.join(missing)} column(s); "
            "use Trace.hist(name) or bpfnb.frames.hist.from_values(values)"
        )
    return [c for c in hist.columns if c not in BOUND_COLUMNS]


# -- building frames -----------------------------------------------------
def from_slots(
    slots: pd.DataFrame,
    hist_type: str = "log2",
    step: int = 1,
    keys: list[str] | None = None,
) -> pd.DataFrame:
    """Turn a frame of [keys..., slot, count] into a tidy histogram frame.

    Rows with a zero count are dropped; rows are sorted by keys, then low.
    """
    keys = list(keys or [])
    slots = slots[slots["count"] != 0]
    slot = slots["slot"].to_numpy(dtype=np.int64)
    if hist_type == "log2":
        low, high = log2_bounds(slot)
    elif hist_type == "linear":
        low = (slot * step).astype(np.int64)
        high = low + step - 1
    else:
        raise HistogramError(f"hist_type must be 'log2' or 'linear', not {hist_type!r}")
    out = slots[keys].reset_index(drop=True).copy()
    out["low"] = low
    out["high"] = high
    out["count"] = slots["count"].to_numpy(dtype=np.int64)
    out = out.sort_values(keys + ["low"], kind="stable").reset_index(drop=True)
    out.attrs.update(hist_type=hist_type, step=int(step))
    return out


def from_values(
    values,
    hist_type: str = "log2",
    *,
    step: int = 1,
    value: str | None = None,
    by: str | Sequence | None = None,
    keys: str | Sequence | None = None,
) -> pd.DataFrame:
    """Bucket raw values into a histogram frame, as bpf_log2l / a linear map would.

    values: a Series or array of non-negative numbers, or a DataFrame with
    `value=` naming the column (and `by=` naming key columns). `by` (alias
    `keys`) may also be a Series/array, or a list of them, aligned with values.
    For log2, value 0 and 1 go to slot 1 and v >= 2 to floor(log2 v) + 1;
    for linear, v goes to slot v // step.
    """
    if hist_type not in ("log2", "linear"):
        raise HistogramError(f"hist_type must be 'log2' or 'linear', not {hist_type!r}")
    if by is not None and keys is not None:
        raise HistogramError("pass the key columns as by= or keys=, not both")
    by = keys if by is None else by
    step = int(step)
    if step < 1:
        raise HistogramError(f"step must be a positive integer, not {step}")
    vals, key_frame = _values_and_keys(values, value, by)
    slot = _slots_for(vals, hist_type, step)
    if key_frame is None:
        counts = np.bincount(slot)
        nz = np.flatnonzero(counts)
        slots = pd.DataFrame({"slot": nz, "count": counts[nz]})
        return from_slots(slots, hist_type, step)
    names = list(key_frame.columns)
    grouped = key_frame.assign(slot=slot).groupby(names + ["slot"], sort=True, observed=True,
                                                  dropna=False)
    slots = grouped.size().rename("count").reset_index()
    return from_slots(slots, hist_type, step, names)


def _values_and_keys(values, value, by) -> tuple[np.ndarray, pd.DataFrame | None]:
    """The values as an array and the keys as a frame aligned with them (or None)."""
    frame = values if isinstance(values, pd.DataFrame) else None
    if frame is not None:
        series = frame[_value_column(frame, value, by)]
    elif isinstance(values, pd.Series):
        series = values
    else:
        series = pd.Series(np.asarray(values))
    vals = series.to_numpy()
    if by is None:
        return vals, None
    cols = {}
    for i, k in enumerate(_as_list(by)):
        if isinstance(k, str):
            if frame is None or k not in frame.columns:
                raise HistogramError(
                    f"by={k!r} names a column, but the values are not a DataFrame with it; "
                    "pass a DataFrame and value=, or the key values themselves"
                )
            cols[k] = frame[k].to_numpy()
        else:
            arr = k.to_numpy() if isinstance(k, pd.Series) else np.asarray(k)
            if len(arr) != len(vals):
                raise HistogramError(f"by[{i}] has {len(arr)} entries for {len(vals)} values")
            cols[getattr(k, "name", None) or f"key{i}"] = arr
    return vals, pd.DataFrame(cols)


def _value_column(frame: pd.DataFrame, value, by) -> str:
    if value is None:
        keys = [k for k in _as_list(by) if isinstance(k, str)]
        numeric = [c for c in frame.columns
                   if pd.api.types.is_numeric_dtype(frame[c]) and c not in keys]
        if len(numeric) != 1:
            raise HistogramError(
                f"which column holds the values? pass value=, one of {list(frame.columns)}"
            )
        return numeric[0]
    if value not in frame.columns:
        raise HistogramError(f"no column {value!r}; the frame has {list(frame.columns)}")
    return value


def _as_list(by) -> list:
    if by is None:
        return []
    if isinstance(by, (str, pd.Series, np.ndarray)):
        return [by]
    return list(by)


def _slots_for(vals: np.ndarray, hist_type: str, step: int) -> np.ndarray:
    if vals.dtype.kind not in "iuf":
        try:
            vals = vals.astype(np.float64)
        except (TypeError, ValueError):
            raise HistogramError(
                f"values must be numbers, not {vals.dtype}; convert the column first"
            ) from None
    if vals.dtype.kind == "f":
        nan = np.isnan(vals)
        if nan.any():
            raise HistogramError(
                f"{int(nan.sum())} values are NaN; drop them first (e.g. .dropna())"
            )
    if vals.dtype.kind in "if" and len(vals) and vals.min() < 0:
        raise HistogramError(
            f"{int((vals < 0).sum())} values are negative (min {vals.min()}); "
            "a BPF histogram counts unsigned values: filter them or take abs()"
        )
    if hist_type == "log2":
        return log2_slot(vals)
    if vals.dtype.kind == "f":
        vals = np.floor(vals)
    return (vals.astype(np.int64) // step).astype(np.int64)


# -- analysis --------------------------------------------------------------
def percentiles(hist: pd.DataFrame, q: Iterable[float] = (50, 90, 99), *,
                method: str = "interpolate") -> pd.DataFrame:
    """Percentiles of a histogram frame, one row per key (one row if unkeyed).

    Columns: the key columns, then "p50", "p90", ... The percentile's bucket
    is the first whose running count reaches q% of the events; method
    "interpolate" places it linearly inside [low, high + 1), "low"/"high"
    give the bucket's bounds (what reading bcc's printout gives).
    """
    qs = [float(x) for x in q]
    if any(not 0 <= x <= 100 for x in qs):
        raise HistogramError(f"percentiles must be within 0..100, got {qs}")
    if method not in ("interpolate", "low", "high"):
        raise HistogramError(f"method must be 'interpolate', 'low' or 'high', not {method!r}")
    keys = key_columns(hist)
    names = [_pname(x) for x in qs]
    if len(hist) == 0:
        return pd.DataFrame(columns=keys + names)
    if (hist["count"] < 0).any():
        raise HistogramError("the histogram has negative counts (a diff?); percentiles need counts >= 0")
    rows = []
    groups = hist.groupby(keys, sort=False, dropna=False) if keys else [((), hist)]
    for key, part in groups:
        part = part.sort_values("low", kind="stable")
        low = part["low"].to_numpy(dtype=np.float64)
        high = part["high"].to_numpy(dtype=np.float64)
        count = part["count"].to_numpy(dtype=np.float64)
        cum = np.cumsum(count)
        target = np.asarray(qs) / 100.0 * cum[-1]
        idx = np.minimum(np.searchsorted(cum, target, side="left"), len(cum) - 1)
        before = cum[idx] - count[idx]
        if method == "low":
            res = low[idx]
        elif method == "high":
            res = high[idx]
        else:
            frac = np.where(count[idx] > 0, (target - before) / np.where(count[idx] > 0, count[idx], 1), 0)
            res = low[idx] + (high[idx] + 1 - low[idx]) * np.clip(frac, 0, 1)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(list(key) + list(res))
    return pd.DataFrame(rows, columns=keys + names)


def _pname(x: float) -> str:
    return f"p{int(x)}" if float(x).is_integer() else f"p{x:g}"


def combine(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Sum of two histogram frames (same type, step and key columns)."""
    return _merge(a, b, 1)


def diff(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """a - b per key and bucket; zero rows are dropped, negative counts kept.

    Differencing two snapshots of one cumulative map gives the interval's
    counts; differencing two runs shows what moved.
    """
    return _merge(a, b, -1)


def _merge(a: pd.DataFrame, b: pd.DataFrame, sign: int) -> pd.DataFrame:
    kind_a, kind_b = hist_type_of(a), hist_type_of(b)
    step_a, step_b = step_of(a), step_of(b)
    if (kind_a, step_a) != (kind_b, step_b):
        raise HistogramError(
            f"cannot combine a {kind_a} histogram (step {step_a}) with a {kind_b} one "
            f"(step {step_b}); rebucket one with from_values to match"
        )
    keys_a, keys_b = key_columns(a), key_columns(b)
    if keys_a != keys_b:
        raise HistogramError(
            f"the histograms have different keys ({keys_a} vs {keys_b}); "
            "select or rename columns so they match"
        )
    other = b.assign(count=b["count"].astype(np.int64) * sign)
    both = pd.concat([a.assign(count=a["count"].astype(np.int64)), other], ignore_index=True)
    group = keys_a + ["low", "high"]
    out = both.groupby(group, sort=True, dropna=False)["count"].sum().reset_index()
    out = out[out["count"] != 0].reset_index(drop=True)
    if kind_a == "log2":
        out["low"] = out["low"].astype(np.uint64)
        out["high"] = out["high"].astype(np.uint64)
    out.attrs.update(hist_type=kind_a, step=step_a)
    return out
