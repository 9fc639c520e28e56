// bpfnb heat map view: an SVG whose cells carry their hover text in <title>.
// attachHover turns those titles into a styled tooltip (time range, value
// range, count, column %) and outlines the cell under the pointer. The same
// function is inlined into the HTML output of HeatMap (see heatmap.py), and
// used by the anywidget below for live views.

function attachHover(root) {
  const svg = root.querySelector("svg");
  if (!svg || svg.dataset.bpfnbHover) return;
  svg.dataset.bpfnbHover = "1";
  root.style.position = "relative";
  let tip = root.querySelector(".bpfnb-tip");
  if (!tip) {
    tip = document.createElement("div");
    tip.className = "bpfnb-tip";
    tip.style.cssText =
      "position:absolute;display:none;pointer-events:none;background:rgba(255,255,240,0.95);" +
      "border:1px solid #888;padding:3px 6px;font:12px sans-serif;white-space:pre;z-index:10";
    root.appendChild(tip);
  }
  let current = null;
  const hide = () => {
    tip.style.display = "none";
    if (current) current.removeAttribute("stroke");
    current = null;
  };
  svg.addEventListener("mousemove", (ev) => {
    const cell = ev.target.closest ? ev.target.closest("rect.cell") : null;
    if (!cell) return hide();
    if (cell.dataset.tip === undefined) {
      const title = cell.querySelector("title");
      cell.dataset.tip = title ? title.textContent : "";
      if (title) title.remove(); // no second, native tooltip
    }
    if (current !== cell) {
      if (current) current.removeAttribute("stroke");
      cell.setAttribute("stroke", "#000");
      current = cell;
    }
    tip.textContent = cell.dataset.tip;
    const box = root.getBoundingClientRect();
    let x = ev.clientX - box.left + 12;
    const y = ev.clientY - box.top + 12;
    tip.style.display = "block";
    if (x + tip.offsetWidth > box.width) x = ev.clientX - box.left - tip.offsetWidth - 8;
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  });
  svg.addEventListener("mouseleave", hide);
}

// --- anywidget (everything below is not inlined into HTML outputs) ---
function render({ model, el }) {
  const draw = () => {
    el.innerHTML = model.get("svg");
    attachHover(el);
  };
  model.on("change:svg", draw);
  draw();
}

export default { render };
