"""Mode detection on synthetic uni-, bi- and trimodal data, and on noise."""

import numpy as np
import pandas as pd
import pytest

from bpfnb.errors import BpfnbError
from bpfnb.frames.hist import from_slots, from_values
from bpfnb.frames.modes import modes


def lognormal_mix(rng, parts):
    return np.concatenate([rng.lognormal(np.log(m), s, n) for m, s, n in parts])


def test_trimodal_latency_gives_three_modes():
    rng = np.random.default_rng(1)
    values = lognormal_mix(rng, [(80, 0.25, 55_000), (600, 0.30, 30_000), (6000, 0.35, 15_000)])
    m = modes(from_values(values))
    assert len(m) == 3
    assert m[["peak_low", "peak_high"]].values.tolist() == [[64, 127], [512, 1023], [4096, 8191]]
    # modes partition the events: ranges touch, counts add up
    assert m["count"].sum() == 100_000
    assert m["low"].tolist()[1:] == [h + 1 for h in m["high"].tolist()[:-1]]
    assert np.allclose(m["share"], m["count"] / 100_000)
    assert m["share"].round(2).tolist() == [0.55, 0.30, 0.15]


def test_exact_small_trimodal_histogram():
    counts = {3: 10, 4: 50, 5: 12, 6: 2, 7: 30, 8: 8, 10: 4, 11: 20, 12: 5}
    h = from_slots(pd.DataFrame({"slot": list(counts), "count": list(counts.values())}))
    m = modes(h)
    # valleys (slot 6: 2 events, slot 9: empty) go to the mode on their left
    assert m.drop(columns="share").values.tolist() == [
        [4, 63, 8, 15, 74],
        [64, 255, 64, 127, 38],
        [512, 4095, 1024, 2047, 29],
    ]
    assert m["share"].tolist() == [74 / 141, 38 / 141, 29 / 141]
    assert len(modes(h, z=3.0)) == 1  # a stricter noise test: the small humps are not proven


def test_bimodal_linear():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(100, 10, 5000), rng.normal(200, 10, 5000)])
    m = modes(from_values(values, "linear", step=5))
    assert len(m) == 2
    assert 90 <= m["peak_low"].iloc[0] <= 110 and 190 <= m["peak_low"].iloc[1] <= 210
    assert m["count"].tolist() == [5000, 5000]


@pytest.mark.parametrize("seed", range(20))
def test_unimodal_gives_one_mode(seed):
    rng = np.random.default_rng(seed)
    m = modes(from_values(rng.lognormal(np.log(600), 0.5, 50_000)))
    assert len(m) == 1 and m["share"].iloc[0] == 1.0


@pytest.mark.parametrize("seed", range(20))
def test_noise_does_not_invent_modes(seed):
    rng = np.random.default_rng(100 + seed)
    flat = modes(from_values(rng.uniform(0, 1000, 20_000), "linear", step=10))
    assert len(flat) == 1
    sparse = modes(from_values(rng.uniform(0, 1000, 200), "linear", step=10))
    assert len(sparse) == 1
    smoothed = modes(from_values(rng.normal(500, 100, 2_000), "linear", step=5), smooth=5)
    assert len(smoothed) == 1


def test_tiny_outlier_cluster_is_not_a_mode():
    counts = {10: 1000, 11: 3000, 12: 1000, 20: 5}  # 0.1% far out
    h = from_slots(pd.DataFrame({"slot": list(counts), "count": list(counts.values())}))
    m = modes(h)
    assert len(m) == 1 and m["count"].iloc[0] == 5005 and m["high"].iloc[0] == (1 << 20) - 1


def test_generator_model_has_three_modes():
    """The bench's latency model (three modes, drifting slow mode, tail)."""
    from pathlib import Path

    spec = Path("/work/shared/bench/gen_latency_trace.py")
    if not spec.exists():
        pytest.skip("the shared latency generator is not present")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(spec), "--events", "50000"],
                         capture_output=True, text=True, check=True).stdout
    lat = np.array(out.split(), dtype=np.int64)[1::2]
    m = modes(from_values(lat))
    assert m["peak_low"].tolist() == [64, 512, 8192]


def test_keyed_modes_per_key():
    df = pd.DataFrame({"disk": ["a"] * 3 + ["b"] * 2, "lat": [2, 2, 3, 1000, 1001]})
    m = modes(from_values(df, value="lat", by="disk"))
    assert m[["disk", "peak_low", "count", "share"]].values.tolist() == [
        ["a", 2, 3, 1.0], ["b", 512, 2, 1.0]]


def test_empty_and_bad_input():
    empty = from_slots(pd.DataFrame({"slot": [], "count": []}))
    assert modes(empty).empty
    with pytest.raises(BpfnbError, match="odd"):
        modes(from_values([1, 2]), smooth=2)
