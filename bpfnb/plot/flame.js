// bpfnb flame graph interaction: click to zoom, reset, regex search.
// Written for bpfnb (not derived from flamegraph.pl). Runs inside a
// standalone SVG document or an SVG inlined in HTML; everything is scoped
// to the svg element whose id is FLAME_ID, so several graphs can share a
// page. The API is exposed as svgElement.flame = {zoom, reset, search, clear}.
(function () {
  "use strict";
  var svg = document.getElementById("FLAME_ID");
  if (!svg && document.currentScript && document.currentScript.parentNode) {
    // a notebook may run the script before its output is attached to the page
    svg = document.currentScript.parentNode.querySelector("svg.bpfnb-flame");
  }
  if (!svg || svg.flame) return;
  var num = function (k, d) { var v = parseFloat(svg.getAttribute("data-" + k)); return isNaN(v) ? d : v; };
  var pad = num("pad", 10), fontW = num("fontw", 7.08), total = num("total", 1);
  var textDy = num("textdy", 11.7);
  var width = num("width", 1200), left = pad, full = width - 2 * pad;
  var q = function (sel) { return svg.querySelector(sel); };
  var details = q(".fg-details"), matched = q(".fg-matched"), resetBtn = q(".fg-reset");
  var searchBtn = q(".fg-search"), clearBtn = q(".fg-clear");
  var summary = details ? details.textContent : "";
  var frames = [];
  var groups = svg.querySelectorAll("g.fg-frame");
  for (var i = 0; i < groups.length; i++) {
    var g = groups[i], r = g.querySelector("rect"), t = g.querySelector("text");
    frames.push({
      g: g, rect: r, text: t, title: g.querySelector("title"),
      name: g.getAttribute("data-name"),
      x: parseFloat(r.getAttribute("x")), w: parseFloat(r.getAttribute("width")),
      depth: parseInt(g.getAttribute("data-depth"), 10),
      count: parseFloat(g.getAttribute("data-count")),
      fill: r.getAttribute("fill")
    });
    g.setAttribute("data-index", i);
  }
  var zoomed = null, searchRe = null;

  function label(name, w) {
    var fit = Math.floor((w - 6) / fontW);
    if (fit < 3) return "";
    return name.length <= fit ? name : name.slice(0, fit - 2) + "..";
  }
  function place(f, x, w) {
    f.rect.setAttribute("x", x.toFixed(2));
    f.rect.setAttribute("width", Math.max(w, 0).toFixed(2));
    var text = label(f.name, w);
    if (!f.text && text) {  // narrow frames are drawn without a label element
      f.text = document.createElementNS("http://www.w3.org/2000/svg", "text");
      f.text.setAttribute("y", (parseFloat(f.rect.getAttribute("y")) + textDy).toFixed(1));
      f.g.appendChild(f.text);
    }
    if (f.text) {
      f.text.setAttribute("x", (x + 3).toFixed(2));
      f.text.textContent = text;
    }
  }
  function zoom(f) {
    if (typeof f === "number") f = frames[f];
    if (!f) return;
    zoomed = f;
    var scale = full / f.w, x0 = f.x, x1 = f.x + f.w, eps = 1e-6;
    for (var i = 0; i < frames.length; i++) {
      var o = frames[i], inside = o.x >= x0 - eps && o.x + o.w <= x1 + eps;
      if (o.depth >= f.depth && inside) {
        o.g.style.display = "";
        o.g.classList.remove("fg-parent");
        place(o, left + (o.x - x0) * scale, o.w * scale);
      } else if (o.depth < f.depth && o.x <= x0 + eps && o.x + o.w >= x1 - eps) {
        o.g.style.display = "";            // an ancestor: full width, faded
        o.g.classList.add("fg-parent");
        place(o, left, full);
      } else {
        o.g.style.display = "none";
      }
    }
    if (resetBtn) resetBtn.style.opacity = "1";
    if (searchRe) search(searchRe);
  }
  function reset() {
    zoomed = null;
    for (var i = 0; i < frames.length; i++) {
      var o = frames[i];
      o.g.style.display = "";
      o.g.classList.remove("fg-parent");
      place(o, o.x, o.w);
    }
    if (resetBtn) resetBtn.style.opacity = "0";
    if (searchRe) search(searchRe);
  }
  function search(term) {
    var re = term;
    if (!(re instanceof RegExp)) {
      if (term === null || term === undefined || term === "") { clear(); return null; }
      try { re = new RegExp(term); } catch (e) { if (matched) matched.textContent = "bad regex"; return null; }
    }
    searchRe = re;
    var spans = [];
    for (var i = 0; i < frames.length; i++) {
      var o = frames[i];
      if (re.test(o.name)) {
        o.rect.setAttribute("fill", "rgb(230,0,230)");
        o.g.classList.add("fg-match");
        spans.push([o.x, o.x + o.w]);
      } else {
        o.rect.setAttribute("fill", o.fill);
        o.g.classList.remove("fg-match");
      }
    }
    // nested matches (a recursive function) must not be counted twice
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var covered = 0, end = -Infinity;
    for (var j = 0; j < spans.length; j++) {
      var s = Math.max(spans[j][0], end), e = spans[j][1];
      if (e > s) covered += e - s;
      end = Math.max(end, e);
    }
    var value = covered / full * total, percent = 100 * covered / full;
    if (matched) matched.textContent = spans.length ? "Matched: " + percent.toFixed(1) + "%" : "Matched: 0%";
    if (clearBtn) clearBtn.style.opacity = "1";
    svg.setAttribute("data-matched", percent.toFixed(4));
    return { frames: spans.length, value: value, percent: percent };
  }
  function clear() {
    searchRe = null;
    for (var i = 0; i < frames.length; i++) {
      frames[i].rect.setAttribute("fill", frames[i].fill);
      frames[i].g.classList.remove("fg-match");
    }
    if (matched) matched.textContent = "";
    if (clearBtn) clearBtn.style.opacity = "0";
    svg.removeAttribute("data-matched");
  }
  function frameOf(ev) {
    var g = ev.target.closest ? ev.target.closest("g.fg-frame") : null;
    return g ? frames[parseInt(g.getAttribute("data-index"), 10)] : null;
  }
  svg.addEventListener("click", function (ev) {
    var f = frameOf(ev);
    if (f) { zoom(f); ev.stopPropagation(); }
  });
  svg.addEventListener("mouseover", function (ev) {
    var f = frameOf(ev);
    if (f && details) details.textContent = f.title ? f.title.textContent : f.name;
  });
  svg.addEventListener("mouseout", function (ev) {
    if (frameOf(ev) && details) details.textContent = summary;
  });
  if (resetBtn) resetBtn.addEventListener("click", reset);
  if (clearBtn) clearBtn.addEventListener("click", clear);
  if (searchBtn) searchBtn.addEventListener("click", function () {
    var term = window.prompt("Search frames (regular expression):", searchRe ? searchRe.source : "");
    if (term !== null) search(term);
  });
  svg.flame = { zoom: zoom, reset: reset, search: search, clear: clear, frames: frames,
                zoomed: function () { return zoomed; } };
})();
