"""Histogram frames as matplotlib bars, one bar per bucket, labelled like bcc.

    bpfnb.plot.hist(t.hist("dist"))                         # -> Axes
    bpfnb.plot.hist(h, by="disk", layout="small_multiples") # -> array of Axes

Buckets are laid out evenly (one slot per position, empty ones included so
gaps show), labelled "4096 -> 8191" as bcc prints them or compactly ("4K").
Modes found by bpfnb.frames.modes are shaded and their peaks marked.
matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BpfnbError
from ..frames.hist import hist_type_of, key_columns, log2_bounds, log2_slot, slots_of, step_of


def hist(
    hist_df: pd.DataFrame,
    ax=None,
    *,
    by: str | list[str] | None = None,
    layout: str = "overlay",
    mark_modes: bool = True,
    labels: str = "bcc",
    label: str | None = None,
    title: str | None = None,
    log_count: bool = False,
    color=None,
):
    """Bars of a histogram frame; returns the Axes (an array of Axes for small multiples).

    by: key columns that split the frame into several histograms (default:
    all key columns). layout: "overlay" (one Axes, translucent bars per key)
    or "small_multiples" (one Axes per key, shared x). labels: "bcc"
    ("4096 -> 8191") or "compact" ("4K"). label: the value's name for the
    x axis (bcc's val_type). log_count: log scale for counts.
    """
    import matplotlib.pyplot as plt

    if layout not in ("overlay", "small_multiples"):
        raise BpfnbError(f"layout must be 'overlay' or 'small_multiples', not {layout!r}")
    if labels not in ("bcc", "compact"):
        raise BpfnbError(f"labels must be 'bcc' or 'compact', not {labels!r}")
    keys = key_columns(hist_df)
    by = keys if by is None else ([by] if isinstance(by, str) else list(by))
    unknown = [k for k in by if k not in keys]
    if unknown:
        raise BpfnbError(f"by={unknown[0]!r} is not a key column of this histogram "
                         f"(key columns: {keys or 'none'})")
    if len(hist_df) == 0:
        raise BpfnbError("the histogram is empty: nothing to plot")
    groups = _groups(hist_df, by)
    slots, tick_labels = _axis(hist_df, labels)
    first = slots[0]

    if layout == "small_multiples" and len(groups) > 1:
        if ax is None:
            fig, axes = plt.subplots(len(groups), 1, sharex=True,
                                     figsize=(8, 1.2 + 1.6 * len(groups)), squeeze=False)
            axes = axes[:, 0]
        else:
            axes = np.atleast_1d(ax).ravel()
            if len(axes) != len(groups):
                raise BpfnbError(f"small multiples need {len(groups)} Axes, got {len(axes)}; "
                                 "pass ax=None to make them")
        for a, (name, part) in zip(axes, groups):
            _bars(a, part, first, len(slots), color, 1.0, None, log_count)
            if mark_modes:
                _mark_modes(a, part.drop(columns=by), first)
            a.set_title(name, fontsize="small", loc="left")
        _label_x(axes[-1], slots, tick_labels, label or hist_df.attrs.get("label", "value"))
        if title:
            axes[0].figure.suptitle(title)
        return axes

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    single = len(groups) == 1
    for i, (name, part) in enumerate(groups):
        _bars(ax, part, first, len(slots), color if single else None,
              1.0 if single else 0.55, None if single else name, log_count)
        if mark_modes and single:
            _mark_modes(ax, part.drop(columns=by), first)
    if not single:
        ax.legend(fontsize="small", title=", ".join(by))
    _label_x(ax, slots, tick_labels, label or hist_df.attrs.get("label", "value"))
    if title:
        ax.set_title(title)
    return ax


def _groups(hist_df: pd.DataFrame, by: list[str]) -> list[tuple[str, pd.DataFrame]]:
    if not by:
        return [("", hist_df)]
    out = []
    for key, part in hist_df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((", ".join(f"{k}={v}" for k, v in zip(by, key)), part))
    return out


def _axis(hist_df: pd.DataFrame, labels: str) -> tuple[np.ndarray, list[str]]:
    """Every slot from the lowest to the highest, and its tick label."""
    slots = slots_of(hist_df)
    all_slots = np.arange(slots.min(), slots.max() + 1)
    if hist_type_of(hist_df) == "log2":
        low, high = log2_bounds(all_slots)
    else:
        step = step_of(hist_df)
        low, high = all_slots * step, all_slots * step + step - 1
    low, high = [int(x) for x in low], [int(x) for x in high]
    if labels == "compact":
        text = [compact(lo) for lo in low]
    else:
        text = [f"{lo} -> {hi}" if lo != hi else f"{lo}" for lo, hi in zip(low, high)]
    return all_slots, text


def compact(x: int) -> str:
    """4096 -> '4K', 1048576 -> '1M' (powers of 1024, as bucket bounds are)."""
    for div, suffix in ((1 << 60, "E"), (1 << 50, "P"), (1 << 40, "T"), (1 << 30, "G"),
                        (1 << 20, "M"), (1 << 10, "K")):
        if x >= div:
            v = x / div
            return f"{v:.0f}{suffix}" if v >= 10 or v == int(v) else f"{v:.1f}{suffix}"
    return str(x)


def _bars(ax, part, first, n, color, alpha, name, log_count):
    heights = np.zeros(n)
    np.add.at(heights, slots_of(part) - first, part["count"].to_numpy(dtype=float))
    kwargs = {"color": color} if color is not None else {}
    ax.bar(np.arange(n), heights, width=0.9, alpha=alpha, label=name, **kwargs)
    if log_count:
        ax.set_yscale("log")
    ax.set_ylabel("count")
    ax.set_xlim(-0.6, n - 0.4)


def _mark_modes(ax, part, first):
    from ..frames.modes import modes

    found = modes(part)
    if len(found) == 0:
        return
    if ax.get_yscale() == "linear":  # headroom above the bars for the markers
        ax.set_ylim(top=float(part["count"].max()) / 0.82)
    above = ax.get_xaxis_transform()  # x in buckets, y in axes fraction
    for i, row in enumerate(found.itertuples(index=False)):
        lo, hi, peak = (_slot_of_bound(v, part) for v in (row.low, row.high, row.peak_low))
        if len(found) > 1:
            ax.axvspan(lo - first - 0.5, hi - first + 0.5, color=f"C{i + 1}", alpha=0.08, lw=0)
        text = f"mode {i + 1}: {row.share:.0%}" if len(found) > 1 else "mode"
        ax.text(peak - first, 0.97, text, transform=above, ha="center", va="top",
                fontsize="small", color="0.25")
        ax.plot([peak - first], [0.88], marker="v", color="0.25", ms=6, transform=above)


def _slot_of_bound(value, part: pd.DataFrame) -> int:
    """The slot whose low or high bound is value."""
    if hist_type_of(part) == "log2":
        return int(log2_slot(np.array([value], dtype=np.uint64))[0])
    return int(value) // step_of(part)


def _label_x(ax, slots, tick_labels, label):
    n = len(slots)
    every = max(1, int(np.ceil(n / 16)))
    pos = np.arange(0, n, every)
    ax.set_xticks(pos, [tick_labels[i] for i in pos], rotation=45, ha="right",
                  fontsize="small")
    ax.set_xlabel(label)
