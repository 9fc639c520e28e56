"""The interactive flame graph driven in a real headless browser.

Debian's chromium (/usr/bin/chromium, installed by `make setup`) through
Playwright's Python package; never `playwright install`.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest

import bpfnb

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
DF = pd.DataFrame(
    {
        "stack": ["app;main;work;spin", "app;main;work;hash", "app;main;io;read", "db;loop;query;spin"],
        "value": [50, 20, 20, 10],
    }
)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: run `make setup` (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path):
    pg = browser.new_page(viewport={"width": 1300, "height": 900})
    yield pg
    pg.close()


def rect(page, name):
    return page.evaluate(
        """name => {
            const g = document.querySelector(`g.fg-frame[data-name="${name}"]`);
            const r = g.querySelector('rect');
            return {x: +r.getAttribute('x'), width: +r.getAttribute('width'),
                    fill: r.getAttribute('fill'), shown: g.style.display !== 'none',
                    parent: g.classList.contains('fg-parent'),
                    label: g.querySelector('text').textContent};
        }""",
        name,
    )


def test_click_zooms_search_highlights_reset_restores(page, tmp_path):
    path = bpfnb.flamegraph(DF, title="browser test").save(tmp_path / "fg.html")
    page.goto(f"file://{path}")
    before = {n: rect(page, n) for n in ("all", "app", "main", "work", "spin", "hash", "io", "db")}
    assert before["work"]["width"] == pytest.approx(1180 * 0.7, abs=0.02)

    page.click('g.fg-frame[data-name="work"] rect')
    work = rect(page, "work")
    assert work["x"] == pytest.approx(10) and work["width"] == pytest.approx(1180, abs=0.02)
    assert rect(page, "spin")["width"] == pytest.approx(1180 * 50 / 70, abs=0.05)
    assert rect(page, "main")["parent"] and rect(page, "main")["width"] == pytest.approx(1180, abs=0.02)
    assert not rect(page, "io")["shown"] and not rect(page, "db")["shown"]
    assert rect(page, "work")["label"] == "work"

    page.fill("input.fg-input", "spin|quer")
    spin = page.evaluate(
        "() => [...document.querySelectorAll('g.fg-frame[data-name=spin] rect')]"
        ".map(r => r.getAttribute('fill'))"
    )
    assert spin == ["rgb(230,0,230)", "rgb(230,0,230)"]
    assert rect(page, "query")["fill"] == "rgb(230,0,230)"
    assert rect(page, "hash")["fill"] == before["hash"]["fill"]  # not a match
    # spin (50) + db's query (10; its spin child is nested, not counted twice) = 60%
    assert page.text_content(".fg-matched") == "Matched: 60.0%"

    page.click("button.fg-reset-button")
    for name in ("all", "app", "main", "work", "io", "db"):
        now = rect(page, name)
        assert now["shown"] and not now["parent"]
        assert now["x"] == pytest.approx(before[name]["x"], abs=0.01)
        assert now["width"] == pytest.approx(before[name]["width"], abs=0.01)
    page.fill("input.fg-input", "")
    assert rect(page, "spin")["fill"] == before["spin"]["fill"]
    assert page.text_content(".fg-matched") == ""


def test_standalone_svg_search_button_and_reset_zoom(page, tmp_path):
    path = bpfnb.flamegraph(DF, kind="offcpu").save(tmp_path / "fg.svg")
    page.goto(f"file://{path}")
    page.once("dialog", lambda dialog: dialog.accept("^(io|read)$"))
    page.click("text.fg-search")
    assert page.text_content(".fg-matched") == "Matched: 20.0%"
    page.click('g.fg-frame[data-name="db"] rect')
    assert rect(page, "db")["width"] == pytest.approx(1180, abs=0.02)
    assert page.evaluate("() => getComputedStyle(document.querySelector('.fg-reset')).opacity") == "1"
    page.click("text.fg-reset")
    assert rect(page, "db")["width"] == pytest.approx(1180 * 0.1, abs=0.02)
    page.hover('g.fg-frame[data-name="work"] rect')
    assert page.text_content(".fg-details") == "work (70 us, 70.00%)"


def test_two_notebook_outputs_on_one_page_stay_independent(page, tmp_path):
    a = bpfnb.flamegraph(DF)._repr_mimebundle_()["text/html"]
    b = bpfnb.flamegraph(DF, kind="offcpu")._repr_mimebundle_()["text/html"]
    path = tmp_path / "two.html"
    path.write_text(f"<!DOCTYPE html><html><body>{a}{b}</body></html>")
    page.goto(f"file://{path}")
    page.locator("input.fg-input").nth(1).fill("hash")
    matched = page.locator(".fg-matched")
    assert matched.nth(0).text_content() == "" and matched.nth(1).text_content() == "Matched: 20.0%"
    page.locator('g.fg-frame[data-name="io"] rect').nth(0).click()
    widths = page.evaluate(
        "() => [...document.querySelectorAll('g.fg-frame[data-name=io] rect')].map(r => +r.getAttribute('width'))"
    )
    assert widths[0] == pytest.approx(1180, abs=0.02) and widths[1] == pytest.approx(1180 * 0.2, abs=0.02)


def test_narrow_frame_gets_its_label_when_zoomed(page, tmp_path):
    df = pd.DataFrame({"stack": ["main;big", "main;tiny_function"], "value": [999, 1]})
    path = bpfnb.flamegraph(df, min_width=0).save(tmp_path / "narrow.html")
    page.goto(f"file://{path}")
    assert page.locator('g.fg-frame[data-name="tiny_function"] text').count() == 0  # too narrow
    page.click('g.fg-frame[data-name="tiny_function"] rect', force=True)
    assert rect(page, "tiny_function")["label"] == "tiny_function"
    assert rect(page, "tiny_function")["width"] == pytest.approx(1180, abs=0.02)


def test_details_line_shows_the_total_until_hover(page, tmp_path):
    path = bpfnb.flamegraph(DF).save(tmp_path / "total.svg")
    page.goto(f"file://{path}")
    assert page.text_content(".fg-details") == "100 samples in all"
    page.hover('g.fg-frame[data-name="io"] rect')
    assert page.text_content(".fg-details") == "io (20 samples, 20.00%)"
    page.mouse.move(1, 1)
    assert page.text_content(".fg-details") == "100 samples in all"


@pytest.mark.parametrize("attach_first", [True, False])
def test_notebook_style_insertion_runs_the_scripts(page, tmp_path, attach_first):
    """Like JupyterLab: innerHTML into an output node, scripts re-created, node attached."""
    fragment = bpfnb.flamegraph(DF)._repr_mimebundle_()["text/html"]
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    page.goto(f"file://{blank}")
    page.evaluate(
        """([html, attachFirst]) => {
            const host = document.createElement('div');
            if (attachFirst) document.body.appendChild(host);
            host.innerHTML = html;   // scripts inserted this way never run by themselves
            for (const old of [...host.querySelectorAll('script')]) {
                const s = document.createElement('script');
                s.textContent = old.textContent;
                old.replaceWith(s);
            }
            if (!attachFirst) document.body.appendChild(host);
        }""",
        [fragment, attach_first],
    )
    page.fill("input.fg-input", "^io$")
    assert page.text_content(".fg-matched") == "Matched: 20.0%"
    page.click('g.fg-frame[data-name="io"] rect')
    assert rect(page, "io")["width"] == pytest.approx(1180, abs=0.02)
