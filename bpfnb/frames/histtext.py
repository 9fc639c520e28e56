"""Histogram frames as the text bcc prints, and as notebook displays.

format_hist reproduces bcc 0.26's table.print_log2_hist / print_linear_hist
character for character for the same counts: the header, the "low -> high"
labels, the count column, the 40-star bars (20 stars and wider columns when a
log2 slot above 32 is used), the "\\nBucket ptr = key" section line of keyed
histograms. Written from the behaviour, not the code: bcc prints, this returns
a string.
"""

from __future__ import annotations

import html
from typing import Callable

import numpy as np
import pandas as pd

from .hist import hist_type_of, key_columns, slots_of

STARS_MAX = 40
LINEAR_SLOTS = 1025  # bcc's linear_index_max for unkeyed tables


def format_hist(
    hist: pd.DataFrame,
    label: str = "value",
    *,
    section_header: str = "Bucket ptr",
    section_print_fn: Callable | None = None,
    strip_leading_zero: bool | None = None,
    linear_labels: str = "slot",
) -> str:
    """The text bcc's print_log2_hist / print_linear_hist prints for these counts.

    label is bcc's val_type (the column header, e.g. "usecs"). For keyed
    frames every key gets a section "\\n<section_header> = <repr(key)>"
    (or section_print_fn(key)), in frame order. bcc prints char-array keys as
    bytes (b'sda'); frames hold them as str, so pass
    section_print_fn=lambda k: repr(k.encode()) for bcc's exact text there.
    Like bcc, a linear histogram
    is labelled by slot index; linear_labels="low" labels it by each slot's
    low value instead (differs from bcc when step > 1).
    The returned text ends with a newline unless it is empty.
    """
    keys = key_columns(hist)
    kind = hist_type_of(hist)
    if linear_labels not in ("slot", "low"):
        raise ValueError(f"linear_labels must be 'slot' or 'low', not {linear_labels!r}")
    lines: list[str] = []
    if not keys:
        lines += _section(hist, kind, label, strip_leading_zero, linear_labels)
        return _joined(lines)
    for key, part in hist.groupby(keys, sort=False, dropna=False):
        key = key[0] if isinstance(key, tuple) and len(keys) == 1 else key
        shown = section_print_fn(key) if section_print_fn else repr(_plain(key))
        fmt = "%s = %s"
        lines += ["", fmt % (section_header, shown)]
        lines += _section(part, kind, label, strip_leading_zero, linear_labels)
    return _joined(lines)


def _plain(key):
    """numpy scalars -> Python values, so repr(key) reads like bcc's."""
    if isinstance(key, tuple):
        return tuple(_plain(k) for k in key)
    return key.item() if isinstance(key, np.generic) else key


def _joined(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _vals(part: pd.DataFrame) -> dict[int, int]:
    slots = slots_of(part)
    vals: dict[int, int] = {}
    for slot, count in zip(slots.tolist(), part["count"].tolist()):
        vals[slot] = vals.get(slot, 0) + int(count)
    return vals


def _section(part, kind, label, strip_leading_zero, linear_labels) -> list[str]:
    vals = _vals(part)
    if kind == "log2":
        return _log2_lines(vals, label, strip_leading_zero)
    step = int(part["high"].iloc[0] - part["low"].iloc[0] + 1) if len(part) else 1
    return _linear_lines(vals, label, strip_leading_zero, step if linear_labels == "low" else 1)


def _stars(val: int, val_max: int, width: int) -> str:
    # bcc draws star i while i <= width * val / val_max - 1 (true division)
    n = 0
    limit = width * val / val_max - 1
    while n <= limit and n <= width - 1:
        n += 1
    text = "*" * n
    if val > val_max:
        text = text[:-1] + "+"
    return text


def _extent(vals: dict[int, int]) -> tuple[int, int]:
    idx_max = max((i for i, v in vals.items() if v > 0), default=-1)
    val_max = max([0, *vals.values()])
    return idx_max, val_max


def _log2_lines(vals: dict[int, int], label: str, strip_leading_zero) -> list[str]:
    idx_max, val_max = _extent(vals)
    if idx_max <= 32:
        header = "     %-19s : count     distribution"
        body = "%10d -> %-10d : %-8d |%-*s|"
        stars = STARS_MAX
    else:
        header = "               %-29s : count     distribution"
        body = "%20d -> %-20d : %-8d |%-*s|"
        stars = STARS_MAX // 2
    lines = [header % label] if idx_max > 0 else []
    for i in range(1, idx_max + 1):
        low, high = (1 << i) >> 1, (1 << i) - 1
        if low == high:
            low -= 1
        val = vals.get(i, 0)
        if strip_leading_zero and not val:
            continue
        strip_leading_zero = False
        lines.append(body % (low, high, val, stars, _stars(val, val_max, stars)))
    return lines


def _linear_lines(vals: dict[int, int], label: str, strip_leading_zero, scale: int) -> list[str]:
    idx_max, val_max = _extent(vals)
    header = "     %-13s : count     distribution"
    body = "        %-10d : %-8d |%-*s|"
    lines = [header % label] if idx_max >= 0 else []
    for i in range(0, idx_max + 1):
        val = vals.get(i, 0)
        if strip_leading_zero and not val:
            continue
        strip_leading_zero = False
        lines.append(body % (i * scale, val, STARS_MAX, _stars(val, val_max, STARS_MAX)))
    return lines


# -- notebook display helpers ------------------------------------------------
def hist_text(hist: pd.DataFrame, label: str | None = None) -> str:
    """Plain-text display: bcc's printout plus a one-line summary."""
    label = label or hist.attrs.get("label", "value")
    text = format_hist(hist, label)
    return text + _summary(hist) if len(hist) else "(empty histogram)\n"


def hist_html(hist: pd.DataFrame, label: str | None = None) -> str:
    """HTML display: the same text in a <pre>, safe to embed in a page."""
    label = label or hist.attrs.get("label", "value")
    if not len(hist):
        return "<pre class='bpfnb-hist'>(empty histogram)</pre>"
    body = html.escape(format_hist(hist, label))
    summary = html.escape(_summary(hist).strip())
    return (f"<div class='bpfnb-hist'><pre style='line-height:1.15'>{body}</pre>"
            f"<div style='font-size:smaller'>{summary}</div></div>")


def _summary(hist: pd.DataFrame) -> str:
    from .hist import percentiles

    total = int(hist["count"].sum())
    if total <= 0 or (hist["count"] < 0).any():
        return f"{total:,} events\n"
    p = percentiles(hist, [50, 99], method="high")
    if len(p) == 1:
        return f"{total:,} events; p50 <= {p['p50'].iloc[0]:,.0f}, p99 <= {p['p99'].iloc[0]:,.0f}\n"
    return f"{total:,} events in {len(p)} histograms\n"
