"""Flame graph layout: merging, order, widths, pruning, views, colours."""

from __future__ import annotations

import numpy as np
import pytest

from bpfnb.plot.flame_svg import diff_colors, frame_colors, name_color
from bpfnb.plot.flamelayout import DEFAULT_MIN_WIDTH, diff_layout, layout


def frames_of(lay):
    """{(depth, name, x): width} for easy assertions."""
    return {
        (int(d), lay.names[n], int(x)): int(w)
        for d, n, x, w in zip(lay.depth, lay.name, lay.x, lay.width)
    }


STACKS = ["main;a;b", "main;a;c", "main;a", "main;d", "main;a;b", "init"]
VALUES = [3, 2, 1, 4, 5, 6]


def test_merge_by_prefix_widths_and_sibling_order():
    lay = layout(STACKS, VALUES, min_width=0)
    assert lay.total == 21
    assert frames_of(lay) == {
        (0, "init", 0): 6,
        (0, "main", 6): 15,
        (1, "a", 6): 11,  # 3 + 2 + 1 + 5
        (1, "d", 17): 4,
        (2, "b", 7): 8,  # after main;a's own 1; the two main;a;b rows merge
        (2, "c", 15): 2,
    }
    assert lay.merged_frames == 6


def test_children_never_exceed_parent_and_are_contiguous():
    rng = np.random.default_rng(7)
    names = [f"f{i}" for i in range(12)]
    stacks = [";".join(rng.choice(names, rng.integers(1, 9))) for _ in range(400)]
    values = rng.integers(1, 100, len(stacks))
    lay = layout(stacks, values, min_width=0)
    assert lay.total == values.sum()
    roots = lay.depth == 0
    assert lay.width[roots].sum() == values.sum()
    for i in range(len(lay)):
        kids = np.flatnonzero(lay.parent == i)
        if len(kids):
            assert lay.width[kids].sum() <= lay.width[i]
            assert lay.x[kids].min() >= lay.x[i]
            assert (lay.x[kids] + lay.width[kids]).max() <= lay.x[i] + lay.width[i]
            kid_names = [lay.names[n] for n in lay.name[kids]]
            assert kid_names == sorted(kid_names)  # siblings by name, left to right
            assert len(set(kid_names)) == len(kid_names)  # merged: no duplicate sibling


def test_self_time_is_parent_minus_children():
    lay = layout(["a;b", "a"], [3, 4], min_width=0)
    fr = frames_of(lay)
    assert fr[(0, "a", 0)] == 7 and fr[(1, "b", 4)] == 3  # "a" alone (4) sorts first


def test_name_that_prefixes_a_sibling_still_merges():
    # '.' and '$' sort below ';' as plain text: a naive string sort splits "foo"
    stacks = ["r;foo;x", "r;foo.part.0;y", "r;foo;z", "r;foo$1;w"]
    lay = layout(stacks, [1, 1, 1, 1], min_width=0)
    fr = frames_of(lay)
    assert [k for k in fr if k[1] == "foo"] == [(1, "foo", 0)]
    assert fr[(1, "foo", 0)] == 2
    depth1 = [lay.names[n] for n, d in zip(lay.name, lay.depth) if d == 1]
    assert depth1 == ["foo", "foo$1", "foo.part.0"]


def test_pruning_drops_narrow_frames_and_their_children():
    stacks = ["big;x", "tiny;y;z", "big;w"]
    lay = layout(stacks, [990, 1, 9], min_width=0.005)
    names = set(lay.frame_names())
    assert names == {"big", "x", "w"}
    assert lay.merged_frames == 6  # counted before pruning
    assert DEFAULT_MIN_WIDTH == pytest.approx(0.1 / 1180)


def test_reversed_view_merges_from_the_leaf():
    lay = layout(["a;b;leaf", "c;leaf", "c;other"], [2, 3, 4], min_width=0, reverse=True)
    fr = frames_of(lay)
    assert fr[(0, "leaf", 0)] == 5
    assert fr[(1, "b", 0)] == 2 and fr[(1, "c", 2)] == 3
    assert fr[(2, "a", 0)] == 2
    assert fr[(0, "other", 5)] == 4


def test_inverted_svg_puts_the_root_on_top():
    from bpfnb.plot.flame_svg import render_svg

    lay = layout(["r;child"], [1], min_width=0)

    def y_of(svg, name):
        chunk = svg.split(f'data-name="{name}"', 1)[1]
        return float(chunk.split('y="', 1)[1].split('"', 1)[0])

    flame, icicle = render_svg(lay), render_svg(lay, inverted=True)
    assert y_of(flame, "r") > y_of(flame, "child")  # root below its child
    assert y_of(icicle, "r") < y_of(icicle, "child")
    assert y_of(icicle, "all") < y_of(icicle, "r")


def test_unicode_names_and_empty_input():
    lay = layout(["prog;ünïcode;→"], [2], min_width=0)
    assert lay.frame_names() == ["prog", "ünïcode", "→"]
    empty = layout([], np.array([], dtype=np.int64))
    assert len(empty) == 0 and empty.total == 0


def test_chain_colours_blue_below_grey_separator_aqua_above():
    stacks = ["target;read;schedule;--;try_to_wake_up;pipe_write;writer"]
    lay = layout(stacks, [10], min_width=0)
    colors = dict(zip(lay.frame_names(), frame_colors(lay, "chain")))
    assert colors["--"] == "rgb(160,160,160)"
    for below in ("target", "read", "schedule"):
        assert colors[below] == name_color(below, "io")
    for above in ("try_to_wake_up", "pipe_write", "writer"):
        assert colors[above] == name_color(above, "wakeup")
    assert lay.above("--").tolist() == [False, False, False, False, True, True, True]


def test_palette_colour_is_fixed_per_name_and_in_range():
    assert name_color("vfs_read") == name_color("vfs_read")
    r, g, b = (int(v) for v in name_color("vfs_read", "hot")[4:-1].split(","))
    assert r >= g >= b  # warm
    r, g, b = (int(v) for v in name_color("vfs_read", "io")[4:-1].split(","))
    assert b > r  # blue
    r, g, b = (int(v) for v in name_color("vfs_read", "wakeup")[4:-1].split(","))
    assert g > r and b > r  # aqua


def test_differential_counts_and_colours():
    after = ["m;a", "m;b", "m;c"]
    before = ["m;a", "m;b", "m;gone"]
    lay = diff_layout(after, [30, 10, 10], before, [10, 30, 10], min_width=0)
    fr = {lay.names[n]: (int(w), int(o)) for n, w, o in zip(lay.name, lay.width, lay.other)}
    assert fr == {"m": (50, 50), "a": (30, 10), "b": (10, 30), "c": (10, 0)}
    delta = dict(zip(lay.frame_names(), lay.delta()))
    assert delta["a"] == 20 and delta["b"] == -20 and delta["m"] == 0
    colors = dict(zip(lay.frame_names(), frame_colors(lay, "diff")))
    assert colors["a"].startswith("rgb(255,") and colors["a"] != "rgb(255,255,255)"
    assert colors["b"].endswith(",255)") and not colors["b"].startswith("rgb(255")
    assert colors["m"] == "rgb(250,250,250)"


def test_differential_normalizes_by_totals():
    lay = diff_layout(["x;a", "x;b"], [20, 20], ["x;a", "x;b"], [10, 30], min_width=0)
    delta = dict(zip(lay.frame_names(), lay.delta(normalize=True)))
    assert delta["a"] == pytest.approx(10.0) and delta["b"] == pytest.approx(-10.0)
    assert diff_colors(np.array([5.0, -5.0, 0.0]))[2] == "rgb(250,250,250)"


def test_generated_profile_merges_to_known_frame_count(tmp_path):
    gen = pytest.importorskip("pathlib").Path("/work/shared/bench/gen_folded.py")
    if not gen.exists():
        pytest.skip("the shared folded-stack generator is not on this machine")
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(gen), "--stacks", "2000", "--samples", "50000"],
        check=True, capture_output=True, text=True,
    ).stdout
    from bpfnb.io.folded import read_folded

    df = read_folded(out)
    lay = layout(df["stack"].tolist(), df["value"].to_numpy(), min_width=0)
    # reference count by a plain dictionary trie
    trie, nodes = {}, 0
    for s in df["stack"]:
        node = trie
        for f in s.split(";"):
            if f not in node:
                node[f] = {}
                nodes += 1
            node = node[f]
    assert lay.merged_frames == nodes == len(lay)
    assert lay.total == df["value"].sum()


def test_common_prefix_lengths_across_block_boundaries():
    from bpfnb.plot.flamelayout import _pack, _common_bytes

    rng = np.random.default_rng(3)
    base = "".join(rng.choice(list("ab;."), 300))
    stacks = [base[: rng.integers(0, 300)] + "".join(rng.choice(list("ab;"), rng.integers(0, 90)))
              for _ in range(300)]
    buf, start, length = _pack(stacks)
    a, b = start[:-1], start[1:]
    got = _common_bytes(buf, a, b, np.minimum(length[:-1], length[1:]))
    import os.path

    want = [len(os.path.commonprefix([x, y])) for x, y in zip(stacks, stacks[1:])]
    assert got.tolist() == want
