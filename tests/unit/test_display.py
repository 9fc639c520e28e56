"""The Trace summary: outputs, lost events as warnings, spills, first rows, histograms."""

import pandas as pd

from bpfnb.display import trace_html, trace_text
from bpfnb.frames.hist import from_slots
from bpfnb.trace import Trace


def sample_trace(**meta):
    hist = from_slots(pd.DataFrame({"slot": [11, 13], "count": [5, 2]}), "log2")
    events = pd.DataFrame({"pid": [1, 2], "comm": ["a", "b"]})
    return Trace({"hist": {"lat": hist}, "events": {"ev": events}}, lost={"ev": 3},
                 meta={"start_wall": 10.0, "end_wall": 12.5, "stopped_by": "duration", **meta})


def test_text_summary_lists_outputs_lost_and_histogram():
    text = trace_text(sample_trace())
    assert "2.5 s, ended by duration" in text
    assert "events  ev" in text and "3 LOST" in text
    assert "WARNING: 3 events lost from 'ev'" in text
    assert "1024 -> 2047" in text and "4096 -> 8191" in text


def test_html_summary_escapes_and_warns():
    html = trace_html(sample_trace())
    assert "&#9888;" in html and "t.hist(&#x27;lat&#x27;)" in html
    assert "<pre>" in html


def test_spill_and_event_limit_are_said():
    spill = {"folder": "/data/run", "memory_limit": 1000,
             "outputs": {"ev": {"rows": 123456, "parts": [], "columns": []}}}
    text = trace_text(sample_trace(spill=spill, stopped_by="event limit", over_limit={"ev": 9}))
    assert "123,456 rows spilled to Parquet under /data/run" in text
    assert "9 events from 'ev' arrived after the event limit" in text
    assert "stopped early" in text


def test_many_unknown_frames_are_explained_per_process():
    stacks = pd.DataFrame({
        "comm": ["python3", "python3", "spin", "spin"],
        "stack": ["[unknown];[unknown];do_syscall_64", "_start;main;[unknown]", "main;spin", "main;spin;work"],
        "value": [50, 10, 30, 10],
    })
    text = trace_text(Trace({"stacks": {"counts": stacks}}))
    assert "stacks 'counts': 60% of the samples have [unknown] frames (python3 60%)" in text
    assert "-fno-omit-frame-pointer" in text


def test_a_few_unknown_frames_are_not_worth_a_warning():
    stacks = pd.DataFrame({"comm": ["a", "a", "a"], "stack": ["main;[unknown]", "main;f", "g"], "value": [1, 90, 9]})
    assert "WARNING" not in trace_text(Trace({"stacks": {"counts": stacks}}))


def test_stacks_that_stop_at_their_leaf_are_explained():
    stacks = pd.DataFrame({"comm": ["python", "python", "python"],
                           "stack": ["_PyObject_Malloc", "builtin_sum", "main;f"], "value": [40, 20, 40]})
    text = trace_text(Trace({"stacks": {"counts": stacks}}))
    assert "60% of the samples stop after one frame (python 60%)" in text
