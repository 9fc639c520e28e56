"""bpfnb.report: the self-contained HTML report of a (synthetic, saved) Trace."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

import bpfnb
from bpfnb.frames.hist import from_slots
from bpfnb.report import ReportError, latency_column, report_html, write_report
from bpfnb.trace import Trace


def runq_hist() -> pd.DataFrame:
    # 100 events at 8-15 us, 50 at 1024-2047 us: two modes
    hist = from_slots(pd.DataFrame({"slot": [4, 11], "count": [100, 50]}), "log2")
    hist.attrs["unit"] = "usecs"
    return hist


def heat_hist() -> pd.DataFrame:
    rows = [{"time": t, "slot": s, "count": c} for t in (0.2, 0.4, 0.6) for s, c in ((3, 10), (9, 2))]
    hist = from_slots(pd.DataFrame(rows), "log2", keys=["time"])
    hist.attrs.update(unit="usecs", interval=0.2)
    return hist


def io_events() -> pd.DataFrame:
    n = 400
    rng = np.random.default_rng(7)
    lat = np.where(np.arange(n) % 4 == 0, 5000.0, 200.0) + rng.uniform(0, 50, n)
    lat[123] = 98765.0  # the outlier the report must list
    return pd.DataFrame({
        "ts": (np.arange(n, dtype=np.uint64) * 10_000_000 + 1_000_000_000),
        "pid": np.full(n, 4242, dtype=np.uint32),
        "comm": ["dd"] * n,
        "bytes": np.where(np.arange(n) % 4 == 0, 1 << 20, 4096).astype(np.uint64),
        "lat_us": lat,
    })


def cpu_stacks() -> pd.DataFrame:
    return pd.DataFrame({"comm": ["spin", "spin", "sh"],
                         "stack": ["main;spin_loop;add_one", "main;spin_loop", "main;read_line"],
                         "value": [70, 20, 10]})


def synthetic_trace(lost: int = 3) -> Trace:
    t = Trace(lost={"ios": lost}, meta={
        "host": "testhost", "kernel": "6.18.0", "bcc_version": "0.26.0",
        "start_wall": 1_700_000_000.0, "end_wall": 1_700_000_004.5, "stopped_by": "duration",
        "source": "TRACEPOINT_PROBE(block, block_rq_complete) { if (x < 3 && y > 2) return 0; }",
        "tool": {"name": "biosnoop", "attach": ["tracepoint:block:block_rq_issue"],
                 "measures": "issue to completion", "options": {"pid": None}},
    })
    t.add("hist", "runqlat", runq_hist())
    t.add("hist", "heat", heat_hist())
    t.add("events", "ios", io_events())
    t.add("stacks", "cpu", cpu_stacks())
    t.add("map", "counts", pd.DataFrame({"comm": [f"c{i}" for i in range(30)], "value": np.arange(30) * 10}))
    return t


def test_report_has_every_picture_inline(tmp_path):
    page = report_html(synthetic_trace())
    # histograms as PNG data URIs that decode to PNGs: runqlat, and heat summed over time
    pngs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(pngs) == 2
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # heat maps (in-kernel one and events' latency one) and the flame graph as inline SVG
    assert page.count("class=\"bpfnb-heatmap\"") == 2
    assert "add_one" in page and "spin_loop" in page
    # nothing fetched from elsewhere
    assert not re.search(r"""(src|href)=["']https?:""", page)
    assert "<link" not in page


def test_report_tables_hold_the_real_numbers():
    page = report_html(synthetic_trace())
    # bcc's histogram text: 100 in 8 -> 15, 50 in 1024 -> 2047
    assert re.search(r"8 -&gt; 15\s+: 100", page) and re.search(r"1024 -&gt; 2047\s+: 50", page)
    # the summed in-kernel heat map: 3 intervals x 10 in 4 -> 7
    assert re.search(r"4 -&gt; 7\s+: 30", page)
    # the outlier is listed among the slowest events
    assert "98,765" in page
    # map: only the 20 largest of 30 rows, largest first
    assert "c29" in page and "c10" in page and "<td>c9</td>" not in page
    # flame graph's widest function table
    assert "spin_loop" in page


def test_lost_events_and_meta_are_shown_escaped():
    page = report_html(synthetic_trace(lost=3))
    assert "3 events lost from &#x27;ios&#x27;" in page or "3 events lost from 'ios'" in page
    assert "class='lost'" in page
    assert "testhost" in page and "6.18.0" in page and "issue to completion" in page
    assert "if (x &lt; 3 &amp;&amp; y &gt; 2)" in page
    assert "<title>biosnoop on testhost</title>" in page
    clean = report_html(synthetic_trace(lost=0))
    assert "Lost events: 0" in clean


def test_write_report_from_a_saved_trace(tmp_path):
    saved = synthetic_trace().save(tmp_path / "run.bpfnb")
    out = write_report(bpfnb.load(saved), tmp_path / "out")
    assert out == tmp_path / "out" / "report.html"
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert re.search(r"8 -&gt; 15\s+: 100", text)
    named = write_report(bpfnb.load(saved), tmp_path / "x.html", title="My run")
    assert "<h1>My run</h1>" in named.read_text(encoding="utf-8")


def test_empty_and_undrawable_outputs_say_so():
    t = Trace()
    t.add("events", "none", pd.DataFrame({"ts": [], "lat_us": []}))
    t.add("stacks", "bad", pd.DataFrame({"stack": ["a;b"], "value": ["not a number"]}))
    page = report_html(t)
    assert "No rows: nothing matched" in page
    assert "Could not draw this output" in page and "numeric" in page


def test_unwritable_place_is_a_report_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot write the report"):
        write_report(synthetic_trace(), blocker / "sub")


def test_latency_column_choice():
    assert latency_column(pd.DataFrame({"lat_ms": [1.0], "lat_us": [1000.0]})) == ("lat_us", "µs")
    assert latency_column(pd.DataFrame({"ms": [3.0]})) == ("ms", "ms")
    assert latency_column(pd.DataFrame({"lat_us": ["x"]})) is None


def test_keyed_histogram_draws_the_largest_keys():
    slots = pd.DataFrame({"pid": np.repeat(np.arange(12), 2), "slot": np.tile([3, 9], 12),
                          "count": np.repeat(np.arange(1, 13) * 10, 2)})
    t = Trace()
    t.add("hist", "per_pid", from_slots(slots, "log2", keys=["pid"]))
    page = report_html(t)
    assert page.count("data:image/png;base64,") == 1
    assert "pid = 11" in page and "pid = 0" in page   # bcc's text keeps every key
    one = Trace()
    one.add("hist", "two", from_slots(slots[slots["pid"] < 2], "log2", keys=["pid"]))
    assert report_html(one).count("data:image/png;base64,") == 1
