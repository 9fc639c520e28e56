"""bpfnb.read_bpftrace on outputs recorded from the real bpftrace 0.17 here.

The samples in tests/data/bpftrace/ were recorded as root on this machine
with `bpftrace -f json -e PROGRAM` (PROGRAMS below) while a known workload
ran: `dd bs=512 count=50`, `dd bs=1 count=3` and `head -c 100000 /dev/zero | cat`.
lost.json used BPFTRACE_PERF_RB_PAGES=1 and 3000 getppid() calls from python3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import bpfnb
from bpfnb.errors import BpfnbError, TraceFileError
from bpfnb.io.bpftrace import INT64_MAX, INT64_MIN, fold_stack, map_keys, read_bpftrace

DATA = Path(__file__).resolve().parents[1] / "data" / "bpftrace"
WHO = '/comm == "dd" || comm == "cat"/'
PROGRAMS = {
    "maps": "tracepoint:syscalls:sys_enter_read " + WHO + " { @[comm] = count(); "
    "@m[comm, pid] = count(); @bytes[comm] = sum(args->count); @mx[comm] = max(args->count); "
    "@mn = min((int64)args->count - 600); @c = count(); @x = 5; @str = comm; @tup = (comm, 42); "
    "@u[uid] = count(); @fd3[args->fd, comm, 7] = count(); } interval:s:1 { exit(); }",
    "hist": "tracepoint:syscalls:sys_enter_read " + WHO + " { $v = (int64)args->count - 600; "
    "@h = hist(args->count); @hn = hist($v); @l = lhist(args->count, 0, 1000, 100); "
    "@ln = lhist($v, 0, 1000, 100); @hk[comm] = hist(args->count); "
    "@lk[comm, 1] = lhist(args->count, 0, 1000, 250); } interval:s:1 { exit(); }",
    "stacks": 'tracepoint:syscalls:sys_enter_read /comm == "dd"/ { @k[kstack(4)] = count(); '
    "@ck[comm, kstack(3)] = count(); @us[ustack(2), comm] = count(); } interval:s:1 { exit(); }",
}


def i64(values) -> pd.Series:
    return pd.Series(np.array(values, dtype=np.int64))


def obj(values) -> pd.Series:
    return pd.Series(values, dtype=object)


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def hist(attrs, **columns) -> pd.DataFrame:
    out = frame(**columns)
    out.attrs.update(attrs)
    return out


def same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert_frame_equal(actual, expected, check_dtype=True, check_exact=True)
    assert actual.attrs == expected.attrs


LOG2 = {"hist_type": "log2", "step": 1}


# -- maps -----------------------------------------------------------------------
def test_maps_without_program():
    t = read_bpftrace(DATA / "maps.json")
    assert t.names("map") == ["@", "@bytes", "@c", "@fd3", "@m", "@mn", "@mx", "@str", "@tup", "@u", "@x"]
    same(t.map("@"), frame(key=obj(["cat", "dd"]), value=i64([18, 59])))
    same(t.map("@c"), frame(value=i64([77])))
    same(t.map("@mn"), frame(value=i64([-599])))
    same(t.map("@str"), frame(value=obj(["cat"])))
    same(t.map("@tup"), frame(value0=obj(["cat"]), value1=i64([42])))
    same(t.map("@u"), frame(key=i64([0]), value=i64([77])))
    same(
        t.map("@m"),
        frame(
            key0=obj(["cat"] * 4 + ["dd"] * 2),
            key1=i64([3009, 3010, 3013, 3006, 3004, 3003]),
            value=i64([3, 4, 5, 6, 6, 53]),
        ),
    )
    same(
        t.map("@fd3"),
        frame(key0=i64([0, 3, 3, 0]), key1=obj(["cat", "dd", "cat", "dd"]), key2=i64([7] * 4), value=i64([3, 6, 15, 53])),
    )
    # the workload: dd bs=512 count=50 reads 50 x 512 bytes (+ the loader's reads)
    assert t.map("@").set_index("key")["value"].sum() == t.map("@c")["value"][0]
    assert t.meta["attached_probes"] == 2 and t.lost == {}


def test_maps_with_program_name_the_keys():
    t = read_bpftrace(DATA / "maps.json", program=PROGRAMS["maps"])
    assert list(t.map("@m").columns) == ["comm", "pid", "value"]
    assert list(t.map("@fd3").columns) == ["fd", "comm", "key2", "value"]
    assert list(t.map("@u").columns) == ["uid", "value"]
    assert list(t.map("@").columns) == ["comm", "value"]
    assert t.meta["source"] == PROGRAMS["maps"] and t.meta["tool"] == "bpftrace"


def test_map_keys_from_program():
    keys = map_keys(
        '@a[comm, pid] = count(); @b[str(args->filename), args.fd] = sum(1); '
        '@c[kstack] = count(); @d[ustack(3), $x] = count(); @e[1] = 1; @f[comm, comm] = 1; '
        '@g[@a[comm, pid]] = 1; @h[value] = count();'
    )
    assert keys["@a"] == ["comm", "pid"]
    assert keys["@b"] == ["filename", "fd"]
    assert keys["@c"] == ["kstack"]
    assert keys["@d"] == ["ustack", "x"]
    assert keys["@e"] == ["key"]
    assert keys["@f"] == ["comm", "comm_2"]
    assert keys["@h"] == ["value_key"]


def test_commas_inside_a_text_key():
    text = json.dumps({"type": "map", "data": {"@m": {"a,b,12": 1, "bash,7": 2}}})
    same(read_bpftrace(text).map("@m"), frame(key0=obj(["a,b", "bash"]), key1=i64([12, 7]), value=i64([1, 2])))
    # one key column per the program, whatever the commas
    same(
        read_bpftrace(text, program="x { @m[comm] = count(); }").map("@m"),
        frame(comm=obj(["a,b,12", "bash,7"]), value=i64([1, 2])),
    )
    # two text columns: which one holds the comma is unknowable -> raw keys
    text = json.dumps({"type": "map", "data": {"@m": {"a,b,c": 1, "x,y": 2}}})
    same(read_bpftrace(text).map("@m"), frame(key=obj(["a,b,c", "x,y"]), value=i64([1, 2])))


def test_values_past_int64_are_uint64():
    text = json.dumps({"type": "map", "data": {"@m": {"k": 2**64 - 1}}}) + "\n"
    same(read_bpftrace(text).map("@m"), frame(key=obj(["k"]), value=pd.Series(np.array([2**64 - 1], dtype=np.uint64))))


# -- histograms ----------------------------------------------------------------------
def test_hist_and_lhist_with_open_ended_buckets():
    t = read_bpftrace(DATA / "hist.json")
    same(t.hist("@h"), hist(LOG2, low=i64([1, 512, 4096, 131072]), high=i64([1, 1023, 8191, 262143]), count=i64([3, 53, 6, 7])))
    # $v = count - 600: the 53 reads of <= 512 bytes are negative -> open low
    same(
        t.hist("@hn"),
        hist(LOG2, low=i64([INT64_MIN, 128, 2048, 65536]), high=i64([-1, 255, 4095, 131071]), count=i64([53, 3, 6, 7])),
    )
    lin = {"hist_type": "linear", "step": 100}
    same(
        t.hist("@l"),
        hist(lin, low=i64([0, 500, 800, 1000]), high=i64([99, 599, 899, INT64_MAX]), count=i64([3, 50, 3, 13])),
    )
    same(t.hist("@ln"), hist(lin, low=i64([INT64_MIN, 200, 1000]), high=i64([-1, 299, INT64_MAX]), count=i64([53, 3, 13])))
    # every hist counts the same 69 reads
    assert {n: int(t.hist(n)["count"].sum()) for n in t.names("hist")} == dict.fromkeys(t.names("hist"), 69)


def test_keyed_hists():
    t = read_bpftrace(DATA / "hist.json", program=PROGRAMS["hist"])
    same(
        t.hist("@hk"),
        hist(
            LOG2,
            comm=obj(["cat"] * 3 + ["dd"] * 3),
            low=i64([512, 4096, 131072, 1, 512, 4096]),
            high=i64([1023, 8191, 262143, 1, 1023, 8191]),
            count=i64([1, 2, 7, 3, 52, 4]),
        ),
    )
    lk = t.hist("@lk")
    assert list(lk.columns) == ["comm", "key1", "low", "high", "count"]
    assert lk.attrs == {"hist_type": "linear", "step": 250}
    assert lk["high"].tolist() == [999, INT64_MAX, 249, 749, 999, INT64_MAX]
    # dd read 50 x 512 bytes
    assert lk[(lk.comm == "dd") & (lk.low == 500)]["count"].tolist() == [50]


def test_program_decides_hist_or_lhist():
    # one bucket [1, 1] looks like log2, but came from lhist(x, 0, 10, 1)
    text = json.dumps({"type": "hist", "data": {"@l": [{"min": 1, "max": 1, "count": 4}]}})
    assert read_bpftrace(text).hist().attrs == LOG2
    t = read_bpftrace(text, program="BEGIN { @l = lhist(1, 0, 10, 1); }")
    assert t.hist().attrs == {"hist_type": "linear", "step": 1}


# -- stats, text, lost, stacks, repeated prints ------------------------------------------
def test_stats_and_avg():
    t = read_bpftrace(DATA / "stats.json")
    same(t.map("@s"), frame(count=i64([74]), average=i64([21966]), total=i64([1625539])))
    same(t.map("@a"), frame(average=i64([21966])))
    same(
        t.map("@sk"),
        frame(key=obj(["dd", "cat"]), count=i64([59, 15]), average=i64([739, 105459]), total=i64([43651, 1581888])),
    )
    same(t.map("@ak"), frame(key0=obj(["dd", "dd", "cat"]), key1=i64([3041, 3042, 3044]), average=i64([653, 1504, 105459])))
    assert t.map("@s")["total"][0] == t.map("@sk")["total"].sum()


def test_printf_and_other_text_become_events():
    ev = read_bpftrace(DATA / "printf.json").events()
    assert ev["type"].tolist() == [
        "printf", "time", "cat", "syscall", "printf", "printf", "join", "join", "printf", "join", "join", "printf",
    ]
    assert ev["message"].tolist()[2:] == [
        "Linux", "from system", "no newline", "two\nlines", "/bin/echo hello world", "/bin/echo,hello,world",
        "exec /bin/echo", "/bin/true a,b c d", "/bin/true,a,b,c d", "exec /bin/true",
    ]
    assert ev["message"][0] == "start 1, x,y"
    assert ev.dtypes.tolist() == [object, object]


def test_lost_events_are_counted():
    t = read_bpftrace(DATA / "lost.json")
    assert t.lost == {"printf": 2412}
    # every call either printed a line or was counted lost
    assert len(t.events()) + t.lost["printf"] == t.map("@calls")["value"][0] == 3000


def test_stacks_become_folded_frames():
    t = read_bpftrace(DATA / "stacks.json", program=PROGRAMS["stacks"])
    same(
        t.stacks("@k"),
        frame(stack=obj(["entry_SYSCALL_64_after_hwframe;do_syscall_64;syscall_trace_enter;perf_syscall_enter"]), value=i64([59])),
    )
    same(
        t.stacks("@ck"),
        frame(comm=obj(["dd"]), stack=obj(["do_syscall_64;syscall_trace_enter;perf_syscall_enter"]), value=i64([59])),
    )
    us = t.stacks("@us")
    assert list(us.columns) == ["comm", "stack", "value"]
    assert us["stack"][0] == "0x7fb419f6122a;0x7fb419f79b74"
    assert us["value"].sum() == 59
    # the map keeps bpftrace's text, offsets included
    assert t.map("@k")["kstack"][0].startswith("\n    perf_syscall_enter+475\n")
    assert fold_stack("\n    f+1\n    g+0x1f\n    main\n") == "main;g;f"


def test_repeated_prints_are_numbered_with_their_time():
    t = read_bpftrace(DATA / "interval.json")
    same(
        t.map("@c"),
        frame(print=i64([0, 1]), time=obj(["09:09:12", "09:09:12"]), key=obj(["dd", "dd"]), value=i64([13, 26])),
    )
    h = t.hist("@h")
    assert list(h.columns) == ["print", "time", "low", "high", "count"]
    assert h.groupby("print")["count"].sum().tolist() == [13, 26]
    assert h.attrs == LOG2
    assert t.events()["type"].tolist() == ["time"] * 3


# -- inputs and errors -------------------------------------------------------------------
def test_text_path_and_bytes_inputs_agree():
    path = DATA / "stats.json"
    for source in (str(path), path, path.read_text(), path.read_bytes()):
        same(read_bpftrace(source).map("@s"), frame(count=i64([74]), average=i64([21966]), total=i64([1625539])))
    assert bpfnb.read_bpftrace is read_bpftrace


def test_saved_and_loaded_exactly(tmp_path):
    t = read_bpftrace(DATA / "hist.json", program=PROGRAMS["hist"])
    back = bpfnb.load(t.save(tmp_path / "bt"))
    for (kind, name, a), (_, _, b) in zip(t.items(), back.items()):
        same(b, a)
    assert back.meta == t.meta


def test_not_json_output_is_a_clear_error(tmp_path):
    text_output = tmp_path / "out.txt"
    text_output.write_text("Attaching 1 probe...\n@[bash]: 3\n")
    with pytest.raises(TraceFileError, match=r"out\.txt line 1 is not JSON.*bpftrace -f json"):
        read_bpftrace(text_output)
    with pytest.raises(TraceFileError, match=r"does not exist"):
        read_bpftrace(tmp_path / "missing.json")
    with pytest.raises(TraceFileError, match=r"line 2 is JSON but not a bpftrace record"):
        read_bpftrace('{"type": "map", "data": {"@x": 1}}\n[1, 2]\n')
    assert issubclass(TraceFileError, BpfnbError)


def test_unknown_record_types_are_kept():
    text = '{"type": "helper_error", "data": {"helper": "map_update_elem", "retcode": -7}}\n'
    ev = read_bpftrace(text).events()
    assert ev["type"].tolist() == ["helper_error"]
    assert json.loads(ev["message"][0]) == {"helper": "map_update_elem", "retcode": -7}


def test_not_strict_keeps_foreign_lines():
    text = 'hello\n{"type": "printf", "data": "x\\n"}\n[1]\n'
    ev = read_bpftrace(text, strict=False).events()
    assert ev.values.tolist() == [["stdout", "hello"], ["printf", "x"], ["stdout", "[1]"]]
