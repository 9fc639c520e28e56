"""A live view of a running capture: histogram or heat map, elapsed time, Stop.

The capture loop owns the timing; it calls

    view = LiveView(kind="hist" | "heatmap", title="...")
    view.update(trace_snapshot, elapsed_s)     # every interval
    view.stop_requested                        # polled: True once Stop was clicked
    view.close()                               # when the capture ends

In a Jupyter kernel with ipywidgets this shows a widget box that updates in
place (the heat map is an anywidget with hover); on close it is replaced by a
static picture of the last state, so a saved notebook shows the result where
widgets do not render. Elsewhere (a terminal, a script) it prints text (bcc's
histogram or a character heat map) at most once per `interval` seconds.

`on_update` is a list of callables(trace, elapsed_s), called after every
update, for whoever wants to observe the view (tests, logging).
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

import pandas as pd

from ..errors import BpfnbError
from ..frames.hist import diff, key_columns

KINDS = ("hist", "heatmap")


class LiveView:
    """Histogram or heat map that follows a capture; see the module docstring."""

    def __init__(
        self,
        kind: str = "hist",
        title: str = "bpfnb capture",
        *,
        name: str | None = None,
        label: str | None = None,
        time: str = "ts",
        value: str | None = None,
        interval: float = 1.0,
        mode: str = "auto",
        out=None,
        heatmap_options: dict | None = None,
    ):
        """kind: "hist" or "heatmap". name: which histogram/events output to show
        (default: the only or first one). label: the value's name (bcc's
        val_type). time/value: event columns for a per-event heat map.
        interval: minimum seconds between text updates. mode: "auto",
        "widget" or "text". out: text stream (default sys.stdout).
        """
        if kind not in KINDS:
            raise BpfnbError(f"a live view is 'hist' or 'heatmap', not {kind!r}")
        if mode not in ("auto", "widget", "text"):
            raise BpfnbError(f"mode must be 'auto', 'widget' or 'text', not {mode!r}")
        self.kind, self.title, self.name = kind, title, name
        self.label, self.time, self.value = label, time, value
        self.interval = float(interval)
        self.heatmap_options = dict(heatmap_options or {})
        self.on_update: list[Callable] = []
        self.updates = 0
        self.closed = False
        self.last_rendered = None  # the HeatMap or histogram frame last shown
        self._stop = threading.Event()
        self._out = out
        self._last_print: float | None = None
        self._pending_text: str | None = None
        self._previous_cumulative: pd.DataFrame | None = None
        self._series: list[pd.DataFrame] = []
        self.mode = ("widget" if _in_kernel() else "text") if mode == "auto" else mode
        self._ui = _WidgetUI(self) if self.mode == "widget" else None

    # -- the capture loop's side ---------------------------------------------------
    @property
    def stop_requested(self) -> bool:
        """True once the Stop button was clicked (or request_stop() called)."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def update(self, trace, elapsed_s: float) -> None:
        """Show this snapshot (a Trace) taken `elapsed_s` seconds into the capture."""
        if self.closed:
            return
        self.updates += 1
        shown = self._render(trace, elapsed_s)
        if self._ui is not None:
            self._ui.show(shown, elapsed_s)
        else:
            self._print_throttled(shown, elapsed_s)
        for callback in list(self.on_update):
            callback(trace, elapsed_s)

    def close(self) -> None:
        """The capture ended: freeze the view (a static picture in notebooks)."""
        if self.closed:
            return
        self.closed = True
        if self._ui is not None:
            self._ui.close()
        elif self._pending_text is not None:  # the last state was throttled: show it
            self._write(self._pending_text)
            self._pending_text = None

    # -- rendering -------------------------------------------------------------------
    def _render(self, trace, elapsed_s: float) -> "_Shown":
        try:
            if self.kind == "hist":
                frame = self._hist_now(trace)
                self.last_rendered = frame
                return _Shown.of_hist(frame, self._label(frame), self.title, elapsed_s)
            hm = self._heatmap_now(trace, elapsed_s)
            self.last_rendered = hm
            return _Shown.of_heatmap(hm, self.title, elapsed_s)
        except BpfnbError as err:  # e.g. nothing captured yet: say so, keep capturing
            return _Shown.message(f"{err}", self.title, elapsed_s)

    def _label(self, frame) -> str:
        return self.label or (frame.attrs.get("label") if frame is not None else None) or "value"

    def _hist_frame(self, trace) -> pd.DataFrame | None:
        names = trace.names("hist")
        if self.name is not None:
            return trace.hist(self.name) if self.name in names else None
        return trace.hist(names[0]) if names else None

    def _hist_now(self, trace) -> pd.DataFrame:
        frame = self._hist_frame(trace)
        if frame is None:
            rows = sum(len(trace.events(n)) for n in trace.names("events"))
            if rows:
                raise BpfnbError(f"{rows:,} events so far; this capture has no histogram to draw "
                                 "(LiveView(kind='heatmap', value=...) draws events)")
            raise BpfnbError("no histogram in this capture yet")
        if "time" in frame.columns:  # interval snapshots: the total so far
            keys = [k for k in key_columns(frame) if k != "time"]
            total = frame.groupby(keys + ["low", "high"], sort=True, dropna=False)["count"].sum()
            total = total.reset_index()
            total.attrs.update(frame.attrs)
            return total[total["count"] != 0].reset_index(drop=True)
        return frame

    def _heatmap_now(self, trace, elapsed_s: float):
        from .heatmap import heatmap

        frame = self._hist_frame(trace)
        opts = dict(self.heatmap_options)
        opts.setdefault("title", self.title)
        if frame is not None and "time" in frame.columns:
            return heatmap(frame, **opts)
        if frame is not None:  # a cumulative histogram: this interval is the difference
            interval = frame if self._previous_cumulative is None else diff(
                frame, self._previous_cumulative)
            self._previous_cumulative = frame
            interval = interval[interval["count"] > 0]
            if len(interval):
                self._series.append(interval.assign(time=float(elapsed_s)))
            if not self._series:
                raise BpfnbError("no histogram counts yet")
            series = pd.concat(self._series, ignore_index=True)
            series.attrs.update(frame.attrs)
            return heatmap(series, **opts)
        names = trace.names("events")
        if not names:
            raise BpfnbError("no events and no histogram in this capture yet")
        events = trace.events(self.name if self.name in names else names[0])
        if len(events) == 0:
            raise BpfnbError("no events yet")
        value = self.value or _guess_value_column(events, self.time)
        return heatmap(events, time=self.time, value=value, **opts)

    # -- text mode ----------------------------------------------------------------------
    def _print_throttled(self, shown: "_Shown", elapsed_s: float) -> None:
        text = shown.text
        due = self._last_print is None or elapsed_s - self._last_print >= self.interval * 0.999
        if due:
            self._write(text)
            self._last_print = elapsed_s
            self._pending_text = None
        else:
            self._pending_text = text

    def _write(self, text: str) -> None:
        out = self._out or sys.stdout
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()


def _guess_value_column(events: pd.DataFrame, time: str) -> str:
    numeric = [c for c in events.columns
               if c != time and pd.api.types.is_numeric_dtype(events[c])]
    for c in numeric:
        if str(c).lower().startswith(("lat", "delta", "dur")):
            return c
    if len(numeric) == 1:
        return numeric[0]
    raise BpfnbError(f"which column is the latency? pass LiveView(..., value=...), one of {numeric}")


class _Shown:
    """What one update shows, in the forms the front ends need."""

    def __init__(self, text: str, html: str, header: str, obj=None):
        self.text, self.html, self.header, self.obj = text, html, header, obj

    @staticmethod
    def _header(title: str, elapsed_s: float, detail: str) -> str:
        return f"{title} | {elapsed_s:.1f} s elapsed" + (f" | {detail}" if detail else "")

    @classmethod
    def of_hist(cls, frame: pd.DataFrame, label: str, title: str, elapsed_s: float):
        from ..frames.histtext import format_hist, hist_html

        total = int(frame["count"].sum())
        header = cls._header(title, elapsed_s, f"{total:,} events")
        body = format_hist(frame, label) or "(no counts yet)\n"
        return cls(f"{header}\n{body}", hist_html(frame, label), header, frame)

    @classmethod
    def of_heatmap(cls, hm, title: str, elapsed_s: float):
        header = cls._header(title, elapsed_s, f"{hm.bins.total:,} events")
        return cls(f"{header}\n{hm.text()}", hm.to_svg(), header, hm)

    @classmethod
    def message(cls, text: str, title: str, elapsed_s: float):
        import html

        header = cls._header(title, elapsed_s, "")
        return cls(f"{header}\n({text})", f"<i>{html.escape(text)}</i>", header)


class _Static:
    """A finished view as a display object: its static picture plus text."""

    def __init__(self, shown: _Shown, note: str):
        self.shown, self.note = shown, note

    def _repr_mimebundle_(self, include=None, exclude=None):
        import html

        obj = self.shown.obj
        head = f"<div style='font-weight:bold'>{html.escape(self.note)}</div>"
        if obj is not None and hasattr(obj, "_repr_mimebundle_"):
            bundle = dict(obj._repr_mimebundle_())
            bundle["text/html"] = head + bundle["text/html"]
            bundle["text/plain"] = self.note + "\n" + bundle["text/plain"]
            return bundle
        return {"text/plain": self.note + "\n" + self.shown.text.split("\n", 1)[-1],
                "text/html": head + self.shown.html}


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _WidgetUI:
    """ipywidgets box: header (title, elapsed), Stop button, histogram or heat map."""

    def __init__(self, view: LiveView):
        import ipywidgets as widgets

        self.view = view
        self.header = widgets.HTML(value=f"<b>{_esc(view.title)}</b> | starting")
        self.button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                     tooltip="stop the capture (it detaches and returns)")
        self.button.on_click(lambda _button: view.request_stop())
        if view.kind == "heatmap":
            from .heatmap import heatmap_widget_class

            self.body = heatmap_widget_class()()
        else:
            self.body = widgets.HTML(value="<i>waiting for the first interval</i>")
        self.box = widgets.VBox([widgets.HBox([self.header, self.button]), self.body])
        self.last: _Shown | None = None
        self.handle = _display(self.box)
        # let the kernel handle the button while the capture's cell is running
        self._unroute = _route_comm_to_subshell(self.button)

    def show(self, shown: _Shown, elapsed_s: float) -> None:
        self.last = shown
        self.header.value = _esc(shown.header).replace(_esc(self.view.title),
                                                       f"<b>{_esc(self.view.title)}</b>", 1)
        if self.view.kind == "heatmap":
            self.body.svg = shown.html if shown.obj is not None else (
                f"<div>{shown.html}</div>")
        else:
            self.body.value = shown.html

    def close(self) -> None:
        if self._unroute is not None:
            self._unroute()
        self.button.disabled = True
        self.button.description = "Stopped" if self.view.stop_requested else "Done"
        if self.handle is not None and self.last is not None:
            # replace the widget by a static picture: it survives saving the notebook
            self.handle.update(_Static(self.last, self.last.header))
        self.box.close()


def _esc(text: str) -> str:
    import html

    return html.escape(str(text))


def _display(box):
    try:
        from IPython.display import display
    except ImportError:
        return None
    return display(box, display_id=True)


def _route_comm_to_subshell(widget) -> Callable | None:
    """Have a kernel subshell thread handle this widget's messages.

    While a cell runs, the kernel's main thread is busy with it and handles
    no widget messages, so a Stop click would only arrive after the capture.
    ipykernel >= 7 runs subshells in their own threads and routes a comm's
    messages to the subshell named by the comm's `_reply_subshell_id`; here
    a subshell is created for the Stop button. Returns a cleanup function,
    or None where the kernel cannot do this (then Stop acts when the cell
    ends, and the notebook's interrupt button still stops the capture).
    """
    try:
        from ipykernel.kernelbase import Kernel

        if not Kernel.initialized():
            return None
        kernel = Kernel.instance()
        if not getattr(kernel, "_supports_kernel_subshells", False):
            return None
        manager = kernel.shell_channel_thread.manager
        loop = manager._shell_channel_io_loop
        comm = getattr(widget, "comm", None)
        if comm is None or not hasattr(comm, "_reply_subshell_for"):
            return None
    except Exception:
        return None
    created = threading.Event()
    box: dict = {}

    def create():
        try:
            box["id"] = manager._create_subshell()
        except Exception as err:  # pragma: no cover - kernel internals changed
            box["error"] = err
        finally:
            created.set()

    loop.add_callback(create)
    if not created.wait(5) or "id" not in box:
        return None
    subshell_id = box["id"]
    comm._reply_subshell_id = subshell_id

    def cleanup():
        comm._reply_subshell_id = None

        def delete():
            try:
                manager._delete_subshell(subshell_id)
            except Exception:  # pragma: no cover
                pass

        loop.add_callback(delete)

    return cleanup
