"""Stitching two batch walks of one hash map (pure part)."""

import numpy as np

from bpfnb.maps import _overlap

KEY = np.dtype([("a", "u4"), ("b", "u8")])


def keys(*values):
    return np.array([(v, v * 10) for v in values], dtype=KEY)


def test_tail_that_starts_the_next_walk_is_counted():
    assert _overlap(keys(1, 2, 3, 4), keys(3, 4, 5)) == 2


def test_no_overlap_when_the_next_walk_starts_elsewhere():
    assert _overlap(keys(1, 2), keys(3, 4)) == 0
    assert _overlap(keys(), keys(3)) == 0
    assert _overlap(keys(1), keys()) == 0


def test_inconsistent_walks_are_reported():
    assert _overlap(keys(1, 2, 3, 4), keys(2, 9, 4)) is None   # changed in between
    assert _overlap(keys(1, 2, 3), keys(2)) is None             # next walk shorter than the overlap
