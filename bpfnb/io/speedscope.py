"""Export folded stacks to speedscope's JSON file format (a "sampled" profile).

    doc = to_speedscope(df, name="on-CPU")     # dict, json.dump-able
    write_speedscope(df, "cpu.speedscope.json") # open it at https://www.speedscope.app

Format: https://www.speedscope.app/file-format-schema.json. Frames are
shared by name; each row of the frame becomes one sample (its stack as
frame indices, root first) weighted by its value. Key columns (comm, pid)
become root frames, as in write_folded.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .folded import VALUE, _check_frame, stacks_with_keys

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
# bpfnb units -> speedscope ValueUnit
UNITS = {
    "samples": "none", "none": "none", "count": "none",
    "ns": "nanoseconds", "nanoseconds": "nanoseconds",
    "us": "microseconds", "microseconds": "microseconds",
    "ms": "milliseconds", "milliseconds": "milliseconds",
    "s": "seconds", "seconds": "seconds",
    "bytes": "bytes",
}


def to_speedscope(df: pd.DataFrame, *, name: str = "bpfnb", unit: str = "samples",
                  keys: list[str] | None = None) -> dict:
    """A speedscope file (dict) with one sampled profile of the stacks frame."""
    _check_frame(df)
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(sorted(UNITS))}")
    frame_index: dict[str, int] = {}
    samples = []
    for stack in stacks_with_keys(df, keys):
        samples.append([frame_index.setdefault(f, len(frame_index)) for f in stack.split(";")])
    weights = df[VALUE].to_numpy()
    weights = weights.astype(np.int64) if np.all(weights == np.round(weights)) else weights
    total = weights.sum() if len(weights) else 0
    from .. import __version__

    return {
        "$schema": SCHEMA_URL,
        "shared": {"frames": [{"name": f} for f in frame_index]},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": UNITS[unit],
                "startValue": 0,
                "endValue": total.item() if hasattr(total, "item") else total,
                "samples": samples,
                "weights": weights.tolist(),
            }
        ],
        "name": name,
        "activeProfileIndex": 0,
        "exporter": f"bpfnb {__version__}",
    }


def write_speedscope(df: pd.DataFrame, path, **options) -> str:
    """Write to_speedscope(df, **options) as JSON to path; returns the path."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(to_speedscope(df, **options), out, separators=(",", ":"))
    return str(path)


__all__ = ["to_speedscope", "write_speedscope", "SCHEMA_URL", "UNITS"]
