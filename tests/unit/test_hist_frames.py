"""Histogram frames: bucket math (against bpf_log2l in the kernel), from_values,
percentiles, combine and diff."""

import os

import numpy as np
import pandas as pd
import pytest

from bpfnb.errors import BpfnbError
from bpfnb.frames.hist import (
    combine,
    diff,
    from_slots,
    from_values,
    hist_type_of,
    log2_bounds,
    log2_slot,
    percentiles,
    slots_of,
    step_of,
)

U64_MAX = (1 << 64) - 1
EDGE_VALUES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 1023, 1024, 1025,
               (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 32) + 1,
               (1 << 53) - 1, 1 << 53, (1 << 53) + 1, (1 << 62) + 12345,
               (1 << 63) - 1, 1 << 63, U64_MAX - 1, U64_MAX]


def bit_length_slot(v: int) -> int:
    return max(1, int(v).bit_length())


def test_log2_slot_matches_bpf_log2l_definition():
    values = np.array(EDGE_VALUES, dtype=np.uint64)
    assert log2_slot(values).tolist() == [bit_length_slot(v) for v in EDGE_VALUES]
    assert log2_slot(np.array([0, 1, 2, 3, 4])).tolist() == [1, 1, 2, 2, 3]


def test_log2_bounds_as_bcc_prints_them():
    low, high = log2_bounds([0, 1, 2, 3, 13, 63, 64])
    assert low.tolist() == [0, 0, 2, 4, 4096, 1 << 62, 1 << 63]
    assert high.tolist() == [0, 1, 3, 7, 8191, (1 << 63) - 1, U64_MAX]


def test_each_value_falls_inside_its_bucket():
    values = np.array(EDGE_VALUES, dtype=np.uint64)
    low, high = log2_bounds(log2_slot(values))
    assert all(lo <= v <= hi for lo, v, hi in zip(low.tolist(), EDGE_VALUES, high.tolist()))


def test_from_values_log2_counts():
    h = from_values(pd.Series([0, 1, 1, 2, 3, 4, 7, 8, 4096, 8191, 8192]))
    assert h[["low", "high", "count"]].values.tolist() == [
        [0, 1, 3], [2, 3, 2], [4, 7, 2], [8, 15, 1], [4096, 8191, 2], [8192, 16383, 1]]
    assert h.attrs == {"hist_type": "log2", "step": 1}
    assert slots_of(h).tolist() == [1, 2, 3, 4, 13, 14]


def test_from_values_floats_truncate_like_c():
    h = from_values(np.array([1.9, 2.0, 3.99, 4.0]))
    assert h[["low", "count"]].values.tolist() == [[0, 1], [2, 2], [4, 1]]


def test_from_values_linear_with_step():
    h = from_values([0, 5, 9, 10, 25, 25], "linear", step=10)
    assert h[["low", "high", "count"]].values.tolist() == [[0, 9, 3], [10, 19, 1], [20, 29, 2]]
    assert (hist_type_of(h), step_of(h)) == ("linear", 10)


def test_from_values_keyed_by_column():
    df = pd.DataFrame({"disk": ["sda", "sdb", "sda", "sda"], "lat": [3, 100, 2, 700]})
    h = from_values(df, value="lat", by="disk")
    assert list(h.columns) == ["disk", "low", "high", "count"]
    assert h.values.tolist() == [["sda", 2, 3, 2], ["sda", 512, 1023, 1], ["sdb", 64, 127, 1]]


def test_from_values_finds_the_only_value_column():
    df = pd.DataFrame({"comm": ["a", "b"], "pid": [1, 2], "lat": [3, 300]})
    h = from_values(df, by=["comm", "pid"])
    assert h.values.tolist() == [["a", 1, 2, 3, 1], ["b", 2, 256, 511, 1]]
    with pytest.raises(BpfnbError, match="value="):
        from_values(df)
    by_series = from_values(df, value="lat", by=df["pid"])
    assert by_series["pid"].tolist() == [1, 2]


def test_from_values_keyed_by_array():
    h = from_values(pd.Series([1, 2, 3], name="lat"), keys=pd.Series([7, 7, 8], name="pid"))
    assert h.values.tolist() == [[7, 0, 1, 1], [7, 2, 3, 1], [8, 2, 3, 1]]


@pytest.mark.parametrize("bad, words", [
    ([1, -2], "negative"), ([1.0, float("nan")], "NaN"), (["a", "b"], "numbers")])
def test_from_values_rejects_bad_values_with_a_fix(bad, words):
    with pytest.raises(BpfnbError, match=words):
        from_values(np.array(bad, dtype=object) if words == "numbers" else bad)


def test_hist_type_guessed_when_attrs_lost():
    h = from_values([1, 5, 100, 4000])
    assert hist_type_of(pd.DataFrame(h.to_dict("list"))) == "log2"
    lin = from_values([3, 7, 12], "linear", step=5)
    plain = pd.DataFrame(lin.to_dict("list"))
    assert (hist_type_of(plain), step_of(plain)) == ("linear", 5)


def test_percentiles_interpolate_and_bounds():
    # 10 events in 0..1, 10 in 2..3, 80 in 4096..8191
    h = from_slots(pd.DataFrame({"slot": [1, 2, 13], "count": [10, 10, 80]}))
    p = percentiles(h, [10, 20, 50, 100])
    assert p.iloc[0].tolist() == [2.0, 4.0, 4096 + 4096 * 30 / 80, 8192.0]
    assert percentiles(h, [50], method="high")["p50"].tolist() == [8191]
    assert percentiles(h, [15], method="low")["p15"].tolist() == [2]
    assert list(percentiles(h, [99.9]).columns) == ["p99.9"]


def test_percentiles_per_key():
    df = pd.DataFrame({"pid": [1] * 4 + [2] * 2, "lat": [1, 1, 1, 1000, 5, 5]})
    p = percentiles(from_values(df, value="lat", by="pid"), [50, 99], method="high")
    assert p.values.tolist() == [[1, 1, 1023], [2, 7, 7]]


def test_combine_and_diff():
    a = from_values(pd.DataFrame({"k": [1, 1, 2], "v": [1, 9, 9]}), value="v", by="k")
    b = from_values(pd.DataFrame({"k": [1, 2, 2], "v": [9, 9, 40]}), value="v", by="k")
    s = combine(a, b)
    assert s.values.tolist() == [[1, 0, 1, 1], [1, 8, 15, 2], [2, 8, 15, 2], [2, 32, 63, 1]]
    assert s.attrs["hist_type"] == "log2"
    d = diff(s, b)
    assert d.values.tolist() == a.values.tolist()
    d2 = diff(a, b)  # negative counts are kept, zero rows dropped
    assert d2.values.tolist() == [[1, 0, 1, 1], [2, 32, 63, -1]]


def test_combine_refuses_mismatched_types():
    with pytest.raises(BpfnbError, match="linear"):
        combine(from_values([1, 2]), from_values([1, 2], "linear", step=4))


# -- against the kernel's bpf_log2l --------------------------------------------
def _bcc_or_skip():
    if os.geteuid() != 0:
        pytest.skip("needs root to load a BPF program (bpf_log2l check)")
    try:
        import bcc  # noqa: F401
    except ImportError:
        pytest.skip("bcc (python3-bpfcc) is not importable")
    if not os.path.exists("/sys/kernel/tracing/events/syscalls/sys_enter_lseek"):
        pytest.skip("tracepoint syscalls:sys_enter_lseek is not available")


def test_log2_slot_equals_bpf_log2l_in_the_kernel():
    _bcc_or_skip()
    from bcc import BPF

    prog = """
    BPF_HASH(slot_of, u64, u64);
    TRACEPOINT_PROBE(syscalls, sys_enter_lseek) {
        if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
        u64 v = (u64)args->offset;
        u64 slot = bpf_log2l(v);
        slot_of.update(&v, &slot);
        return 0;
    }
    """
    b = BPF(text=prog.encode(), cflags=[f"-DTARGET={os.getpid()}", "-w"])
    try:
        fd = os.open("/dev/null", os.O_RDONLY)
        try:
            for v in EDGE_VALUES:
                signed = v - (1 << 64) if v >= 1 << 63 else v
                try:
                    os.lseek(fd, signed, os.SEEK_SET)
                except OSError:
                    pass  # the enter tracepoint fired anyway
        finally:
            os.close(fd)
        kernel = {k.value: v.value for k, v in b[b"slot_of"].items()}
    finally:
        b.cleanup()
    assert sorted(kernel) == sorted(EDGE_VALUES)
    ours = log2_slot(np.array(EDGE_VALUES, dtype=np.uint64)).tolist()
    assert ours == [kernel[v] for v in EDGE_VALUES]


# -- bars (bpfnb.plot.hist) -------------------------------------------------------
@pytest.fixture
def agg():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_plot_hist_bars_labels_and_modes(agg):
    import bpfnb

    counts = {3: 10, 4: 50, 5: 12, 6: 2, 7: 30, 8: 8, 10: 4, 11: 20, 12: 5}
    h = from_slots(pd.DataFrame({"slot": list(counts), "count": list(counts.values())}))
    ax = bpfnb.plot.hist(h, label="usecs")
    heights = [p.get_height() for p in ax.containers[0]]
    assert heights == [10, 50, 12, 2, 30, 8, 0, 4, 20, 5]  # slot 9 empty but present
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["4 -> 7", "8 -> 15", "16 -> 31", "32 -> 63", "64 -> 127", "128 -> 255",
                      "256 -> 511", "512 -> 1023", "1024 -> 2047", "2048 -> 4095"]
    marks = [t.get_text() for t in ax.texts]
    assert marks == ["mode 1: 52%", "mode 2: 27%", "mode 3: 21%"]
    assert ax.get_xlabel() == "usecs"


def test_plot_hist_overlay_and_small_multiples(agg):
    import bpfnb
    from bpfnb.plot.hist import compact

    df = pd.DataFrame({"disk": ["a", "a", "b", "b", "b"], "lat": [1, 4096, 5, 6, 7000]})
    h = from_values(df, value="lat", by="disk")
    ax = bpfnb.plot.hist(h, labels="compact", mark_modes=False)
    assert [len(c) for c in ax.containers] == [13, 13]  # slots 1..13 for each disk
    assert ax.get_legend() is not None
    axes = bpfnb.plot.hist(h, layout="small_multiples")
    assert len(axes) == 2 and [a.get_title(loc="left") for a in axes] == ["disk=a", "disk=b"]
    assert [compact(x) for x in (0, 1000, 4096, 1 << 20, 3 << 29)] == ["0", "1000", "4K", "1M", "1.5G"]
    with pytest.raises(BpfnbError, match="not a key column"):
        bpfnb.plot.hist(h, by="cpu")
