"""bpfnb.flamegraph: folded stacks -> an interactive, shareable FlameGraph.

    fg = bpfnb.flamegraph(trace)                     # on-CPU, from t.stacks()
    fg = bpfnb.flamegraph(df, kind="offcpu")         # [keys..., stack, value]
    fg = bpfnb.flamegraph(after, kind="diff", other=before)
    fg                                               # in a notebook: the graph
    fg.save("cpu.svg"); fg.to_html(); fg.top()

In a notebook the output carries the interactive graph (text/html) and a
static SVG without script (image/svg+xml), so a notebook saved with its
outputs still shows the picture where scripts are stripped; a terminal
gets a text summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

import numpy as np
import pandas as pd

from ..errors import BpfnbError
from ..io.folded import STACK, VALUE, key_columns, read_folded, stacks_with_keys
from .flame_svg import render_svg
from .flamelayout import DEFAULT_MIN_WIDTH, FlameLayout, diff_layout, layout


class FlameGraphError(BpfnbError, ValueError):
    """Bad arguments to bpfnb.flamegraph (kind, input frame, file type)."""


@dataclass(frozen=True)
class Kind:
    title: str
    unit: str
    palette: str


KINDS = {
    "oncpu": Kind("On-CPU Flame Graph", "samples", "hot"),
    "offcpu": Kind("Off-CPU Time Flame Graph", "us", "io"),
    "offwake": Kind("Off-Wake Time Flame Graph", "us", "chain"),
    "wakeup": Kind("Wakeup Flame Graph", "us", "wakeup"),
    "diff": Kind("Differential Flame Graph", "samples", "diff"),
}


def flamegraph(
    frame_or_trace,
    kind: str = "oncpu",
    *,
    title: str | None = None,
    subtitle: str | None = None,
    unit: str | None = None,
    min_width: float = DEFAULT_MIN_WIDTH,
    inverted: bool = False,
    reverse: bool = False,
    other=None,
    name: str | None = None,
    keys: list[str] | None = None,
    width: int = 1200,
) -> "FlameGraph":
    """A FlameGraph of folded stacks.

    frame_or_trace: a Trace (its stacks output `name`), a DataFrame
    [keys..., stack, value] (key columns such as comm become root frames),
    or a folded-stacks file path. kind: oncpu (hot palette, samples),
    offcpu (blue, us), offwake (blocked stack blue, "--", waker aqua, us),
    wakeup (aqua) or diff (needs other, the baseline: red where this profile
    has more, blue where less). min_width: frames narrower than this
    fraction of the total are not drawn. inverted: icicle (root on top);
    reverse: merge from the leaves. keys: the key columns to put at the root
    (default all, in column order; [] for none), e.g. keys=["comm"] to merge
    the threads of a program whatever their pid.
    """
    if kind not in KINDS:
        raise FlameGraphError(
            f"unknown flame graph kind {kind!r}; use one of {', '.join(KINDS)}"
        )
    stacks, values = _stacks(frame_or_trace, name, keys)
    if kind == "diff":
        if other is None:
            raise FlameGraphError(
                "kind='diff' compares two profiles: pass the baseline as other=..."
            )
        base_stacks, base_values = _stacks(other, name, keys)
        lay = diff_layout(
            stacks, values, base_stacks, base_values, min_width=min_width, reverse=reverse
        )
    else:
        lay = layout(stacks, values, min_width=min_width, reverse=reverse)
    spec = KINDS[kind]
    return FlameGraph(
        lay,
        kind=kind,
        title=title or spec.title + (" (reversed)" if reverse else ""),
        subtitle=subtitle,
        unit=unit or spec.unit,
        palette=spec.palette,
        inverted=inverted,
        width=width,
    )


def _stacks(source, name: str | None, keys: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(stack strings with key columns as root frames, values) of any input."""
    frame = source
    if hasattr(source, "stacks") and not isinstance(source, pd.DataFrame):
        frame = source.stacks(name)
    elif isinstance(source, (str, os.PathLike)):
        frame = read_folded(source)
    if not isinstance(frame, pd.DataFrame) or STACK not in frame or VALUE not in frame:
        raise FlameGraphError(
            f"cannot draw a flame graph of {type(source).__name__}; pass a Trace, "
            "a DataFrame with 'stack' and 'value' columns, or a folded-stacks file"
        )
    values = frame[VALUE].to_numpy()
    if not np.issubdtype(values.dtype, np.number):
        raise FlameGraphError("the 'value' column must be numeric (samples, microseconds)")
    missing = int(frame[STACK].isna().sum())
    if missing:
        raise FlameGraphError(
            f"{missing} rows have no stack (NaN/None in 'stack'); drop them first, "
            "e.g. df.dropna(subset=['stack'])"
        )
    if key_columns(frame) and keys != []:
        return stacks_with_keys(frame, keys), values
    return frame[STACK].tolist(), values


class FlameGraph:
    """A laid-out flame graph: rich display, .to_svg(), .to_html(), .save()."""

    def __init__(
        self,
        lay: FlameLayout,
        *,
        kind: str = "oncpu",
        title: str = "Flame Graph",
        subtitle: str | None = None,
        unit: str = "samples",
        palette: str = "hot",
        inverted: bool = False,
        width: int = 1200,
    ):
        self.layout = lay
        self.kind = kind
        self.title = title
        self.subtitle = subtitle
        self.unit = unit
        self.palette = palette
        self.inverted = inverted
        self.width = width

    # -- outputs -----------------------------------------------------------
    def to_svg(self, interactive: bool = True) -> str:
        """The SVG document: with its script (zoom, search) or static."""
        return self._svg(interactive, True)

    def _svg(self, interactive: bool, script: bool, element_id: str | None = None,
             lean: bool = False) -> str:
        return render_svg(
            self.layout,
            title=self.title,
            subtitle=self.subtitle,
            unit=self.unit,
            palette=self.palette,
            inverted=self.inverted,
            interactive=interactive,
            script=script,
            width=self.width,
            element_id=element_id,
            lean=lean,
        )

    def to_html(self) -> str:
        """A standalone HTML page holding the interactive graph and a search box."""
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{_esc(self.title)}</title></head>\n"
            f'<body style="margin:0;background:#fff">\n{self._html_fragment()}</body></html>\n'
        )

    def _html_fragment(self) -> str:
        svg = self._svg(True, False)
        svg = svg[svg.index("<svg") :]
        sid = svg.split('id="', 1)[1].split('"', 1)[0]
        code = _script_text().replace("FLAME_ID", sid)
        return (
            f'<div class="bpfnb-flame-html" style="max-width:{self.width}px">\n'
            '<div style="font:13px sans-serif;margin:4px 0">'
            f'<input type="search" class="fg-input" data-target="{sid}" placeholder="search (regex)"'
            ' style="width:16em"> '
            f"<button class=\"fg-reset-button\" data-target=\"{sid}\">Reset zoom</button></div>\n"
            f"{svg}<script>\n{code}\n{_WIRE_CONTROLS.replace('FLAME_ID', sid)}\n"
            "</script>\n</div>\n"
        )

    def save(self, path) -> str:
        """Write .svg (interactive SVG) or .html; returns the path."""
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext == ".svg":
            text = self.to_svg()
        elif ext in (".html", ".htm"):
            text = self.to_html()
        else:
            raise FlameGraphError(
                f"cannot save a flame graph as {ext or 'a file without extension'} "
                f"({path!r}); use a .svg or .html file name"
            )
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
        return path

    # -- notebook and terminal ---------------------------------------------
    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {
            "text/html": self._html_fragment(),
            "image/svg+xml": self._svg(False, False, lean=True),
            "text/plain": self.summary(),
        }

    def __repr__(self) -> str:
        lay = self.layout
        return (
            f"<FlameGraph {self.kind}: {_num(lay.total)} {self.unit}, "
            f"{len(lay) + 1:,} frames drawn of {lay.merged_frames + 1:,}>"
        )

    def summary(self, n: int = 10) -> str:
        """Text for terminals: totals and the n widest functions."""
        lines = [repr(self), f"{self.title}; widest functions (inclusive):"]
        for row in self.top(n).itertuples(index=False):
            lines.append(f"  {row.share:6.2%}  {_num(row.count):>12} {self.unit}  {row.name}")
        return "\n".join(lines)

    def top(self, n: int = 20) -> pd.DataFrame:
        """The n functions with the most samples through them: name, count, share.

        A function appearing several times in one stack (recursion) counts
        once per stack; computed on the drawn (pruned) frames.
        """
        lay = self.layout
        if not len(lay):
            return pd.DataFrame({"name": [], "count": [], "share": []})
        counts = _inclusive(lay)
        order = np.argsort(-counts, kind="stable")[:n]
        return pd.DataFrame(
            {
                "name": [lay.names[i] for i in order],
                "count": counts[order],
                "share": counts[order] / (lay.total or 1),
            }
        )

    @cached_property
    def frames(self) -> pd.DataFrame:
        """The drawn frames: name, depth, x, width (counts) and share."""
        lay = self.layout
        df = pd.DataFrame(
            {
                "name": lay.frame_names(),
                "depth": lay.depth,
                "x": lay.x,
                "width": lay.width,
                "share": lay.width / (lay.total or 1),
            }
        )
        if lay.other is not None:
            df["baseline"] = lay.other
            df["delta"] = lay.delta()
        return df


def _inclusive(lay: FlameLayout) -> np.ndarray:
    """Per name: width of its frames that have no ancestor of the same name."""
    counts = np.zeros(len(lay.names), dtype=np.float64)
    # a frame is counted unless an ancestor has the same name: walk up per depth
    nested = np.zeros(len(lay), dtype=bool)
    anc = lay.parent.copy()
    while True:
        live = anc >= 0
        if not live.any():
            break
        nested[live] |= lay.name[anc[live]] == lay.name[live]
        anc[live] = lay.parent[anc[live]]
    np.add.at(counts, lay.name[~nested], lay.width[~nested])
    return counts


# connects the HTML search box and reset button above the SVG to its script
_WIRE_CONTROLS = """(function () {
  var here = document.currentScript ? document.currentScript.parentNode : null;
  var svg = document.getElementById("FLAME_ID") || (here && here.querySelector("svg.bpfnb-flame"));
  if (!svg || !svg.flame) return;
  var root = svg.parentNode, box = root.querySelector(".fg-input");
  var reset = root.querySelector(".fg-reset-button");
  box.addEventListener("input", function () { svg.flame.search(box.value); });
  reset.addEventListener("click", function () { svg.flame.reset(); });
})();"""


def _script_text() -> str:
    return resources.files("bpfnb.plot").joinpath("flame.js").read_text(encoding="utf-8")


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["flamegraph", "FlameGraph", "FlameGraphError", "KINDS"]
