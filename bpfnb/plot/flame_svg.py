"""Render a FlameLayout as SVG: interactive (embedded script) or static.

    svg = render_svg(lay, title="On-CPU", unit="samples", palette="hot")

The interactive SVG carries bpfnb/plot/flame.js: click a frame to zoom it
to full width, "Reset Zoom", "Search" (a regular expression; matches turn
magenta and "Matched: X%" gives their share of the total) and, on hover,
the frame's name, count and percentage. The static SVG is the same picture
without script or controls, for places that strip scripts (GitHub, nbviewer).

Palettes colour a frame by a hash of its function name, so one function
keeps its colour across graphs: hot (on-CPU), io (off-CPU), wakeup, chain
(off-wake: blocked stack in io blues, the "--" separator grey, the waker
stack above it in aqua) and diff (red where the profile has more than its
baseline, blue where less). Written for bpfnb; no code from flamegraph.pl.
"""

from __future__ import annotations

import colorsys
import itertools
import zlib
from importlib import resources

import numpy as np

from .flamelayout import IMAGE_PAD, IMAGE_WIDTH, SEPARATOR, FlameLayout

PALETTES = ("hot", "io", "wakeup", "chain", "diff")
FRAME_HEIGHT = 16
FONT_SIZE = 12
FONT_WIDTH = 0.59  # average glyph width of the font, in font sizes
MATCH_COLOR = "rgb(230,0,230)"
_ids = itertools.count(1)

# hue range (degrees), saturation range, lightness range of each palette
_HSL = {
    "hot": ((0, 52), (0.80, 0.95), (0.50, 0.62)),
    "io": ((198, 232), (0.50, 0.72), (0.56, 0.72)),
    "wakeup": ((168, 190), (0.45, 0.65), (0.52, 0.68)),
}
_SEPARATOR_COLOR = "rgb(160,160,160)"
_ROOT_COLOR = "rgb(200,200,200)"


# -- colours -----------------------------------------------------------------
def name_color(name: str, palette: str = "hot") -> str:
    """The fixed colour of a function name in a hashed palette."""
    (h0, h1), (s0, s1), (l0, l1) = _HSL[palette]
    h = zlib.crc32(name.encode("utf-8", "surrogateescape"))
    v1, v2, v3 = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255, ((h >> 16) & 0xFF) / 255
    r, g, b = colorsys.hls_to_rgb((h0 + (h1 - h0) * v1) / 360, l0 + (l1 - l0) * v2, s0 + (s1 - s0) * v3)
    return f"rgb({round(r * 255)},{round(g * 255)},{round(b * 255)})"


def frame_colors(lay: FlameLayout, palette: str = "hot") -> list[str]:
    """Fill colour of every frame of the layout."""
    if palette not in PALETTES:
        raise ValueError(f"unknown palette {palette!r}; use one of {', '.join(PALETTES)}")
    if palette == "diff":
        return diff_colors(lay.delta())
    if palette == "chain":
        io = [name_color(n, "io") for n in lay.names]
        wake = [name_color(n, "wakeup") for n in lay.names]
        above = lay.above(SEPARATOR)
        sep = lay.names.index(SEPARATOR) if SEPARATOR in lay.names else -1
        return [
            _SEPARATOR_COLOR if i == sep else (wake[i] if up else io[i])
            for i, up in zip(lay.name.tolist(), above.tolist())
        ]
    by_name = [name_color(n, palette) for n in lay.names]
    return [by_name[i] for i in lay.name.tolist()]


def diff_colors(delta: np.ndarray) -> list[str]:
    """Red for more, blue for less, white for no change; saturation ~ |delta|."""
    delta = np.asarray(delta, dtype=np.float64)
    scale = np.abs(delta).max() if len(delta) else 0.0
    ratio = delta / scale if scale > 0 else np.zeros_like(delta)
    fade = np.round(255 * (1 - np.abs(ratio) * 0.85)).astype(int).tolist()
    return [
        f"rgb(255,{f},{f})" if r > 0 else (f"rgb({f},{f},255)" if r < 0 else "rgb(250,250,250)")
        for r, f in zip(ratio.tolist(), fade)
    ]


# -- text --------------------------------------------------------------------
_XML = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;"}
_XML.update({c: "?" for c in range(32) if c not in (9, 10, 13)})


def escape(text: str) -> str:
    """Text safe inside XML content and double-quoted attributes."""
    return text.translate(_XML)


def label(name: str, width_px: float, font_size: float = FONT_SIZE) -> str:
    """The part of name that fits in width_px ("" when under 3 characters fit)."""
    fit = int((width_px - 6) // (font_size * FONT_WIDTH))
    if fit < 3:
        return ""
    return name if len(name) <= fit else name[: fit - 2] + ".."


def format_count(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


# -- the picture ---------------------------------------------------------------
def render_svg(
    lay: FlameLayout,
    *,
    title: str = "Flame Graph",
    subtitle: str | None = None,
    unit: str = "samples",
    palette: str = "hot",
    inverted: bool = False,
    interactive: bool = True,
    script: bool = True,
    width: int = IMAGE_WIDTH,
    frame_height: int = FRAME_HEIGHT,
    font_size: float = FONT_SIZE,
    element_id: str | None = None,
    lean: bool = False,
) -> str:
    """The whole SVG document text for a layout, with an "all" root frame.

    lean (with interactive=False): the picture only, without tooltips or
    data attributes, about a third of the size: the static image of a
    notebook output, which viewers show as an <img> anyway.

    interactive adds the controls (Reset Zoom, Search, details line) and,
    when script is true, the script itself; script=False is for pages that
    load bpfnb/plot/flame.js next to the inline SVG (see FlameGraph.to_html).
    """
    pad = IMAGE_PAD
    full = width - 2 * pad
    total = lay.total if lay.total > 0 else 1.0
    scale = full / total
    rows = lay.max_depth + 1  # + the "all" frame
    top = 2 * font_size + (font_size + 8 if subtitle else 0) + 12
    bottom = 2 * font_size + 8
    height = int(top + rows * frame_height + bottom)
    sid = element_id or f"bpfnb-flame-{next(_ids)}"
    fw = font_size * FONT_WIDTH

    def y_of(depth: np.ndarray) -> np.ndarray:
        if inverted:
            return top + depth * frame_height
        return top + (rows - 1 - depth) * frame_height

    colors = frame_colors(lay, palette)
    xs = (pad + lay.x * scale).tolist()
    ws = (lay.width * scale).tolist()
    ys = y_of(lay.depth.astype(np.int64) + 1).tolist()
    counts = lay.width.tolist()
    names = [escape(n) for n in lay.names]
    h = frame_height - 1
    ty = frame_height * 0.5 + font_size * 0.35  # text baseline inside a frame

    out = [_header(sid, width, height, total, unit, pad, fw, font_size, interactive, ty)]
    summary = f"{format_count(lay.total)} {unit} in all"
    out.append(_chrome(title, subtitle, width, height, pad, font_size, interactive, summary))
    # the "all" frame: the whole profile
    all_y = float(y_of(np.array([0]))[0])
    all_rect = (
        f'<rect x="{pad}" y="{all_y:.1f}" width="{full:.2f}" height="{h}" fill="{_ROOT_COLOR}" rx="2"/>'
        f'<text x="{pad + 3}" y="{all_y + ty:.1f}">{escape(label("all", full, font_size))}</text>'
    )
    if lean:
        out.append(all_rect + "\n")
    else:
        out.append(
            f'<g class="fg-frame" data-name="all" data-depth="0" data-count="{lay.total:g}">'
            f"<title>all ({escape(format_count(lay.total))} {escape(unit)}, 100%)</title>"
            f"{all_rect}</g>\n"
        )
    append = out.append
    depths = (lay.depth + 1).tolist()
    fits = ((lay.width * scale - 6) // fw).astype(np.int64).tolist()  # characters that fit
    titles = _titles(lay, unit, total) if not lean else [""] * len(lay)
    raw_names = lay.names
    for i, x, w, y, c, col, d, fit, title in zip(
        lay.name.tolist(), xs, ws, ys, counts, colors, depths, fits, titles
    ):
        text = ""
        if fit >= 3:  # narrower frames get their label from the script once zoomed
            raw = raw_names[i]
            text = (
                f'<text x="{x + 3:.2f}" y="{y + ty:.1f}">'
                f"{escape(raw if len(raw) <= fit else raw[: fit - 2] + '..')}</text>"
            )
        if lean:
            append(f'<rect x="{x:.1f}" y="{y:.0f}" width="{w:.1f}" height="{h}" fill="{col}"/>{text}\n')
            continue
        append(
            f'<g class="fg-frame" data-name="{names[i]}" data-depth="{d}" data-count="{c:g}">'
            f"<title>{title}</title>"
            f'<rect x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" height="{h}" fill="{col}" rx="2"/>'
            f"{text}</g>\n"
        )
    if interactive and script:
        out.append(_script(sid))
    out.append("</svg>\n")
    return "".join(out)


def _titles(lay: FlameLayout, unit: str, total: float) -> list[str]:
    """Tooltip of every frame: name (count unit, share%[, +delta vs baseline])."""
    names = [escape(n) for n in lay.names]
    u = escape(unit)
    shares = (100 * lay.width / total).tolist()
    if np.issubdtype(lay.width.dtype, np.integer):
        counts = [f"{c:,}" for c in lay.width.tolist()]
    else:
        counts = [format_count(c) for c in lay.width.tolist()]
    tails = [")"] * len(lay)
    if lay.other is not None:
        tails = [
            f", {'+' if d >= 0 else '-'}{format_count(abs(round(d, 2)))} vs baseline)"
            for d in lay.delta().tolist()
        ]
    return [
        f"{names[i]} ({c} {u}, {p:.2f}%{t}"
        for i, c, p, t in zip(lay.name.tolist(), counts, shares, tails)
    ]


def _header(sid, width, height, total, unit, pad, fw, font_size, interactive, text_dy) -> str:
    style = (
        "text{font-family:Verdana,DejaVu Sans,sans-serif;font-size:%gpx;fill:#000}"
        " .fg-title{font-size:%gpx;text-anchor:middle}"
        " .fg-frame text{pointer-events:none}"
        " .fg-frame:hover rect{stroke:#000;stroke-width:0.5}"
        " .fg-parent{opacity:0.5}"
        " .fg-button{cursor:pointer}" % (font_size, font_size + 5)
    )
    if interactive:
        style += " .fg-frame{cursor:pointer}"
    return (
        f'<?xml version="1.0" standalone="no"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" id="{sid}" class="bpfnb-flame"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' data-total="{total:g}" data-unit="{escape(unit)}" data-pad="{pad}"'
        f' data-width="{width}" data-fontw="{fw:.3f}" data-textdy="{text_dy:.2f}">\n'
        f"<style>#{sid} {style.replace('} ', '} #' + sid + ' ')}</style>\n"
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f8f8f8"/>\n'
    )


def _chrome(title, subtitle, width, height, pad, font_size, interactive, summary) -> str:
    parts = [f'<text class="fg-title" x="{width / 2}" y="{font_size * 2}">{escape(title)}</text>\n']
    if subtitle:
        parts.append(
            f'<text x="{width / 2}" y="{font_size * 3 + 8}" text-anchor="middle"'
            f' fill="#555">{escape(subtitle)}</text>\n'
        )
    if interactive:
        y = font_size * 2
        parts.append(
            f'<text class="fg-button fg-reset" x="{pad}" y="{y}" style="opacity:0">Reset Zoom</text>\n'
            f'<text class="fg-button fg-search" x="{width - pad}" y="{y}"'
            f' text-anchor="end">Search</text>\n'
            f'<text class="fg-button fg-clear" x="{width - pad - 60}" y="{y}"'
            f' text-anchor="end" style="opacity:0">Clear</text>\n'
            f'<text class="fg-details" x="{pad}" y="{height - font_size}">{escape(summary)}</text>\n'
            f'<text class="fg-matched" x="{width - pad}" y="{height - font_size}"'
            f' text-anchor="end"></text>\n'
        )
    # the total and its unit; on hover the script shows the frame's details here
    parts.append(f'<text class="fg-details" x="{pad}" y="{height - font_size}">{escape(summary)}</text>\n')
    return "".join(parts)


def _script(sid: str) -> str:
    code = resources.files("bpfnb.plot").joinpath("flame.js").read_text(encoding="utf-8")
    code = code.replace("FLAME_ID", sid)
    return f'<script type="text/ecmascript"><![CDATA[\n{code}]]></script>\n'


__all__ = ["render_svg", "frame_colors", "name_color", "diff_colors", "label", "PALETTES"]
