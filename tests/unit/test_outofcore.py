"""Out-of-core reading of many saved traces, the spill mode's sink side, fleet merge and pictures.

No kernel: synthetic traces saved with Trace.save, records fed to EventSinks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bpfnb
from bpfnb.outputs import EventSink
from bpfnb.trace import Trace

pytest.importorskip("duckdb", reason="the fleet extra: pip install bpfnb[fleet]")
pytest.importorskip("dask.dataframe", reason="the fleet extra: pip install bpfnb[fleet]")
fleet = pytest.importorskip("bpfnb.fleet")
from bpfnb import spill  # noqa: E402
from bpfnb.fleet.outofcore import OutOfCoreError  # noqa: E402

HOSTS = ["web-1", "web-2", "db-1"]


def events_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ts": np.sort(rng.integers(1_000_000, 9_000_000_000, n)).astype(np.uint64),
        "pid": rng.integers(1, 50, n).astype(np.uint32),
        "lat_us": rng.exponential(100.0, n),
        "comm": pd.Series(rng.choice(["nginx", "java", "sshd"], n), dtype=object),
    })


@pytest.fixture()
def saved(tmp_path):
    """Six traces, two per host, each with events and a histogram; the frames in memory."""
    frames = []
    for i in range(6):
        host = HOSTS[i % 3]
        ev = events_frame(i, 1000 + 137 * i)
        hist = pd.DataFrame({"low": np.array([0, 2, 4], np.uint64), "high": np.array([1, 3, 7], np.uint64),
                             "count": np.array([i, 2 * i, 3], np.int64)})
        t = Trace({"events": {"events": ev}, "hist": {"dist": hist}}, lost={"events": 0},
                  meta={"host": host, "kernel": "6.18"})
        t.save(tmp_path / "week" / f"run{i:02d}-{host}")
        frames.append(ev.assign(trace=f"run{i:02d}-{host}.bpfnb", host=host))
    return tmp_path / "week", pd.concat(frames, ignore_index=True)


def test_dask_reads_every_trace_lazily_with_host_and_trace(saved):
    folder, expect = saved
    ddf = fleet.load_many(folder)
    assert ddf.npartitions == 6
    got = ddf.compute().sort_values(["trace", "ts"], kind="stable").reset_index(drop=True)
    want = expect.sort_values(["trace", "ts"], kind="stable").reset_index(drop=True)
    want = want.astype({"trace": object, "host": object})
    assert got["ts"].dtype == np.uint64 and got["pid"].dtype == np.uint32
    # text comes back in Dask's string dtype (its dataframe.convert-string setting): same values
    got = got.astype({"comm": object, "trace": object, "host": object})
    pd.testing.assert_frame_equal(got[want.columns], want)
    per_host = ddf.groupby("host")["lat_us"].agg(["count", "sum", "max"]).compute().sort_index()
    truth = expect.groupby("host")["lat_us"].agg(["count", "sum", "max"]).sort_index()
    pd.testing.assert_frame_equal(per_host, truth, check_exact=False, rtol=1e-12, check_index_type=False)


def test_duckdb_relation_and_sql_give_the_pandas_answers(saved):
    folder, expect = saved
    rel = fleet.load_many(str(folder / "*.bpfnb"), engine="duckdb")
    assert rel.aggregate("count(*)").fetchall()[0][0] == len(expect)
    res = fleet.query(folder, "SELECT host, comm, count(*) AS n, sum(pid) AS pids, max(lat_us) AS worst "
                              "FROM events GROUP BY host, comm ORDER BY host, comm")
    truth = (expect.groupby(["host", "comm"]).agg(n=("ts", "size"), pids=("pid", "sum"), worst=("lat_us", "max"))
             .reset_index().sort_values(["host", "comm"]).reset_index(drop=True))
    assert res[["host", "comm"]].values.tolist() == truth[["host", "comm"]].values.tolist()
    assert res["n"].tolist() == truth["n"].tolist() and res["pids"].astype(int).tolist() == truth["pids"].tolist()
    assert np.allclose(res["worst"], truth["worst"], rtol=0, atol=0)
    per_trace = fleet.query(folder, "SELECT trace, count(*) AS n FROM events GROUP BY trace")
    assert per_trace.set_index("trace")["n"].to_dict() == expect.groupby("trace").size().to_dict()


def test_other_kinds_and_a_list_of_paths(saved):
    folder, _ = saved
    paths = sorted(folder.glob("*.bpfnb"))[:2]
    hist = fleet.load_many(paths, kind="hist").compute()
    assert hist.groupby("trace")["count"].sum().to_dict() == {paths[0].name: 3, paths[1].name: 6}


def test_a_saved_fleet_trace_keeps_its_own_host_column(tmp_path):
    frame = pd.DataFrame({"host": ["a", "a", "b"], "ts": np.array([1, 2, 3], np.uint64)})
    Trace({"events": {"events": frame}}, meta={"host": "coordinator"}).save(tmp_path / "fleet")
    res = fleet.query(tmp_path, "SELECT host, count(*) AS n FROM events GROUP BY host ORDER BY host")
    assert res.values.tolist() == [["a", 2], ["b", 1]]
    assert fleet.load_many(tmp_path).compute()["host"].tolist() == ["a", "a", "b"]


def test_errors_name_the_problem(saved, tmp_path):
    folder, _ = saved
    with pytest.raises(OutOfCoreError, match="no saved traces"):
        fleet.load_many(tmp_path / "nothing-here")
    with pytest.raises(OutOfCoreError, match="engine='spark'"):
        fleet.load_many(folder, engine="spark")
    with pytest.raises(OutOfCoreError, match="Did you mean: events"):
        fleet.load_many(folder, name="event")
    other = Trace({"events": {"events": pd.DataFrame({"x": [1]})}}, meta={"host": "z"})
    other.save(folder / "stranger")
    with pytest.raises(OutOfCoreError, match="stranger.bpfnb.*different programs"):
        fleet.load_many(folder)
    with pytest.raises(OutOfCoreError, match="(?s)the query failed.*DESCRIBE"):
        fleet.query(folder / "run00-web-1.bpfnb", "SELECT nope FROM events")
    assert isinstance(OutOfCoreError("x"), bpfnb.BpfnbError)


# -- spill: the sink side, no kernel ----------------------------------------------------------
DTYPE = np.dtype([("ts", np.uint64), ("pid", np.uint32), ("size", np.uint32), ("comm", "S16")])


def records(start: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=DTYPE)
    out["ts"] = np.arange(start, start + n)
    out["pid"] = 42
    out["size"] = np.arange(start, start + n) % 4096
    out["comm"] = b"worker"
    return out


def test_spill_bounds_memory_and_reads_back_the_same_rows(tmp_path):
    sink = EventSink("events", DTYPE, chunk_rows=1024)
    limit = 64 * 1024  # 2,048 records of 32 bytes, with the 1,024-record fill buffer
    sp = spill.Spill(tmp_path, memory_limit=limit)
    sp.watch({"events": sink})
    total = 0
    for i in range(40):  # batches of 700 (the ring-buffer path) and single records (perf)
        sink.add_batch(records(total, 700))
        total += 700
        one = records(total, 1)
        sink.add(one.ctypes.data, one.itemsize)
        total += 1
        assert sp.held()[0] <= limit + 700 * DTYPE.itemsize + 1024 * DTYPE.itemsize
    sp.flush()
    trace = sp.finish(Trace({"events": {"events": pd.DataFrame({"ts": np.array([], np.uint64)})}}))
    info = trace.meta["spill"]
    assert info["outputs"]["events"]["rows"] == total == sink.count
    assert info["peak_retained_bytes"] <= limit + 1024 * DTYPE.itemsize
    assert sink.chunks == [] and len(info["outputs"]["events"]["parts"]) > 5
    back = spill.read(tmp_path / next(p.name for p in tmp_path.iterdir()))
    assert back["ts"].tolist() == list(range(total))
    assert back["ts"].dtype == np.uint64 and back["pid"].dtype == np.uint32
    assert set(back["comm"]) == {"worker"}
    res = fleet.query(tmp_path, "SELECT count(*) AS n, sum(size) AS s FROM events")
    assert int(res["n"][0]) == total and int(res["s"][0]) == int((np.arange(total) % 4096).sum())
    # a saved spilled trace leads to its parts; found twice (trace + spill folder), read once
    saved = trace.save(tmp_path / "saved")
    assert int(fleet.query(saved, "SELECT count(*) AS n FROM events")["n"][0]) == total
    assert int(fleet.query(tmp_path, "SELECT count(*) AS n FROM events")["n"][0]) == total


def test_spill_refuses_bad_limits_and_files(tmp_path):
    with pytest.raises(spill.SpillError, match="positive"):
        spill.Spill(tmp_path, memory_limit=0)
    (tmp_path / "f").write_text("x")
    with pytest.raises(spill.SpillError, match="is a file"):
        spill.Spill(tmp_path / "f")
    with pytest.raises(spill.SpillError, match="spill_dir"):
        spill.read(Trace())


# -- fleet merge and pictures -----------------------------------------------------------------
def host_trace(i: int) -> Trace:
    ev = pd.DataFrame({"ts": np.arange(10, dtype=np.uint64) * 500_000_000 + i, "lat_us": np.full(10, 10.0 * (i + 1))})
    hist = pd.DataFrame({"low": np.array([1, 2], np.uint64), "high": np.array([1, 3], np.uint64),
                         "count": np.array([i + 1, 5], np.int64)})
    hist.attrs["hist_type"] = "log2"
    stacks = pd.DataFrame({"stack": ["main;a", "main;b"], "value": [10 * (i + 1), 5]})
    return Trace({"events": {"events": ev}, "hist": {"dist": hist}, "stacks": {"cpu": stacks}},
                 lost={"events": i}, meta={"host": "vm", "kernel": "6.18", "monotonic_to_wall_ns": 0,
                                           "source": "C", "probes": ["tracepoint:a:b=f"]})


def merged() -> Trace:
    outcomes = [{"report": {"host": h, "address": f"tcp://10.0.0.{i}:1", "ok": True, "error": None},
                 "trace": host_trace(i)} for i, h in enumerate(HOSTS)]
    outcomes.append({"report": {"host": "bad-1", "address": "tcp://10.0.0.9:1", "ok": False,
                                "error": {"type": "AttachError", "message": "no probe"}}, "trace": None})
    return fleet.merge(outcomes, fleet={"duration": 5})


def test_merge_adds_host_columns_sums_lost_and_lists_failures():
    t = merged()
    assert t.events()["host"].tolist() == [h for h in HOSTS for _ in range(10)]
    assert t.lost == {"events": 0 + 1 + 2}
    assert t.meta["fleet"]["failed"] == ["bad-1"] and t.meta["fleet"]["ok"]
    assert t.meta["hosts"]["web-2"]["lost"] == {"events": 1}
    assert t.meta["hosts"]["web-2"]["attach"] == ["tracepoint:a:b=f"]
    assert t.meta["hosts"]["bad-1"]["error"]["type"] == "AttachError"
    assert "host" not in t.meta and t.meta["source"] == "C"
    assert t.hist().attrs["hist_type"] == "log2"


def test_wall_time_uses_each_hosts_clock():
    t = merged()
    t.meta["hosts"]["web-2"]["monotonic_to_wall_ns"] = 1_000_000_000
    wall = fleet.wall_time(t, t.events())
    first = wall.groupby(t.events()["host"]).min()
    assert first["web-1"] == pd.Timestamp(0) and first["web-2"] == pd.Timestamp(1_000_000_001)


def test_host_matrix_counts_and_aggregates_per_host_and_step():
    t = merged()
    counts = fleet.host_matrix(t, step=1.0)
    assert list(counts.index) == HOSTS and counts.shape == (3, 5)
    assert counts.loc["web-1"].tolist() == [2, 2, 2, 2, 2]
    means = fleet.host_matrix(t, value="lat_us", agg="max", step=1.0)
    assert means.loc["db-1"].tolist() == [30.0] * 5
    hm = fleet.heatmap(t, value="lat_us", agg="p99", step=1.0)
    svg = hm.to_svg()
    assert svg.count("<rect x=") == 15 and all(h in svg for h in HOSTS)
    assert "db-1" in hm.text()


def test_per_host_small_multiples_and_flame_graphs():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    t = merged()
    axes = fleet.hist(t)
    assert [a.get_title(loc="left") for a in axes] == [f"host={h}" for h in HOSTS]  # fleet order
    fg = fleet.flamegraph(t, host="db-1")
    assert fg.top().set_index("name")["count"].to_dict() == {"main": 35, "a": 30, "b": 5}
    every = fleet.flamegraph(t).top().set_index("name")["count"]
    assert every[HOSTS].tolist() == [15, 25, 35]  # hosts as root frames
    diff = fleet.flamegraph(t, host="db-1", baseline="web-1")
    assert "against web-1" in diff.to_svg()
    with pytest.raises(fleet.pictures.PictureError, match="no host 'web-9'.*Did you mean"):
        fleet.flamegraph(t, host="web-9")
