"""Timestamps: bpf_ktime_get_ns() counts CLOCK_MONOTONIC nanoseconds; a
capture records the offset to wall-clock time when it starts."""

from __future__ import annotations

import numpy as np
import pandas as pd


def wall_time(ts_ns, monotonic_to_wall_ns: int, tz: str | None = None) -> pd.Series:
    """Monotonic nanoseconds (bpf_ktime_get_ns) -> wall-clock datetime64[ns]."""
    values = np.asarray(ts_ns, dtype=np.int64) + np.int64(monotonic_to_wall_ns)
    series = pd.Series(values.astype("datetime64[ns]"),
                       index=ts_ns.index if isinstance(ts_ns, pd.Series) else None,
                       name=getattr(ts_ns, "name", None))
    return series.dt.tz_localize("UTC").dt.tz_convert(tz) if tz else series


def relative_seconds(ts_ns, start_ns: int | None = None) -> np.ndarray:
    """Seconds since start_ns (default: the first timestamp)."""
    values = np.asarray(ts_ns, dtype=np.int64)
    if start_ns is None:
        start_ns = int(values.min()) if len(values) else 0
    return (values - np.int64(start_ns)) / 1e9
