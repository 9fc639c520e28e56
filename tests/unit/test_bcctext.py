"""read_bcc_hist on text printed by bcc itself (bcc.table's printers)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from bpfnb.errors import TraceFileError
from bpfnb.frames.hist import from_slots
from bpfnb.io.bcctext import read_bcc_hist

SEED = Path("/work/shared/seed/000_e139a7946ad7cccf.txt")

table = pytest.importorskip("bcc.table", reason="bcc (python3-bpfcc) is not importable; run `make setup`")


def printed(fn, *args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(*args)
    return out.getvalue()


def log2_vals(counts: dict[int, int]) -> list[int]:
    vals = [0] * 65
    for slot, count in counts.items():
        vals[slot] = count
    return vals


def expected(slots: dict[int, int], kind="log2", label="usecs", **keys) -> pd.DataFrame:
    frame = pd.DataFrame({**keys, "slot": list(slots), "count": list(slots.values())})
    out = from_slots(frame, kind, step=1, keys=list(keys))
    out.attrs["label"] = label
    return out


def same(actual: pd.DataFrame, want: pd.DataFrame) -> None:
    assert_frame_equal(actual, want, check_dtype=True, check_exact=True)
    assert actual.attrs == want.attrs


def test_log2_as_bcc_prints_it():
    counts = {1: 7, 2: 0, 5: 12, 13: 9}
    text = printed(table._print_log2_hist, log2_vals(counts), "usecs", False)
    assert "4096 -> 8191" in text
    df = read_bcc_hist(text)
    same(df, expected(counts))
    assert df["low"].tolist() == [0, 16, 4096] and df["high"].tolist() == [1, 31, 8191]
    assert df.dtypes.tolist() == [np.uint64, np.uint64, np.int64]


def test_log2_64_bit_wide_form():
    counts = {3: 1, 40: 5, 64: 2}
    text = printed(table._print_log2_hist, log2_vals(counts), "nsecs", False)
    assert "9223372036854775808 -> 18446744073709551615" in text  # the wide form
    df = read_bcc_hist(text)
    same(df, expected(counts, label="nsecs"))
    assert df["high"].iloc[-1] == np.uint64(2**64 - 1)


def test_log2_strip_leading_zero():
    counts = {10: 4, 12: 1}
    text = printed(table._print_log2_hist, log2_vals(counts), "kbytes", True)
    assert " 0 -> 1 " not in text
    same(read_bcc_hist(text), expected(counts, label="kbytes"))


def test_linear_as_bcc_prints_it():
    vals = [0] * 1025
    vals[0], vals[3], vals[17] = 2, 5, 1
    text = printed(table._print_linear_hist, vals, "percent", False)
    df = read_bcc_hist(text)
    same(df, expected({0: 2, 3: 5, 17: 1}, kind="linear", label="percent"))
    assert df["low"].tolist() == df["high"].tolist() == [0, 3, 17]
    assert df.attrs["hist_type"] == "linear" and df.attrs["step"] == 1


def test_keyed_sections_with_time_and_noise():
    a = printed(table._print_log2_hist, log2_vals({4: 3, 6: 1}), "usecs", False)
    b = printed(table._print_log2_hist, log2_vals({4: 8}), "usecs", False)
    text = (
        "Tracing block device I/O... Hit Ctrl-C to end.\n\n09:10:11\n"
        f"\ndisk = b'sda'\n{a}\ndisk = 'nvme0n1'\n{b}avg = 12 usecs, total: 99 usecs, count: 9\n"
        f"\n09:10:12\n\ndisk = b'sda'\n{b}"
    )
    df = read_bcc_hist(text)
    assert list(df.columns) == ["time", "disk", "low", "high", "count"]
    assert df["time"].tolist() == ["09:10:11"] * 3 + ["09:10:12"]
    assert df["disk"].tolist() == ["nvme0n1", "sda", "sda", "sda"]
    assert df["count"].tolist() == [8, 3, 1, 8]
    assert df["low"].tolist() == [8, 8, 32, 8]
    assert df.dtypes["time"] == object and df.dtypes["disk"] == object


def test_integer_section_keys_and_repeated_prints():
    one = printed(table._print_log2_hist, log2_vals({2: 1}), "usecs", False)
    text = f"\npid = 42\n{one}\npid = 7\n{one}\npid = 42\n{one}"
    df = read_bcc_hist(text)
    assert list(df.columns) == ["print", "pid", "low", "high", "count"]
    assert df["pid"].dtype == np.int64
    assert df[["print", "pid"]].values.tolist() == [[0, 7], [0, 42], [1, 42]]


def test_keyed_table_printed_by_bcc(tmp_path):
    """A real keyed BPF histogram, filled from user space, printed by bcc."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a BPF map")
    from bcc import BPF

    bpf = BPF(text="struct key_t { char disk[8]; u64 slot; }; BPF_HISTOGRAM(dist, struct key_t);")
    try:
        dist = bpf["dist"]
        for disk, slot, count in [(b"sda", 3, 4), (b"sda", 11, 2), (b"vdb", 1, 9)]:
            dist[dist.Key(disk, slot)] = dist.Leaf(count)
        text = printed(dist.print_log2_hist, "usecs", "disk")
    finally:
        bpf.cleanup()
    assert "disk = b'sda'" in text
    df = read_bcc_hist(text)
    want = expected({3: 4, 11: 2, 1: 9}, disk=pd.Series(["sda", "sda", "vdb"], dtype=object))
    same(df, want)


def test_seed_runqlat_from_a_slide():
    """The talk's runqlat output, with tabs for spaces and no bars or colon."""
    df = read_bcc_hist(SEED)
    first = df[(df["print"] == 0) & df["time"].isna()]
    assert first["count"].tolist() == [2810, 5248, 12369, 71312, 55705, 11775, 6230, 2758, 549, 46, 11, 4, 5]
    assert first["high"].tolist()[-1] == 8191
    # the interval output "19:19:04" then "19:19:14"
    assert df[df["time"] == "19:19:04"].groupby("print")["count"].sum().tolist() == [3119, 3119]
    # argdist's "[15:34:45]" header
    assert df[df["time"] == "15:34:45"]["count"].tolist() == [15088, 4786, 1, 1, 4, 11, 5, 27, 105]


def test_errors_name_the_problem():
    with pytest.raises(TraceFileError, match="no bcc histogram found"):
        read_bcc_hist("hello\nworld\n")
    with pytest.raises(TraceFileError, match=r"'4 -> 8' is not a bcc log2 bucket"):
        read_bcc_hist("usecs : count distribution\n  4 -> 8 : 3 |*|\n")
    lin = printed(table._print_linear_hist, [1] + [0] * 1024, "x", False)
    log = printed(table._print_log2_hist, log2_vals({2: 1}), "x", False)
    with pytest.raises(TraceFileError, match="mixes log2 and linear"):
        read_bcc_hist(lin + "\n" + log)


def test_reads_back_what_format_hist_prints():
    """bpfnb's own bcc-style printer and this reader agree (keyed, wide)."""
    from bpfnb.frames.histtext import format_hist

    hist = expected({1: 3, 7: 2, 40: 1}, disk=pd.Series(["sda", "sda", "vdb"], dtype=object))
    text = format_hist(hist, "usecs", section_header="disk")
    same(read_bcc_hist(text), hist)
