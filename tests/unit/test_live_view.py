"""LiveView: fed with growing Traces (text and widget front ends), a Stop click
handled by a real kernel while the cell runs, and a real capture driving it."""

import io
import os
import queue
import threading
import time

import numpy as np
import pandas as pd
import pytest

from bpfnb.errors import BpfnbError
from bpfnb.frames.hist import from_slots, from_values
from bpfnb.frames.histtext import format_hist
from bpfnb.plot.live import LiveView
from bpfnb.trace import Trace


def hist_trace(counts: dict) -> Trace:
    frame = from_slots(pd.DataFrame({"slot": list(counts), "count": list(counts.values())}))
    return Trace(frames={"hist": {"dist": frame}})


GROWING = [{3: 1}, {3: 4, 5: 1}, {3: 9, 5: 2, 8: 1}, {3: 12, 5: 7, 8: 1}, {3: 20, 5: 9, 8: 4}]


def test_text_updates_print_bcc_histograms_at_most_once_per_interval():
    out = io.StringIO()
    view = LiveView(kind="hist", title="reads", label="bytes", interval=1.0, out=out)
    assert view.mode == "text"  # no kernel here
    seen = []
    view.on_update.append(lambda trace, elapsed: seen.append((elapsed, int(trace.hist()["count"].sum()))))
    for i, counts in enumerate(GROWING):
        view.update(hist_trace(counts), i * 0.5)
    assert seen == [(0.0, 1), (0.5, 5), (1.0, 12), (1.5, 20), (2.0, 33)]
    printed = out.getvalue()
    assert printed.count("reads | ") == 3  # at 0, 1 and 2 s
    assert "reads | 2.0 s elapsed | 33 events" in printed
    assert printed.endswith(format_hist(hist_trace(GROWING[-1]).hist(), "bytes"))
    view.close()
    assert out.getvalue() == printed  # the last state was already printed


def test_close_prints_a_throttled_last_state():
    out = io.StringIO()
    view = LiveView(kind="hist", interval=1.0, out=out)
    view.update(hist_trace(GROWING[0]), 0.0)
    view.update(hist_trace(GROWING[1]), 0.4)
    assert out.getvalue().count("elapsed") == 1
    view.close()
    assert out.getvalue().count("elapsed") == 2 and "0.4 s elapsed | 5 events" in out.getvalue()
    view.update(hist_trace(GROWING[2]), 5.0)  # ignored after close
    assert view.updates == 2


def test_hist_view_totals_interval_snapshots():
    df = pd.DataFrame({"time": [1.0, 1.0, 2.0], "lat": [3, 40, 3]})
    trace = Trace(frames={"hist": {"dist": from_values(df, value="lat", by="time")}})
    view = LiveView(kind="hist", out=io.StringIO())
    view.update(trace, 2.0)
    assert view.last_rendered[["low", "high", "count"]].values.tolist() == [[2, 3, 2], [32, 63, 1]]


def test_heatmap_view_from_interval_snapshots_and_from_cumulative_hists():
    out = io.StringIO()
    view = LiveView(kind="heatmap", out=out, interval=0)
    for i, counts in enumerate(GROWING, start=1):
        view.update(hist_trace(counts), float(i))
    hm = view.last_rendered
    # each column holds that interval's increase of the cumulative histogram
    assert hm.counts.sum(axis=0).tolist() == [1, 4, 7, 8, 13]
    assert hm.counts.tolist() == [[1, 3, 5, 3, 8],   # slot 3: 4 -> 7
                                  [0, 0, 0, 0, 0],
                                  [0, 1, 1, 5, 2],   # slot 5
                                  [0, 0, 0, 0, 0],
                                  [0, 0, 0, 0, 0],
                                  [0, 0, 1, 0, 3]]   # slot 8: 128 -> 255, top row
    assert out.getvalue().count("elapsed") == 5

    df = pd.DataFrame({"time": [1.0, 2.0, 2.0], "lat": [3, 40, 3]})
    snap = Trace(frames={"hist": {"dist": from_values(df, value="lat", by="time")}})
    view2 = LiveView(kind="heatmap", out=io.StringIO())
    view2.update(snap, 2.0)
    assert view2.last_rendered.counts.sum(axis=0).tolist() == [1, 2]


def test_heatmap_view_from_events():
    rng = np.random.default_rng(0)
    events = pd.DataFrame({"ts": np.arange(1000) * 3_000_000, "pid": 7,
                           "lat_us": rng.integers(1, 500, 1000)})
    view = LiveView(kind="heatmap", out=io.StringIO(), heatmap_options={"step": 1})
    view.update(Trace(frames={"events": {"events": events}}), 3.0)
    assert view.last_rendered.bins.total == 1000 and view.last_rendered.bins.n_cols == 3


def test_nothing_yet_is_a_message_not_an_error():
    out = io.StringIO()
    view = LiveView(kind="heatmap", out=out)
    view.update(Trace(), 1.0)
    assert "no events and no histogram" in out.getvalue()
    events = pd.DataFrame({"ts": [1, 2, 3], "lat_us": [5, 6, 7]})
    LiveView(kind="hist", out=out).update(Trace(frames={"events": {"e": events}}), 1.0)
    assert "3 events so far" in out.getvalue()
    with pytest.raises(BpfnbError, match="'hist' or 'heatmap'"):
        LiveView(kind="flame")


def test_widget_front_end_updates_in_place_and_stop_button():
    view = LiveView(kind="hist", title="reads", mode="widget")
    ui = view._ui
    view.update(hist_trace(GROWING[1]), 1.0)
    assert "0 -&gt; 1" in ui.body.value and "1.0 s elapsed" in ui.header.value
    view.update(hist_trace(GROWING[2]), 2.0)
    assert "12 events" in ui.header.value
    assert not view.stop_requested
    ui.button.click()
    assert view.stop_requested
    view.close()
    assert ui.button.disabled and ui.button.description == "Stopped"

    hv = LiveView(kind="heatmap", mode="widget")
    hv.update(hist_trace(GROWING[0]), 1.0)
    hv.update(hist_trace(GROWING[1]), 2.0)
    assert hv._ui.body.svg.startswith("<svg") and hv._ui.body.svg.count('class="cell"') == 3
    hv.close()


STOP_CELL = '''
import time
from bpfnb.plot.live import LiveView
from bpfnb.trace import Trace
from bpfnb.frames.hist import from_values
v = LiveView(kind="hist", title="t")
print("ready", v.mode, v._ui._unroute is not None, flush=True)
t0 = time.time()
n = 0
while not v.stop_requested and time.time() - t0 < 20:
    n += 1
    v.update(Trace(frames={"hist": {"d": from_values(list(range(n)))}}), time.time() - t0)
    time.sleep(0.1)
v.close()
print("stopped", v.stop_requested, round(time.time() - t0, 1))
'''


def test_stop_click_reaches_a_busy_kernel():
    """The Stop button's click is handled while the capture's cell still runs."""
    manager = pytest.importorskip("jupyter_client.manager")
    km, kc = manager.start_new_kernel(kernel_name="python3")
    try:
        msg_id = kc.execute(STOP_CELL)
        button, out, clicked = None, [], False
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                msg = None
            if msg:
                kind, content = msg["msg_type"], msg["content"]
                if kind == "comm_open" and content["data"].get("state", {}).get(
                        "_model_name") == "ButtonModel":
                    button = content["comm_id"]
                elif kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    out.append("\n".join(content["traceback"]))
                elif (kind == "status" and content["execution_state"] == "idle"
                      and msg["parent_header"].get("msg_id") == msg_id):
                    break
            if button and not clicked and "ready" in "".join(out):
                time.sleep(0.5)
                click = {"comm_id": button,
                         "data": {"method": "custom", "content": {"event": "click"}}}
                kc.shell_channel.send(kc.session.msg("comm_msg", click))
                clicked = True
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    text = "".join(out)
    assert "ready widget True" in text, text
    elapsed = float(text.split("stopped True ")[1].split()[0])
    assert elapsed < 10, text


# -- a real capture drives the view ------------------------------------------------------
PROGRAM = r"""
BPF_HISTOGRAM(dist);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
    dist.increment(bpf_log2l(7));
    return 0;
}
"""


def test_live_view_in_a_real_capture():
    if os.geteuid() != 0:
        pytest.skip("needs root to load BPF programs")
    try:
        import bcc  # noqa: F401
        from bpfnb.capture import capture
    except ImportError as err:
        pytest.skip(f"capture not available here: {err}")
    stop = threading.Event()

    def workload():
        while not stop.is_set():
            for _ in range(200):
                os.getppid()
            time.sleep(0.05)

    view = LiveView(kind="hist", title="getppid", out=io.StringIO())
    totals = []
    view.on_update.append(lambda trace, elapsed: totals.append(int(trace.hist("dist")["count"].sum())))
    worker = threading.Thread(target=workload, daemon=True)
    worker.start()
    try:
        trace = capture(PROGRAM, duration=2.5, defines={"TARGET": os.getpid()}, live=True,
                        interval=0.5, view=view)
    finally:
        stop.set()
        worker.join()
    assert len(totals) >= 3
    assert totals == sorted(totals) and totals[-1] > totals[0] > 0
    assert totals[-1] == int(trace.hist("dist")["count"].sum())
    assert view.closed
