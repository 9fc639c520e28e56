"""Export folded stacks to d3-flame-graph's JSON: nested {name, value, children}.

    tree = to_d3(df)             # dict for d3.flamegraph()'s datum
    write_d3(df, "stacks.json")

`value` is inclusive (the frame's samples including its children), which is
what d3-flame-graph expects: it derives self time by subtracting the
children. A differential export (other=baseline frame) adds `delta`
(this profile minus the baseline, per frame), for its differential mode.
Frames are merged by prefix and ordered by name (bpfnb.plot.flamelayout).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..plot.flamelayout import diff_layout, layout
from .folded import VALUE, _check_frame, stacks_with_keys


def to_d3(df: pd.DataFrame, *, other: pd.DataFrame | None = None, min_width: float = 0.0,
          root: str = "root", keys: list[str] | None = None) -> dict:
    """The stacks as one nested tree under a root named `root`."""
    _check_frame(df)
    stacks, values = stacks_with_keys(df, keys), df[VALUE].to_numpy()
    if other is not None:
        _check_frame(other)
        lay = diff_layout(stacks, values, stacks_with_keys(other, keys), other[VALUE].to_numpy(),
                          min_width=min_width)
        delta = lay.delta(normalize=False)
    else:
        lay = layout(stacks, values, min_width=min_width)
        delta = None
    nodes = []
    for k, (n, w) in enumerate(zip(lay.name.tolist(), lay.width.tolist())):
        node = {"name": lay.names[n], "value": w, "children": []}
        if delta is not None:
            node["delta"] = _plain(delta[k])
        nodes.append(node)
    top = {"name": root, "value": _plain(lay.total), "children": []}
    if delta is not None:
        top["delta"] = _plain(float(np.sum(delta[lay.depth == 0])) if len(lay) else 0.0)
    for node, parent in zip(nodes, lay.parent.tolist()):
        (top if parent < 0 else nodes[parent])["children"].append(node)
    return top


def _plain(v):
    v = float(v)
    return int(v) if v.is_integer() else v


def write_d3(df: pd.DataFrame, path, **options) -> str:
    """Write to_d3(df, **options) as JSON to path; returns the path."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(to_d3(df, **options), out, separators=(",", ":"))
    return str(path)


__all__ = ["to_d3", "write_d3"]
