"""Histogram frames: [key columns...], low, high, count.

Bucket bounds follow bcc's printing exactly:
- log2 (bpf_log2l): slot 0 is never filled by bpf_log2l; slot 1 holds 0 and 1
  ("0 -> 1"), slot i>1 holds (1 << (i-1)) .. (1 << i) - 1 ("4096 -> 8191").
- linear: slot i holds the value i * step .. i * step + step - 1.

The frame's attrs carry {"hist_type": "log2"|"linear", "step": int}.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def log2_bounds(slots) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of log2 slots as bcc's print_log2_hist labels them."""
    slots = np.asarray(slots, dtype=np.int64)
    high = (np.left_shift(np.int64(1), slots) - 1).astype(np.uint64)
    low = np.right_shift(np.left_shift(np.int64(1), slots), 1).astype(np.uint64)
    low = np.where(low == high, low - 1, low)  # slot 1: "0 -> 1"
    low = np.where(slots == 0, 0, low)
    high = np.where(slots == 0, 0, high)
    # slot 64 would overflow: clamp to the u64 range bcc would print
    return low.astype(np.uint64), high.astype(np.uint64)


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
        raise ValueError(f"hist_type must be 'log2' or 'linear', not {hist_type!r}")
    out = slots[keys].reset_index(drop=True).copy()
    out["low"] = low
    out["high"] = high
    out["count"] = slots["count"].to_numpy(dtype=np.int64)
    out = out.sort_values(keys + ["low"], kind="stable").reset_index(drop=True)
    out.attrs.update(hist_type=hist_type, step=int(step))
    return out
