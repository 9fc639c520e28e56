"""Heat maps: exact bins (last column and top row included), time units,
cut-offs, in-kernel (histogram) heat maps, SVG cells, displays, files."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bpfnb.errors import BpfnbError
from bpfnb.frames.heatbins import bin_events, bin_hist, nice_ceil, time_unit_of
from bpfnb.frames.hist import from_values
from bpfnb.plot.heatmap import heatmap

CELL = re.compile(r'<rect class="cell" x="([\d.]+)" y="([\d.]+)"')

# 3 columns of 1 s, values 0..29 in rows of 10: the last column and the top
# row hold events (trace2heatmap.pl would drop both)
EVENTS = pd.DataFrame({
    "ts": np.array([0.0, 0.2, 0.9, 1.5, 2.0, 2.99, 2.5, 0.1]) * 1e9,
    "lat_us": [0, 9, 10, 29, 29, 15, 5, 25],
}).astype({"ts": np.int64})


def test_exact_bins_with_last_column_and_top_row():
    b = bin_events(EVENTS["ts"], EVENTS["lat_us"], step=1, row_size=10)
    assert b.time_edges.tolist() == [0, 1, 2, 3]
    assert b.value_edges.tolist() == [0, 10, 20, 30]
    # counts[row, column], row 0 = lowest values
    assert b.counts.tolist() == [[2, 0, 1],
                                 [1, 0, 1],
                                 [1, 1, 1]]
    assert (b.nonempty, b.total, b.above, b.below) == (7, 8, 0, 0)
    assert b.row_label(2) == "20 -> 29"


def test_svg_draws_one_rect_per_nonempty_cell_including_edges():
    hm = heatmap(EVENTS, step=1, row_size=10)
    svg = hm.to_svg()
    cells = CELL.findall(svg)
    assert len(cells) == hm.bins.nonempty == 7
    xs = sorted({float(x) for x, _ in cells})
    ys = sorted({float(y) for _, y in cells})
    assert len(xs) == 3 and len(ys) == 3  # every column and every row has a drawn cell
    assert "count 1 (33.3% of column)" in svg  # top row, last column: 1 of 3 events
    assert "time 2-3 s" in svg and "lat_us 20 -> 29" in svg


def test_many_cells_counted_exactly():
    rng = np.random.default_rng(5)
    n = 50_000
    ts = np.sort(rng.integers(0, 60_000_000, n))  # us
    lat = rng.lognormal(6, 1, n).astype(np.int64)
    ts[0] = 0
    ts[-1], lat[-1] = 60_000_000, lat.max()  # an event exactly at the end, at the top
    hm = heatmap(pd.DataFrame({"t_us": ts, "lat": lat}), time="t_us", value="lat", step="1s")
    b = hm.bins
    assert b.n_cols == 61 and b.counts[:, -1].sum() >= 1 and b.counts[-1].sum() >= 1
    assert b.total == n and b.above == 0
    assert len(CELL.findall(hm.to_svg())) == np.count_nonzero(b.counts) == b.nonempty
    expected = np.zeros_like(b.counts)
    size = b.value_edges[1] - b.value_edges[0]
    np.add.at(expected, ((lat // size).astype(int), ts // 1_000_000), 1)
    assert np.array_equal(expected, b.counts)


@pytest.mark.parametrize("unit, scale", [("ns", 1e9), ("us", 1e6), ("ms", 1e3)])
def test_time_units_give_the_same_bins(unit, scale):
    ref = bin_events(EVENTS["ts"], EVENTS["lat_us"], step=1, row_size=10).counts
    ts = (EVENTS["ts"] / 1e9 * scale).round().astype(np.int64)
    got = bin_events(ts, EVENTS["lat_us"], step=1, row_size=10, time_unit=unit).counts
    assert np.array_equal(got, ref)
    seconds = bin_events(EVENTS["ts"] / 1e9, EVENTS["lat_us"], step=1, row_size=10).counts
    assert np.array_equal(seconds, ref)
    dt = pd.Timestamp("2026-01-01 12:00") + pd.to_timedelta(EVENTS["ts"], unit="ns")
    b = bin_events(dt, EVENTS["lat_us"], step="1s", row_size=10)
    assert np.array_equal(b.counts, ref) and b.start == pd.Timestamp("2026-01-01 12:00")


def test_time_unit_rules():
    ints, floats = pd.Series([1, 2]), pd.Series([1.0, 2.0])
    assert time_unit_of(ints, "ts") == "ns"
    assert time_unit_of(floats, "ts") == "s"
    assert time_unit_of(ints, "TIMEus") == "us"
    assert time_unit_of(ints, "start_ms") == "ms"
    assert time_unit_of(ints, "ts", "us") == "us"
    assert [nice_ceil(x) for x in (0.8, 1.2, 3, 7, 0.013)] == [1, 2, 5, 10, 0.02]


def test_max_value_and_quantile_cut_off():
    b = bin_events(EVENTS["ts"], EVENTS["lat_us"], step=1, row_size=10, max_value=24)
    # the top row spans 20..29 but only 20..24 are drawn: 25, 29, 29 are above
    assert b.above == 3 and b.n_rows == 3 and b.counts[2].sum() == 0
    assert b.counts.sum() + b.above == 8
    b = bin_events(EVENTS["ts"], EVENTS["lat_us"], step=1, row_size=10, max_value=19)
    assert b.above == 3 and b.n_rows == 2
    q = bin_events(np.arange(1000) * 1e6, np.arange(1000), quantile=0.9, time_unit="ns")
    assert q.above == 100 and q.total == 900  # the 0.9 quantile is 899.1


def test_log_rows():
    vals = np.array([1, 10, 100, 1000, 0])
    b = bin_events(np.zeros(5), vals, scale="log", rows=3)
    assert np.allclose(b.value_edges, [1, 10, 100, 1000])
    assert b.counts[:, 0].tolist() == [2, 1, 2]  # 0 is below (bottom row), 1000 in the top row
    assert b.below == 1


def test_in_kernel_heatmap_from_hist_with_time():
    df = pd.DataFrame({"time": [1.0, 1.0, 1.0, 2.0, 2.0, 4.0], "lat": [3, 5, 100, 3, 7, 2000]})
    h = from_values(df, value="lat", by="time")
    b = bin_hist(h)
    assert b.scale == "log2" and b.step == 1.0 and b.n_cols == 4  # 3.0 had no events: blank
    assert b.value_edges[[0, -1]].tolist() == [2, 2048]
    assert b.counts.sum() == 6 and b.nonempty == 6
    assert b.counts[0].tolist() == [1, 1, 0, 0]  # 2 -> 3
    assert b.counts[-1].tolist() == [0, 0, 0, 1]  # 1024 -> 2047, last column, top row
    assert b.start == 0.0  # time marks the end of the interval
    hm = heatmap(h)
    assert len(CELL.findall(hm.to_svg())) == 6
    assert "1024 -> 2047" in hm.to_svg()
    assert bin_hist(h, time_marks="start").start == 1.0
    h.attrs["interval"] = 0.5  # as captures record it: 1.0 and 2.0 are 2 columns apart
    half = bin_hist(h)
    assert half.step == 0.5 and half.n_cols == 7 and half.start == 0.5


def test_display_bundle_has_interactive_and_static_views():
    hm = heatmap(EVENTS, step=1, row_size=10)
    bundle = hm._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/svg+xml", "text/html"}
    assert bundle["image/svg+xml"].startswith("<svg")
    html = bundle["text/html"]
    assert "<svg" in html and "attachHover" in html and "export default" not in html
    assert len(CELL.findall(html)) == 7
    assert "HeatMap 3 columns x 3 rows" in bundle["text/plain"]
    assert "@" in hm.text()


def test_save_svg_html_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    hm = heatmap(EVENTS, step=1, row_size=10)
    assert (tmp_path / "a.svg").exists() is False
    hm.save(tmp_path / "a.svg")
    hm.save(tmp_path / "a.html")
    hm.save(tmp_path / "a.png")
    assert (tmp_path / "a.svg").read_text().count('class="cell"') == 7
    assert (tmp_path / "a.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    mesh = hm.ax.collections[0]
    assert mesh.get_array().count() == 7  # masked empty cells are not drawn
    with pytest.raises(BpfnbError, match=".svg, .html or .png"):
        hm.save(tmp_path / "a.pdf")


def test_widget_carries_the_svg():
    hm = heatmap(EVENTS, step=1, row_size=10)
    view = hm.widget()
    assert view.svg == hm.to_svg()


def test_user_errors_name_the_fix():
    with pytest.raises(BpfnbError, match="no column 'latency'.*value="):
        heatmap(EVENTS, value="latency")
    with pytest.raises(BpfnbError, match="'100ms'"):
        heatmap(EVENTS, step="soon")
    with pytest.raises(BpfnbError, match="not both"):
        heatmap(EVENTS, max_value=10, quantile=0.9)
    with pytest.raises(BpfnbError, match="empty"):
        heatmap(EVENTS.iloc[:0])


def test_import_does_not_load_matplotlib():
    code = ("import sys, bpfnb, bpfnb.plot; bpfnb.heatmap; bpfnb.plot.hist; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_hover_in_a_browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    if not chromium:
        pytest.skip("no chromium to run the hover script in")
    hm = heatmap(EVENTS, step=1, row_size=10)
    page_path = tmp_path / "hm.html"
    hm.save(page_path)
    x, y = (float(v) for v in CELL.findall(hm.to_svg())[-1])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 500})
        page.goto(page_path.as_uri())
        page.mouse.move(x + 8, y + 8)
        page.wait_for_timeout(100)
        tip = page.evaluate("document.querySelector('.bpfnb-tip').textContent")
        browser.close()
    assert tip.startswith("time ") and "lat_us" in tip and "% of column" in tip


def test_anywidget_module_renders_and_follows_svg_changes(tmp_path):
    """heatmap.js as the widget front end loads it: render({model, el}) with a model stub."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    if not chromium:
        pytest.skip("no chromium to run the widget module in")
    import json
    from pathlib import Path

    js = Path(sys.modules["bpfnb.plot.heatmap"].__file__).with_name("heatmap.js")
    first = heatmap(EVENTS, step=1, row_size=10).to_svg()
    second = heatmap(EVENTS.iloc[:3], step=1, row_size=10).to_svg()
    (tmp_path / "heatmap.js").write_text(js.read_text())
    (tmp_path / "page.html").write_text("""<!DOCTYPE html><html><body><div id="el"></div>
<script type="module">
import widget from "./heatmap.js";
const handlers = {};
const state = {svg: %s};
const model = {get: (k) => state[k], on: (ev, fn) => { handlers[ev] = fn; }};
widget.render({model, el: document.getElementById("el")});
window.counts = [document.querySelectorAll("#el rect.cell").length];
state.svg = %s;
handlers["change:svg"]();
window.counts.push(document.querySelectorAll("#el rect.cell").length);
</script></body></html>""" % (json.dumps(first), json.dumps(second)))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--allow-file-access-from-files"])
        page = browser.new_page()
        page.goto((tmp_path / "page.html").as_uri())
        page.wait_for_function("window.counts && window.counts.length == 2", timeout=5000)
        counts = page.evaluate("window.counts")
        browser.close()
    assert counts == [7, heatmap(EVENTS.iloc[:3], step=1, row_size=10).bins.nonempty]
