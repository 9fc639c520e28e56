"""bpfnb.flamegraph: inputs, SVG/HTML outputs, notebook bundle, errors."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

import bpfnb
from bpfnb.errors import BpfnbError
from bpfnb.plot.flamegraph import FlameGraph, FlameGraphError
from bpfnb.trace import Trace

SVG_NS = "{http://www.w3.org/2000/svg}"
DF = pd.DataFrame(
    {
        "comm": ["app", "app", "app", "db"],
        "stack": ["main;work;spin", "main;work;spin", "main;io<&>", "loop;query"],
        "value": [60, 20, 10, 10],
    }
)


def frames(svg: str) -> dict[str, dict]:
    """name -> {depth, count, title, fill, x, width} of every frame group."""
    root = ET.fromstring(svg.split("?>", 1)[-1])
    out = {}
    for g in root.iter(SVG_NS + "g"):
        if "fg-frame" not in g.get("class", ""):
            continue
        rect = g.find(SVG_NS + "rect")
        out[g.get("data-name")] = {
            "depth": int(g.get("data-depth")),
            "count": float(g.get("data-count")),
            "title": g.find(SVG_NS + "title").text,
            "fill": rect.get("fill"),
            "x": float(rect.get("x")),
            "width": float(rect.get("width")),
        }
    return out


def test_public_name_returns_a_flamegraph():
    fg = bpfnb.flamegraph(DF)
    assert isinstance(fg, FlameGraph)
    assert bpfnb.flamegraph is bpfnb.plot.flamegraph.flamegraph
    assert bpfnb.plot.FlameGraph is FlameGraph


def test_svg_is_well_formed_with_counts_percentages_and_key_roots():
    svg = bpfnb.flamegraph(DF, title="My profile").to_svg()
    fr = frames(svg)
    assert fr["all"]["count"] == 100 and fr["all"]["depth"] == 0
    assert fr["app"]["depth"] == 1 and fr["app"]["count"] == 90  # comm is the root frame
    assert fr["spin"]["count"] == 80
    assert fr["spin"]["title"] == "spin (80 samples, 80.00%)"
    assert fr["io<&>"]["title"].startswith("io<&> (10 samples, 10.00%")  # escaped, parsed back
    assert fr["spin"]["width"] == pytest.approx(1180 * 0.8, abs=0.01)
    assert fr["app"]["x"] == pytest.approx(10) and fr["db"]["x"] == pytest.approx(10 + 1180 * 0.9, abs=0.01)
    assert "My profile" in svg and "<script" in svg and "Search" in svg and "Reset Zoom" in svg


def test_static_svg_has_no_script_or_controls():
    svg = bpfnb.flamegraph(DF).to_svg(interactive=False)
    assert "<script" not in svg and "Reset Zoom" not in svg
    assert "100 samples in all" in svg  # the total and unit stay in the picture
    assert len(frames(svg)) == 9  # all + 8 merged frames


def test_kinds_pick_palette_title_and_unit():
    off = bpfnb.flamegraph(DF, kind="offcpu")
    assert off.unit == "us" and off.palette == "io" and off.title == "Off-CPU Time Flame Graph"
    fr = frames(off.to_svg())
    r, g, b = (int(v) for v in fr["spin"]["fill"][4:-1].split(","))
    assert b > r
    assert "(80 us, 80.00%)" in fr["spin"]["title"]
    hot = frames(bpfnb.flamegraph(DF).to_svg())["spin"]["fill"]
    r, g, b = (int(v) for v in hot[4:-1].split(","))
    assert r > b
    assert bpfnb.flamegraph(DF, unit="ms", title="T").unit == "ms"


def test_offwake_chain_colours():
    df = pd.DataFrame({"stack": ["reader;read;schedule;--;pipe_write;write;writer"], "value": [5]})
    fr = frames(bpfnb.flamegraph(df, kind="offwake").to_svg())
    assert fr["--"]["fill"] == "rgb(160,160,160)"
    r, g, b = (int(v) for v in fr["pipe_write"]["fill"][4:-1].split(","))
    assert g > r and b > r
    assert fr["writer"]["depth"] == fr["--"]["depth"] + 3  # waker name on top


def test_diff_needs_a_baseline_and_colours_by_delta():
    with pytest.raises(FlameGraphError, match="baseline"):
        bpfnb.flamegraph(DF, kind="diff")
    before = DF.assign(value=[10, 10, 60, 10])
    fg = bpfnb.flamegraph(DF, kind="diff", other=before)
    fr = frames(fg.to_svg())
    assert fr["spin"]["fill"].startswith("rgb(255,")  # more now: red
    assert fr["io<&>"]["fill"].endswith(",255)")  # less now: blue
    assert "vs baseline" in fr["spin"]["title"]
    assert set(fg.frames.columns) >= {"baseline", "delta"}


def test_trace_input_and_path_input(tmp_path):
    t = Trace(frames={"stacks": {"cpu": DF}})
    assert bpfnb.flamegraph(t).layout.total == 100
    path = tmp_path / "p.folded"
    bpfnb.write_folded(DF, path)
    assert bpfnb.flamegraph(str(path)).layout.total == 100


def test_bad_inputs_are_bpfnb_errors(tmp_path):
    with pytest.raises(BpfnbError, match="unknown flame graph kind 'cpu'"):
        bpfnb.flamegraph(DF, kind="cpu")
    with pytest.raises(BpfnbError, match="'stack' and 'value'"):
        bpfnb.flamegraph(pd.DataFrame({"a": [1]}))
    with pytest.raises(BpfnbError, match=r"\.svg or \.html"):
        bpfnb.flamegraph(DF).save(tmp_path / "x.png")


def test_save_svg_and_html(tmp_path):
    fg = bpfnb.flamegraph(DF)
    svg_path = fg.save(tmp_path / "f.svg")
    html_path = fg.save(tmp_path / "f.html")
    assert frames(open(svg_path).read())["spin"]["count"] == 80
    html = open(html_path).read()
    assert html.startswith("<!DOCTYPE html>") and 'type="search"' in html
    assert html.count("<svg") == 1 and "svg.flame" in html


def test_notebook_bundle_has_interactive_html_static_svg_and_text():
    bundle = bpfnb.flamegraph(DF)._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/svg+xml", "text/plain"}
    assert "<script" in bundle["text/html"] and "<svg" in bundle["text/html"]
    assert "<script" not in bundle["image/svg+xml"]
    static = ET.fromstring(bundle["image/svg+xml"].split("?>", 1)[-1])
    rects = {
        r.get("fill"): float(r.get("width")) for r in static.iter(SVG_NS + "rect")
    }  # lean picture: plain rects, no tooltips
    assert "<title>" not in bundle["image/svg+xml"]
    spin_fill = frames(bpfnb.flamegraph(DF).to_svg())["spin"]["fill"]
    assert rects[spin_fill] == pytest.approx(1180 * 0.8, abs=0.1)
    labels = [t.text for t in static.iter(SVG_NS + "text")]
    assert "spin" in labels and "100 samples in all" in labels
    text = bundle["text/plain"]
    assert text.startswith("<FlameGraph oncpu: 100 samples, 9 frames drawn of 9>")
    assert re.search(r"80\.00%\s+80 samples\s+spin", text)


def test_each_graph_has_its_own_element_id():
    a = bpfnb.flamegraph(DF).to_svg()
    b = bpfnb.flamegraph(DF).to_svg()
    ida = re.search(r'<svg[^>]* id="([^"]+)"', a).group(1)
    idb = re.search(r'<svg[^>]* id="([^"]+)"', b).group(1)
    assert ida != idb and f'getElementById("{ida}")' in a


def test_top_counts_recursion_once():
    df = pd.DataFrame({"stack": ["main;f;f;f", "main;g"], "value": [7, 3]})
    top = bpfnb.flamegraph(df).top()
    got = dict(zip(top["name"], top["count"]))
    assert got == {"main": 10, "f": 7, "g": 3}


def test_min_width_prunes_and_reports_drawn_frames():
    df = pd.DataFrame({"stack": ["a;b", "a;tiny"], "value": [9999, 1]})
    fg = bpfnb.flamegraph(df, min_width=0.001)
    assert set(frames(fg.to_svg())) == {"all", "a", "b"}
    assert "3 frames drawn of 4" in repr(fg)


def test_keys_choose_the_root_frames():
    df = DF.assign(pid=[1, 2, 1, 3])[["comm", "pid", "stack", "value"]]
    assert frames(bpfnb.flamegraph(df).to_svg())["app"]["depth"] == 1
    by_pid = frames(bpfnb.flamegraph(df).to_svg())
    assert by_pid["1"]["depth"] == 2  # comm, then pid
    merged = frames(bpfnb.flamegraph(df, keys=["comm"]).to_svg())
    assert "1" not in merged and merged["main"]["count"] == 90
    bare = frames(bpfnb.flamegraph(df, keys=[]).to_svg())
    assert "app" not in bare and bare["main"]["depth"] == 1


def test_ipython_display_formatter_emits_html_and_static_svg():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    data, _meta = shell.display_formatter.format(bpfnb.flamegraph(DF))
    assert {"text/html", "image/svg+xml", "text/plain"} <= set(data)
    assert "<script" in data["text/html"] and "<script" not in data["image/svg+xml"]
    assert data["text/plain"].startswith("<FlameGraph oncpu")


def test_rows_without_a_stack_are_reported():
    df = pd.DataFrame({"stack": ["a;b", None], "value": [1, 2]})
    with pytest.raises(BpfnbError, match="1 rows have no stack"):
        bpfnb.flamegraph(df)
    series_input = bpfnb.plot.flamelayout.layout(pd.Series(["x;y", "x"], index=[5, 9]), [1, 2], min_width=0)
    assert series_input.frame_names() == ["x", "y"]
