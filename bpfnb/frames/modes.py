"""Modes of a histogram: the separate humps an average hides.

Method (on the buckets as they are, log2 or linear, in bucket order with
empty buckets filled in as zeros, padded with a zero bucket at each end):

1. Optional smoothing: centred window sums over `smooth` buckets
   (default 1 = none; log2 buckets are already coarse, a wide linear
   histogram of few events may want 3 or 5).
2. Candidate peaks: local maxima; a plateau of equal buckets is one peak.
3. Topographic prominence of each peak: its height minus the higher of the
   two lowest points between it and the nearest higher bucket on each side
   (or the padded zero edge).
4. A peak is a mode when its prominence is at least `min_prominence` of its
   height (default 0.25: the valley dips a quarter below the peak) AND the
   dip is outside counting noise: prominence / sqrt(peak + valley)
   (Poisson counts) is at least z + sqrt(2 ln n) for n buckets (default z=2;
   the second term allows for the deepest of n noisy buckets, which grows
   with n) AND its mode holds at least `min_share` of the events (default
   1%). The highest peak is always a mode, so any non-empty histogram has one.
5. Each mode spans from the valley (lowest bucket) after the previous mode
   to the valley before the next one; the valley bucket goes to the mode on
   its left. The first and last modes reach the first and last non-empty
   buckets.

Noise cannot invent modes: a wiggle must be both a relative dip and well
outside counting noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .hist import HistogramError, hist_type_of, key_columns, log2_bounds, slots_of, step_of

MODE_COLUMNS = ["low", "high", "peak_low", "peak_high", "count", "share"]


def modes(
    hist: pd.DataFrame,
    *,
    min_prominence: float = 0.25,
    z: float = 2.0,
    min_share: float = 0.01,
    smooth: int = 1,
) -> pd.DataFrame:
    """One row per mode: [keys...], low, high, peak_low, peak_high, count, share.

    low/high: the range of buckets the mode covers; peak_low/peak_high: its
    highest bucket; count: events in the range; share: count / all events of
    that key. Rows are ordered by key, then low. See the module docstring
    for the method and its thresholds.
    """
    keys = key_columns(hist)
    if smooth < 1 or smooth % 2 == 0:
        raise HistogramError(f"smooth must be an odd number of buckets >= 1, not {smooth}")
    if (hist["count"] < 0).any():
        raise HistogramError("the histogram has negative counts (a diff?); modes need counts >= 0")
    out = []
    groups = hist.groupby(keys, sort=True, dropna=False) if keys else [((), hist)]
    for key, part in groups:
        part = part[part["count"] > 0]
        if part.empty:
            continue
        key = key if isinstance(key, tuple) else (key,)
        for row in _modes_of_one(part, min_prominence, z, min_share, smooth):
            out.append(list(key) + row)
    frame = pd.DataFrame(out, columns=keys + MODE_COLUMNS)
    for col, like in (("low", "low"), ("high", "high"), ("peak_low", "low"), ("peak_high", "high")):
        frame[col] = frame[col].astype(hist[like].dtype)
    frame["count"] = frame["count"].astype(np.int64)
    frame["share"] = frame["share"].astype(float)
    return frame


def _modes_of_one(part: pd.DataFrame, min_prominence, z, min_share, smooth) -> list[list]:
    slots = slots_of(part)
    order = np.argsort(slots, kind="stable")
    slots = slots[order]
    counts = part["count"].to_numpy(dtype=np.float64)[order]
    first = slots[0]
    n = int(slots[-1] - first + 1)
    dense = np.zeros(n)
    np.add.at(dense, slots - first, counts)
    # bounds of every dense bucket (empty ones included) from neighbouring rows
    bucket_low, bucket_high = _dense_bounds(part, int(first), n)
    heights = _smoothed(dense, smooth)
    total = dense.sum()

    peaks = _peaks(heights)
    prom = _prominences(heights, peaks)
    top = peaks[np.argmax(prom)]  # the highest peak: its prominence is its height
    z_needed = z + np.sqrt(2 * np.log(max(n, 2)))
    kept = [p for p, pr in zip(peaks, prom)
            if p == top or (pr >= min_prominence * heights[p]
                            and pr >= z_needed * np.sqrt(2 * heights[p] - pr))]
    ranges = _ranges(heights, kept)
    # tiny modes are tails of their neighbours: merge them into the larger side
    while len(kept) > 1:
        shares = [dense[a:b + 1].sum() / total for a, b in ranges]
        small = int(np.argmin(shares))
        if shares[small] >= min_share:
            break
        if kept[small] == top:
            break
        del kept[small]
        ranges = _ranges(heights, kept)

    rows = []
    for peak, (a, b) in zip(kept, ranges):
        # first non-empty bucket at or after a, last at or before b
        nz = np.flatnonzero(dense[a:b + 1]) + a
        a, b = int(nz[0]), int(nz[-1])
        count = dense[a:b + 1].sum()
        peak_bucket = a + int(np.argmax(dense[a:b + 1])) if smooth > 1 else peak
        rows.append([bucket_low[a], bucket_high[b], bucket_low[peak_bucket],
                     bucket_high[peak_bucket], int(count), count / total])
    return rows


def _dense_bounds(part: pd.DataFrame, first_slot: int, n: int):
    all_slots = np.arange(first_slot, first_slot + n)
    if hist_type_of(part) == "log2":
        return log2_bounds(all_slots)
    step = step_of(part)
    low = all_slots * step
    return low, low + step - 1


def _smoothed(dense: np.ndarray, width: int) -> np.ndarray:
    if width == 1:
        return dense
    # window sums, not means: they stay whole numbers (ties compare exactly)
    # and are Poisson counts themselves, so the noise test needs no rescaling
    return np.convolve(dense, np.ones(width), mode="same")


def _peaks(h: np.ndarray) -> np.ndarray:
    """Indices of local maxima; a plateau counts once (its first bucket)."""
    padded = np.concatenate([[0.0], h, [0.0]])
    peaks = []
    i = 1
    while i <= len(h):
        j = i
        while j < len(h) and padded[j + 1] == padded[i]:
            j += 1
        if padded[i] > padded[i - 1] and padded[i] > padded[j + 1]:
            peaks.append(i - 1)
        i = j + 1
    return np.asarray(peaks, dtype=np.int64)


def _prominences(h: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Height above the higher of the lowest points on each side, walking out
    until a higher bucket. Of two equal peaks, the left one treats the right
    one as higher, so a tie is measured by its valley, not counted twice."""
    padded = np.concatenate([[0.0], h, [0.0]])
    out = []
    for p in peaks + 1:
        height = padded[p]
        end = p
        while end + 1 < len(padded) and padded[end + 1] == height:
            end += 1  # the peak's own plateau
        left, left_min = p - 1, height
        while left >= 0 and padded[left] <= height:
            left_min = min(left_min, padded[left])
            left -= 1
        right, right_min = end + 1, height
        while right < len(padded) and padded[right] < height:
            right_min = min(right_min, padded[right])
            right += 1
        out.append(height - max(left_min, right_min))
    return np.asarray(out)


def _ranges(h: np.ndarray, peaks: list[int]) -> list[tuple[int, int]]:
    """Bucket index ranges of the modes, split at the lowest bucket between peaks."""
    peaks = sorted(peaks)
    bounds = [0]
    for a, b in zip(peaks, peaks[1:]):
        valley = a + int(np.argmin(h[a:b + 1]))
        bounds.append(valley + 1)
    bounds.append(len(h))
    return [(bounds[i], bounds[i + 1] - 1) for i in range(len(peaks))]
