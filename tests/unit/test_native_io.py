"""Saved traces (bpfnb.io.native): exact round trips, no pickle, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import bpfnb
from bpfnb.errors import BpfnbError, TraceFileError
from bpfnb.frames.hist import from_slots
from bpfnb.io.native import FORMAT, SCHEMA_VERSION, load, save_trace
from bpfnb.trace import Trace

REPO = Path(__file__).resolve().parents[2]


def events_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": np.array([10, 2**63 + 5], dtype=np.uint64),
            "pid": np.array([1, 4_000_000], dtype=np.uint32),
            "ret": np.array([-1, 7], dtype=np.int64),
            "flags": np.array([-3, 4], dtype=np.int8),
            "comm": pd.Series(["bash", None], dtype=object),
            "comm_str": pd.Series(["a", "b"], dtype="str"),
            "state": pd.Categorical(["R", "S"], categories=["S", "R", "D"], ordered=True),
            "time": pd.to_datetime([1_700_000_000_123_456_789, 1_700_000_001_000_000_000]).astype(
                "datetime64[ns]"
            ),
            "args": pd.Series([[1, 2, 3], []], dtype=object),
            "raw": pd.Series([b"\x00\xffab", b""], dtype=object),
            "lat_us": [1.5, np.nan],
            "ok": [True, False],
        }
    )


def keyed_hist() -> pd.DataFrame:
    slots = pd.DataFrame(
        {
            "disk": ["sda", "sda", "nvme0n1"],
            "slot": [1, 13, 5],
            "count": [4, 9, 2],
        }
    )
    return from_slots(slots, "log2", keys=["disk"])


def percpu_map() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": np.array([1, 1, 2], dtype=np.uint32),
            "cpu": np.array([0, 1, 0], dtype=np.uint16),
            "count": np.array([5, 6, 2**64 - 1], dtype=np.uint64),
        }
    )


def stacks_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": np.array([7, 7], dtype=np.uint32),
            "comm": pd.Series(["cc1", "cc1"], dtype=object),
            "stack": pd.Series(["main;f;g", "main;h"], dtype=object),
            "value": np.array([3, 1], dtype=np.uint64),
        }
    )


def sample_trace() -> Trace:
    lin = from_slots(pd.DataFrame({"slot": [0, 3], "count": [1, 2]}), "linear", step=10)
    return Trace(
        frames={
            "events": {"events": events_frame()},
            "map": {"counts": percpu_map()},
            "hist": {"dist": keyed_hist(), "lin": lin},
            "stacks": {"counts": stacks_frame()},
        },
        lost={"events": 3},
        meta={
            "program": "TRACEPOINT_PROBE(sched, sched_switch) { return 0; }",
            "defines": {"TARGET": 1234},
            "probes": ["tracepoint:sched:sched_switch"],
            "host": "box",
            "kernel": "6.18.0",
            "bcc_version": "0.29.1",
            "start": "2026-11-30T09:00:00+00:00",
            "end": "2026-11-30T09:00:05+00:00",
        },
    )


def assert_same_trace(a: Trace, b: Trace) -> None:
    assert [(k, n) for k, n, _ in a.items()] == [(k, n) for k, n, _ in b.items()]
    for (kind, name, fa), (_, _, fb) in zip(a.items(), b.items()):
        assert_frame_equal(fa, fb, check_dtype=True, check_exact=True, obj=f"{kind} {name}")
        assert fa.attrs == fb.attrs, (kind, name)
    assert a.lost == b.lost
    assert a.meta == b.meta


def test_round_trip_every_kind_exact(tmp_path):
    trace = sample_trace()
    path = trace.save(tmp_path / "run.bpfnb")
    assert path == str(tmp_path / "run.bpfnb")
    back = bpfnb.load(path)
    assert_same_trace(trace, back)


def test_object_columns_keep_python_values(tmp_path):
    back = load(save_trace(sample_trace(), tmp_path / "t"))
    ev = back.events("events")
    assert ev["comm"].tolist() == ["bash", None]
    assert ev["args"].tolist() == [[1, 2, 3], []]
    assert isinstance(ev["args"][0], list)
    assert ev["raw"].tolist() == [b"\x00\xffab", b""]
    assert ev["ts"].tolist() == [10, 2**63 + 5]
    assert back.hist("dist").attrs == {"hist_type": "log2", "step": 1}
    assert back.hist("lin").attrs == {"hist_type": "linear", "step": 10}
    assert back.hist("lin")["low"].tolist() == [0, 30]


def test_suffix_added_and_folder_layout(tmp_path):
    path = save_trace(sample_trace(), tmp_path / "run")
    assert path.endswith("run.bpfnb")
    folder = Path(path)
    doc = json.loads((folder / "meta.json").read_text())
    assert doc["format"] == FORMAT and doc["schema_version"] == SCHEMA_VERSION
    files = sorted(p.name for p in folder.iterdir())
    assert files == sorted(["meta.json"] + [o["file"] for o in doc["outputs"]])
    assert [(o["kind"], o["name"], o["rows"]) for o in doc["outputs"]] == [
        ("events", "events", 2),
        ("map", "counts", 3),
        ("hist", "dist", 3),
        ("hist", "lin", 2),
        ("stacks", "counts", 2),
    ]
    assert all(len(o["sha256"]) == 64 for o in doc["outputs"])
    assert doc["lost"] == {"events": 3}
    assert doc["meta"]["defines"] == {"TARGET": 1234}
    # loading by the name without the suffix works too
    assert_same_trace(sample_trace(), load(tmp_path / "run"))


def test_folder_readable_as_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        folder = Path(save_trace(sample_trace(), tmp_path / "shared"))
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o755
    assert all(f.stat().st_mode & 0o044 == 0o044 for f in folder.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.bpfnb"]  # no staging left


def test_empty_trace_and_empty_frames(tmp_path):
    empty = Trace()
    assert list(load(empty.save(tmp_path / "e")).items()) == []
    frame = events_frame().iloc[:0]
    t = Trace(frames={"events": {"ev": frame}})
    back = load(t.save(tmp_path / "f")).events()
    assert_frame_equal(frame, back, check_dtype=True)


def test_resave_replaces_a_trace_but_not_a_foreign_folder(tmp_path):
    save_trace(sample_trace(), tmp_path / "t.bpfnb")
    one = Trace(frames={"map": {"m": percpu_map()}})
    save_trace(one, tmp_path / "t.bpfnb")
    assert_same_trace(one, load(tmp_path / "t.bpfnb"))
    other = tmp_path / "photos.bpfnb"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(TraceFileError, match="not a bpfnb trace folder"):
        save_trace(one, other)
    assert (other / "cat.jpg").read_bytes() == b"meow"


def test_meta_with_numpy_values_is_saved_as_json(tmp_path):
    t = Trace(meta={"pid": np.uint32(5), "dur": np.float64(1.5), "probes": ("a", "b")})
    back = load(t.save(tmp_path / "m"))
    assert back.meta == {"pid": 5, "dur": 1.5, "probes": ["a", "b"]}


def test_mixed_object_column_is_a_clear_error(tmp_path):
    bad = pd.DataFrame({"x": pd.Series([1, "a"], dtype=object)})
    with pytest.raises(TraceFileError, match="events output 'bad'"):
        save_trace(Trace(frames={"events": {"bad": bad}}), tmp_path / "bad")
    assert not (tmp_path / "bad.bpfnb").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_no_pickle_in_saved_files(tmp_path):
    folder = Path(save_trace(sample_trace(), tmp_path / "p"))
    for file in folder.iterdir():
        data = file.read_bytes()
        # pickle protocol 2+ streams start with \x80 and a protocol byte and
        # name their classes; none of that may appear anywhere
        for marker in (b"\x80\x04\x95", b"\x80\x05\x95", b"cpickle", b"pandas.core", b"numpy.core"):
            assert marker not in data, (file.name, marker)


# -- damaged, foreign, newer ------------------------------------------------
@pytest.fixture
def saved(tmp_path) -> Path:
    return Path(save_trace(sample_trace(), tmp_path / "run"))


def test_missing_folder(tmp_path):
    with pytest.raises(TraceFileError, match=r"nothere.*no such trace folder"):
        load(tmp_path / "nothere.bpfnb")


def test_missing_meta(saved):
    (saved / "meta.json").unlink()
    with pytest.raises(TraceFileError, match=r"meta\.json is missing.*Copy the whole folder"):
        load(saved)


def test_truncated_meta(saved):
    meta = saved / "meta.json"
    meta.write_bytes(meta.read_bytes()[:100])
    with pytest.raises(TraceFileError, match=r"meta\.json is damaged or truncated"):
        load(saved)


def test_foreign_json(saved):
    (saved / "meta.json").write_text(json.dumps({"format": "jupyter-notebook"}))
    with pytest.raises(TraceFileError, match=r"not bpfnb trace metadata \(format 'jupyter-notebook'"):
        load(saved)


def test_foreign_file(tmp_path):
    f = tmp_path / "report.parquet"
    f.write_bytes(b"PAR1 nonsense")
    with pytest.raises(TraceFileError, match=r"report\.parquet is a file, not a bpfnb trace"):
        load(f)


def test_newer_schema(saved):
    meta = saved / "meta.json"
    doc = json.loads(meta.read_text())
    doc["schema_version"] = SCHEMA_VERSION + 1
    meta.write_text(json.dumps(doc))
    with pytest.raises(TraceFileError, match=r"schema version 2, newer.*Upgrade bpfnb"):
        load(saved)


def test_truncated_parquet_is_a_checksum_error(saved):
    doc = json.loads((saved / "meta.json").read_text())
    victim = saved / doc["outputs"][2]["file"]
    victim.write_bytes(victim.read_bytes()[:-40])
    with pytest.raises(TraceFileError, match=rf"{victim.name} does not match the checksum"):
        load(saved)


def test_missing_parquet(saved):
    doc = json.loads((saved / "meta.json").read_text())
    (saved / doc["outputs"][0]["file"]).unlink()
    with pytest.raises(TraceFileError, match=r"events-00-events\.parquet is missing"):
        load(saved)


def test_garbage_parquet_with_matching_checksum(saved):
    meta = saved / "meta.json"
    doc = json.loads(meta.read_text())
    victim = saved / doc["outputs"][1]["file"]
    victim.write_bytes(b"not parquet at all")
    import hashlib

    doc["outputs"][1]["sha256"] = hashlib.sha256(b"not parquet at all").hexdigest()
    meta.write_text(json.dumps(doc))
    with pytest.raises(TraceFileError, match=r"is not a readable Parquet file"):
        load(saved)


def test_file_outside_folder_refused(saved):
    meta = saved / "meta.json"
    doc = json.loads(meta.read_text())
    doc["outputs"][0]["file"] = "../../etc/passwd"
    meta.write_text(json.dumps(doc))
    with pytest.raises(TraceFileError, match="outside the trace folder"):
        load(saved)


def test_errors_are_bpfnb_errors():
    assert issubclass(TraceFileError, BpfnbError)


def test_load_without_bcc(saved):
    """A process where `import bcc` fails, and pickle refuses, loads (and analyses) a trace."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["bcc"] = None          # any `import bcc` now raises ImportError
        try:
            import bcc
        except ImportError:
            pass
        else:
            raise SystemExit("bcc still importable")
        import pickle, copyreg

        def refuse(*args, **kwargs):
            raise AssertionError("loading a trace tried to unpickle")

        pickle.loads = pickle.load = refuse            # nothing may unpickle either
        pickle.Unpickler = refuse
        import bpfnb
        t = bpfnb.load({str(saved)!r})
        ev = t.events("events")
        assert ev["args"].tolist() == [[1, 2, 3], []] and ev["raw"].tolist() == [bytes([0, 255, 97, 98]), bytes()]
        assert "bcc" not in [m for m, v in sys.modules.items() if v is not None]
        h = t.hist("dist")
        print(len(t.events("events")), int(h["count"].sum()), h.attrs["hist_type"], t.lost["events"])
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "15", "log2", "3"]


def test_more_dtypes_and_a_non_default_index(tmp_path):
    frame = pd.DataFrame(
        {
            "cpu": pd.Categorical([3, 1, 3], categories=[1, 2, 3]),
            "word": pd.Series(["x", None, "z"], dtype=object, index=[10, 20, 40]),
            "when": pd.to_datetime([1, 2, 3], utc=True),
            "lat": pd.to_timedelta([5, 6, 7], unit="us"),
            "maybe": pd.array([1, None, 3], dtype="Int64"),
            "f32": np.array([0.5, 1.5, 2.5], dtype=np.float32),
            "i16": np.array([-2, 0, 2], dtype=np.int16),
            "nested": pd.Series([[[1], [2, 3]], [], None], dtype=object, index=[10, 20, 40]),
        },
        index=pd.Index([10, 20, 40], name="row"),
    )
    frame.attrs = {"source": "synthetic", "n": 3}
    back = load(Trace(frames={"map": {"m": frame}}).save(tmp_path / "d")).map()
    assert_frame_equal(frame, back, check_dtype=True, check_exact=True)
    assert back.attrs == {"source": "synthetic", "n": 3}
    assert back["nested"].tolist() == [[[1], [2, 3]], [], None]


def test_columns_of_numpy_arrays_keep_their_arrays(tmp_path):
    """Array fields of event structs: one numpy array per row, dtype kept."""
    raw = np.empty(4, dtype=object)
    raw[:] = [np.array([0, 7, 0, 255], dtype=np.uint8), np.array([], dtype=np.uint8), None,
              np.array([1, 2, 3, 4], dtype=np.uint8)]
    ints = np.empty(4, dtype=object)
    ints[:] = [np.array([-1, 2**31 - 1], dtype=np.int32)] * 4
    frame = pd.DataFrame({"raw": raw, "ints": ints, "pid": np.arange(4, dtype=np.uint32)})
    back = load(Trace(frames={"events": {"ev": frame}}).save(tmp_path / "a")).events()
    assert_frame_equal(frame, back, check_dtype=True, check_exact=True)
    assert [None if v is None else (v.dtype, v.tolist()) for v in back["raw"]] == [
        (np.uint8, [0, 7, 0, 255]), (np.uint8, []), None, (np.uint8, [1, 2, 3, 4]),
    ]
    assert all(v.dtype == np.int32 and v.tolist() == [-1, 2**31 - 1] for v in back["ints"])
