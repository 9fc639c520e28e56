"""format_hist against bcc's own print_log2_hist / print_linear_hist.

The bcc comparisons fill real BPF_HISTOGRAM maps from user space (needs root
and bcc) and capture what bcc prints; the pure tests pin the format itself.
"""

import contextlib
import io
import os
from ctypes import c_int, c_ulong

import pandas as pd
import pytest

from bpfnb.frames.hist import from_slots, from_values
from bpfnb.frames.histtext import format_hist, hist_html, hist_text

CASES = {
    "small": {1: 5, 3: 100, 10: 7, 12: 1},
    "single": {7: 1},
    "ties_and_rounding": {1: 3, 2: 7, 3: 21, 4: 40, 5: 39, 6: 1, 20: 13},
    "slot32": {5: 10, 32: 3},
    "wide64": {2: 1, 33: 50, 40: 7, 64: 2},
    "huge_counts": {4: (1 << 60) + 3, 5: (1 << 59) + 1, 6: 12345},
    "slot0_only_counts_in_max": {0: 1000, 3: 10},
}
LINEAR_CASES = {
    "lin_small": {0: 2, 3: 4, 7: 9},
    "lin_zero_only": {0: 5},
    "lin_long": {i: (i * 37) % 101 for i in range(0, 300, 3)},
}


def frame(slots: dict, kind="log2", keys=None):
    rows = [{"slot": s, "count": c} for s, c in slots.items()]
    return from_slots(pd.DataFrame(rows, columns=["slot", "count"]), kind)


def test_log2_format_pinned():
    text = format_hist(frame({1: 5, 3: 100, 10: 7}), "usecs")
    assert text.splitlines()[:4] == [
        "     usecs               : count     distribution",
        "         0 -> 1          : 5        |**                                      |",
        "         2 -> 3          : 0        |                                        |",
        "         4 -> 7          : 100      |****************************************|",
    ]
    assert text.splitlines()[-1] == (
        "       512 -> 1023       : 7        |**                                      |")
    assert len(text.splitlines()) == 11


def test_empty_prints_nothing():
    assert format_hist(frame({})) == ""


def test_linear_labels_by_slot_like_bcc_or_by_low():
    h = from_values([0, 5, 25, 25], "linear", step=10)
    assert [l.split(":")[0].strip() for l in format_hist(h).splitlines()[1:]] == ["0", "1", "2"]
    low = format_hist(h, linear_labels="low").splitlines()[1:]
    assert [l.split(":")[0].strip() for l in low] == ["0", "10", "20"]


def test_keyed_sections():
    df = pd.DataFrame({"disk": [1, 1, 3], "lat": [2, 3, 20]})
    text = format_hist(from_values(df, value="lat", by="disk"), "usecs", section_header="disk")
    lines = text.splitlines()
    assert lines[0] == "" and lines[1] == "disk = 1"
    assert lines[2:5] == ["     usecs               : count     distribution",
                         "         0 -> 1          : 0        |                                        |",
                         "         2 -> 3          : 2        |****************************************|"]
    assert lines[5] == "" and lines[6] == "disk = 3"
    assert text.count("usecs") == 2


def test_text_and_html_displays():
    h = from_values([1, 2, 3, 1000])
    assert hist_text(h).startswith(format_hist(h))
    assert "4 events" in hist_text(h)
    html = hist_html(h)
    assert html.startswith("<div") and "0 -&gt; 1" in html


# -- character for character against bcc ----------------------------------------
@pytest.fixture(scope="module")
def bpf():
    if os.geteuid() != 0:
        pytest.skip("needs root to create BPF maps for bcc's printing")
    try:
        from bcc import BPF
    except ImportError:
        pytest.skip("bcc (python3-bpfcc) is not importable")
    b = BPF(text=b"""
    BPF_HISTOGRAM(dist, int, 65);
    BPF_HISTOGRAM(lin, int, 1025);
    struct key_t { u64 disk; u64 slot; };
    BPF_HISTOGRAM(keyed, struct key_t, 1024);
    """, cflags=["-w"])
    yield b
    b.cleanup()


def bcc_print(table, method, *args, **kwargs) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        getattr(table, method)(*args, **kwargs)
    return out.getvalue()


def fill(table, slots: dict):
    table.clear()
    for slot, count in slots.items():
        table[c_int(slot)] = c_ulong(count)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("strip", [None, True])
def test_log2_matches_bcc(bpf, name, strip):
    table = bpf[b"dist"]
    fill(table, CASES[name])
    expected = bcc_print(table, "print_log2_hist", "usecs", strip_leading_zero=strip)
    assert format_hist(frame(CASES[name]), "usecs", strip_leading_zero=strip) == expected


@pytest.mark.parametrize("name", sorted(LINEAR_CASES))
@pytest.mark.parametrize("strip", [None, True])
def test_linear_matches_bcc(bpf, name, strip):
    table = bpf[b"lin"]
    fill(table, LINEAR_CASES[name])
    expected = bcc_print(table, "print_linear_hist", "kbytes", strip_leading_zero=strip)
    got = format_hist(frame(LINEAR_CASES[name], "linear"), "kbytes", strip_leading_zero=strip)
    assert got == expected


def test_keyed_matches_bcc(bpf):
    table = bpf[b"keyed"]
    table.clear()
    counts = {(8, 3): 9, (8, 5): 40, (1, 2): 4, (1, 20): 1, (259, 1): 7}
    for (disk, slot), n in counts.items():
        table[table.Key(disk, slot)] = c_ulong(n)
    expected = bcc_print(table, "print_log2_hist", "usecs", "disk", bucket_sort_fn=sorted)
    hist = from_slots(pd.DataFrame([{"disk": d, "slot": s, "count": n}
                                    for (d, s), n in counts.items()]), keys=["disk"])
    assert format_hist(hist, "usecs", section_header="disk") == expected
    expected_fn = bcc_print(table, "print_log2_hist", "usecs", "disk",
                            section_print_fn=lambda d: f"sd{d}", bucket_sort_fn=sorted)
    got_fn = format_hist(hist, "usecs", section_header="disk", section_print_fn=lambda d: f"sd{d}")
    assert got_fn == expected_fn
    table.clear()
