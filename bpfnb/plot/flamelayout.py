"""Flame graph layout: folded stacks -> rectangles, in pure numpy.

    lay = layout(stacks, values)            # stacks: "root;...;leaf" strings
    lay.x, lay.width, lay.depth, lay.name   # one entry per drawn frame
    lay.names[lay.name[i]]                  # the frame's function name

Stacks are merged by prefix (two stacks share a frame while their frames
from the root agree), siblings are ordered by name, a frame's width is the
sum of the counts of the stacks through it, and frames narrower than
`min_width` (a fraction of the total) are pruned. x and width are in count
units: the renderer scales them. Depth 0 is the root; drawing it at the
bottom (flame) or at the top (icicle) is the renderer's choice.

How it stays fast on a million samples: the stacks' text goes into one
uint8 buffer; stacks are sorted as plain strings (then the rare blocks where
plain order differs from frame order, "foo.part" against "foo;...", are
re-sorted frame-wise); the common prefix of neighbouring stacks is found by
comparing 8-byte words of the buffer; and a frame at depth d spans the rows
up to the next row sharing fewer than d + 1 frames with its neighbour. Only
frames that survive pruning get their names decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

IMAGE_WIDTH = 1200
IMAGE_PAD = 10
# flamegraph.pl's default: hide frames narrower than 0.1 px of the drawn area
DEFAULT_MIN_WIDTH = 0.1 / (IMAGE_WIDTH - 2 * IMAGE_PAD)
SEPARATOR = "--"  # between the blocked and the waker stack in off-wake stacks

_SEP = ord(";")
_BLOCK = 64  # bytes compared at once when measuring common prefixes
_PAD = _BLOCK + 8  # zero bytes after the last row, so every block read stays inside
_LOW_BYTES = [np.uint64((1 << (8 * j)) - 1) for j in range(1, 8)]


@dataclass
class FlameLayout:
    """Frames to draw, by depth then x; all arrays have one entry per frame."""

    x: np.ndarray  # left edge, in counts from the left of the root
    width: np.ndarray  # counts through the frame (its width)
    depth: np.ndarray  # 0 = root
    name: np.ndarray  # index into names
    parent: np.ndarray  # index of the parent frame, -1 for roots
    names: list[str]
    total: float  # sum of all counts (the full width)
    merged_frames: int  # frames after merging, before pruning
    min_width: float  # the pruning threshold used, as a fraction of total
    other: np.ndarray | None = None  # baseline counts per frame (differential)
    other_total: float | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def count(self) -> np.ndarray:
        """Counts through each frame (same as width)."""
        return self.width

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) + 1 if len(self.depth) else 0

    def frame_names(self) -> list[str]:
        """The name of every frame, in frame order."""
        return [self.names[i] for i in self.name]

    def above(self, frame_name: str = SEPARATOR) -> np.ndarray:
        """True for frames that have an ancestor called frame_name (the waker
        part of an off-wake graph sits above the "--" separator)."""
        is_name = np.zeros(len(self), dtype=bool)
        if frame_name in self.names:
            is_name = self.name == self.names.index(frame_name)
        result = np.zeros(len(self), dtype=bool)
        # frames come by depth, so a parent is always settled before its children
        for d in range(1, self.max_depth):
            at = np.flatnonzero(self.depth == d)
            par = self.parent[at]
            result[at] = result[par] | is_name[par]
        return result

    def delta(self, normalize: bool = True) -> np.ndarray:
        """Per frame: count minus baseline count (differential layouts).

        normalize scales the baseline to the same total first, so two
        profiles of different lengths compare by share, not by raw count.
        """
        if self.other is None:
            raise ValueError("this layout has no baseline; use diff_layout()")
        other = self.other.astype(np.float64)
        if normalize and self.other_total:
            other = other * (self.total / self.other_total)
        return self.width.astype(np.float64) - other


def layout(
    stacks: Sequence[str],
    values,
    *,
    min_width: float = DEFAULT_MIN_WIDTH,
    reverse: bool = False,
    other=None,
) -> FlameLayout:
    """Lay out folded stacks (root first, ';'-joined) weighted by values.

    min_width: frames narrower than this fraction of the total are pruned
    (0 keeps everything). reverse: merge from the leaf instead (each stack's
    frames reversed), which shows who calls a hot leaf. other: baseline
    values aligned with stacks, summed per frame like values (see
    diff_layout).
    """
    values = np.asarray(values)
    stacks = stacks if isinstance(stacks, list) else list(stacks)
    if len(stacks) != len(values):
        raise ValueError(f"{len(stacks)} stacks but {len(values)} values")
    if reverse:
        stacks = [";".join(s.split(";")[::-1]) for s in stacks]
    rows = _sorted_rows(stacks)
    lcp = _common_frames(rows)
    merged = int((rows.depth - lcp).sum())
    ordered = values[rows.order]
    others = None if other is None else np.asarray(other)[rows.order]
    total = float(ordered.sum())
    frames = _frames(rows, lcp, ordered, others, total * min_width)
    names, name_idx = _names(rows, frames["row"], frames["depth"])
    return FlameLayout(
        x=frames["x"],
        width=frames["width"],
        depth=frames["depth"],
        name=name_idx,
        parent=_parents(frames["x"], frames["depth"]),
        names=names,
        total=total,
        merged_frames=merged,
        min_width=min_width,
        other=frames.get("other"),
        other_total=None if others is None else float(others.sum()),
    )


def diff_layout(
    stacks: Sequence[str],
    values,
    base_stacks: Sequence[str],
    base_values,
    *,
    min_width: float = DEFAULT_MIN_WIDTH,
    reverse: bool = False,
) -> FlameLayout:
    """Layout of profile (stacks, values) carrying a baseline count per frame.

    Widths are the profile's counts (frames only in the baseline have zero
    width and are pruned); `.other` holds the baseline's counts through the
    same frame, `.delta()` the difference.
    """
    values = np.asarray(values)
    base_values = np.asarray(base_values)
    both = list(stacks) + list(base_stacks)
    now = np.concatenate([values, np.zeros(len(base_values), dtype=values.dtype)])
    base = np.concatenate([np.zeros(len(values), dtype=base_values.dtype), base_values])
    return layout(both, now, min_width=min_width, reverse=reverse, other=base)


# -- rows: sorted stacks over one buffer --------------------------------------
@dataclass
class _Rows:
    order: np.ndarray  # input index of each sorted row
    buf: np.ndarray  # uint8: the stacks' UTF-8 in input order, each ended by \x00, + padding
    start: np.ndarray  # offset in buf of each sorted row
    length: np.ndarray  # bytes of each sorted row
    seps: np.ndarray  # offsets of every ';' in buf
    first_sep: np.ndarray  # index in seps of each sorted row's first separator
    depth: np.ndarray  # frames in each sorted row
    common: np.ndarray  # bytes each sorted row shares with the previous one


def _sorted_rows(stacks: Sequence[str]) -> _Rows:
    """Sort stacks frame by frame and measure what neighbours share.

    Plain string order is frame order except where a name is cut short by
    ';' next to a sibling continuing with a character below ';' ("foo;x"
    against "foo.part;y", '.' < ';'): such neighbours are found from their
    first differing byte, and only the block of rows sharing that prefix is
    re-sorted with ';' mapped below every character. No per-row key copy is
    made otherwise, which keeps the memory to one buffer of the text.
    """
    buf, in_start, in_length = _pack(stacks)
    order = sorted(range(len(stacks)), key=stacks.__getitem__)
    seps = _find(buf, _SEP)
    for _attempt in range(3):
        order_arr = np.asarray(order, dtype=np.int64)
        start, length = in_start[order_arr], in_length[order_arr]
        common = np.zeros(len(order), dtype=np.int64)
        if len(order) > 1:
            common[1:] = _common_bytes(buf, start[:-1], start[1:], np.minimum(length[:-1], length[1:]))
        bad = _misordered(buf, start, length, common)
        if not len(bad):
            break
        order = _resort_blocks(stacks, order, bad, buf, start, common)
    # searched in buffer order (ascending needles: much faster), then permuted
    in_first = np.searchsorted(seps, in_start)
    first_sep = in_first[order_arr]
    depth = (np.searchsorted(seps, in_start + in_length) - in_first + 1)[order_arr]
    return _Rows(order_arr, buf, start, length, seps, first_sep, depth, common)


def _pack(stacks: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All stacks' UTF-8 in one uint8 buffer, each ended by \x00, zero padding after."""
    n = len(stacks)
    if all(map(str.isascii, stacks)):
        length = np.fromiter(map(len, stacks), dtype=np.int64, count=n)
    else:
        length = np.fromiter((len(s.encode("utf-8", "surrogateescape")) for s in stacks),
                             dtype=np.int64, count=n)
    start = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(length[:-1] + 1, out=start[1:])
    total = int(length.sum()) + n
    out = bytearray(total + _PAD)
    pos, step = 0, 2048
    for i in range(0, n, step):  # in chunks: never a second copy of the whole text
        chunk = ("\x00".join(stacks[i : i + step]) + "\x00").encode("utf-8", "surrogateescape")
        out[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    return np.frombuffer(out, dtype=np.uint8), start, length


def _misordered(buf, start, length, common) -> np.ndarray:
    """Sorted rows i (>= 1) where row i-1 continues with a byte below ';' and row i with ';'."""
    if len(start) < 2:
        return np.zeros(0, dtype=np.int64)
    c = common[1:]
    prev_next = np.where(c < length[:-1], buf[start[:-1] + c], 0)
    this_next = np.where(c < length[1:], buf[start[1:] + c], 0)
    bad = (prev_next > 0) & (prev_next < _SEP) & (this_next == _SEP)
    return np.flatnonzero(bad) + 1


def _resort_blocks(stacks, order: list, bad: np.ndarray, buf, start, common) -> list:
    """Re-sort, with ';' below every character, each block of rows sharing a bad prefix."""
    import bisect

    in_order = [stacks[i] for i in order]
    spans = []
    for i in bad.tolist():
        prefix = bytes(buf[start[i] : start[i] + common[i]]).decode("utf-8", "surrogateescape")
        lo = bisect.bisect_left(in_order, prefix)
        hi = bisect.bisect_left(in_order, prefix + "\U0010ffff")
        spans.append((lo, hi))
    spans.sort()
    merged: list[list[int]] = []
    for lo, hi in spans:
        if merged and lo < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    order = list(order)
    for lo, hi in merged:
        order[lo:hi] = sorted(order[lo:hi], key=lambda j: stacks[j].replace(";", "\x01"))
    return order


def _find(buf: np.ndarray, byte: int, block: int = 1 << 22) -> np.ndarray:
    """Offsets of byte in buf, in blocks so no buffer-sized mask is made."""
    parts = [np.flatnonzero(buf[i : i + block] == byte) + i for i in range(0, len(buf), block)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _common_frames(rows: _Rows) -> np.ndarray:
    """Frames each sorted row shares, from the root, with the row before it."""
    n = len(rows.start)
    lcp_frames = np.zeros(n, dtype=np.int64)
    if n < 2:
        return lcp_frames
    a, b = rows.start[:-1], rows.start[1:]
    la, lb = rows.length[:-1], rows.length[1:]
    common = rows.common[1:]
    ends = rows.start + rows.common  # in each row, where it stops agreeing with the previous
    in_buffer_order = np.empty_like(rows.order)
    in_buffer_order[rows.order] = np.arange(n)
    ahead = np.searchsorted(rows.seps, ends[in_buffer_order])[rows.order]
    seps_before = ahead[1:] - rows.first_sep[1:]
    # the frame cut by the first difference counts only if it ends there in both
    end_a = (common == la) | (rows.buf[a + common] == _SEP)
    end_b = (common == lb) | (rows.buf[b + common] == _SEP)
    lcp_frames[1:] = seps_before + (end_a & end_b)
    return lcp_frames


def _common_bytes(buf: np.ndarray, a: np.ndarray, b: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Length of the common prefix of buf[a[i]:] and buf[b[i]:], capped at limit.

    Compares _BLOCK bytes at a time (a void view at every byte offset), then
    finds the first differing byte inside the differing block by 8-byte words.
    buf must be padded by _PAD bytes.
    """
    blocks = np.ndarray((len(buf) - _BLOCK + 1,), dtype=np.dtype((np.void, _BLOCK)), buffer=buf, strides=(1,))
    words = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))
    result = limit.copy()
    active = np.flatnonzero(limit > 0)
    pa, pb, lim = a[active], b[active], limit[active]
    step = 0
    while active.size:
        differs = blocks[pa] != blocks[pb]
        if differs.any():
            hit = np.flatnonzero(differs)
            result[active[hit]] = np.minimum(step + _first_difference(words, pa[hit], pb[hit]), lim[hit])
        go = ~differs & (lim > step + _BLOCK)
        active, pa, pb, lim = active[go], pa[go] + _BLOCK, pb[go] + _BLOCK, lim[go]
        step += _BLOCK
    return result


def _first_difference(words: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Offset of the first differing byte in blocks known to differ."""
    offset = np.full(len(pa), -1, dtype=np.int64)
    for k in range(0, _BLOCK, 8):
        todo = offset < 0
        if not todo.any():
            break
        x = words[pa + k] ^ words[pb + k]
        new = todo & (x != 0)
        x = x[new]
        zeros = np.zeros(len(x), dtype=np.int64)  # equal low-order (= earlier) bytes
        for mask in _LOW_BYTES:
            zeros += (x & mask) == 0
        offset[new] = k + zeros
    return offset


# -- frames: one per (row, depth) where a merged frame starts -----------------
def _frames(rows: _Rows, lcp: np.ndarray, values, others, min_count: float) -> dict:
    n = len(values)
    cum = np.zeros(n + 1, dtype=np.result_type(values.dtype, np.int64))
    np.cumsum(values, out=cum[1:])
    cum_other = None
    if others is not None:
        cum_other = np.zeros(n + 1, dtype=np.result_type(others.dtype, np.int64))
        np.cumsum(others, out=cum_other[1:])
    out = {"row": [], "depth": [], "x": [], "width": [], "other": []}
    for d in range(int(rows.depth.max()) if n else 0):
        # rows whose common prefix with the previous row is <= d end the
        # frame at depth d that the previous rows were in
        bounds = np.flatnonzero(lcp <= d)
        ends = np.append(bounds[1:], n)
        has = rows.depth[bounds] > d
        first, last = bounds[has], ends[has]
        width = cum[last] - cum[first]
        keep = width >= min_count if min_count > 0 else width > 0
        if not keep.any():
            break  # children are never wider than their parents
        out["row"].append(first[keep])
        out["depth"].append(np.full(int(keep.sum()), d, dtype=np.int32))
        out["x"].append(cum[first[keep]])
        out["width"].append(width[keep])
        if cum_other is not None:
            out["other"].append(cum_other[last[keep]] - cum_other[first[keep]])
    result = {
        k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for k, v in out.items()
    }
    result["depth"] = result["depth"].astype(np.int32)
    if cum_other is None:
        del result["other"]
    return result


def _names(rows: _Rows, row: np.ndarray, depth: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Decode the names of the kept frames; intern them."""
    first = rows.first_sep[row]
    begin = np.where(depth == 0, rows.start[row], rows.seps[np.maximum(first + depth - 1, 0)] + 1)
    last = depth == rows.depth[row] - 1
    end = np.where(last, rows.start[row] + rows.length[row], 0)
    inner = ~last
    end[inner] = rows.seps[first[inner] + depth[inner]]
    raw = memoryview(rows.buf)
    index: dict[str, int] = {}
    name_idx = np.empty(len(row), dtype=np.int32)
    for i, (s, e) in enumerate(zip(begin.tolist(), end.tolist())):
        name = str(raw[s:e], "utf-8", "surrogateescape")
        name_idx[i] = index.setdefault(name, len(index))
    return list(index), name_idx


def _parents(x: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Index of each frame's parent: the frame one level down that contains x."""
    parent = np.full(len(x), -1, dtype=np.int64)
    if not len(x):
        return parent
    starts = np.searchsorted(depth, np.arange(int(depth.max()) + 2))
    for d in range(1, int(depth.max()) + 1):
        lo, hi = starts[d], starts[d + 1]
        plo, phi = starts[d - 1], starts[d]
        parent[lo:hi] = plo + np.searchsorted(x[plo:phi], x[lo:hi], side="right") - 1
    return parent


__all__ = ["FlameLayout", "layout", "diff_layout", "DEFAULT_MIN_WIDTH", "SEPARATOR"]
