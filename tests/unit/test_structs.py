"""C struct -> numpy dtype -> columns, without a kernel."""

import ctypes as ct

import numpy as np

from bpfnb.frames.structs import decode_cstrings, dtype_of, key_value_frame, records_to_frame
from bpfnb.outputs import _field_ctype, perf_pages_for


class Inner(ct.Structure):
    _fields_ = [("a", ct.c_ubyte), ("b", ct.c_uint * 2)]


class Event(ct.Structure):
    _fields_ = [("ts", ct.c_ulonglong), ("pid", ct.c_uint), ("comm", ct.c_char * 16),
                ("delta", ct.c_short), ("inner", Inner), ("arr", ct.c_longlong * 3), ("flag", ct.c_byte)]


def test_dtype_matches_ctypes_layout_including_padding():
    dt = dtype_of(Event)
    assert dt.itemsize == ct.sizeof(Event)
    for name in ("ts", "pid", "comm", "delta", "inner", "arr", "flag"):
        assert dt.fields[name][1] == getattr(Event, name).offset
    assert dt["comm"] == np.dtype("S16")
    assert dt["delta"] == np.dtype(np.int16)
    assert dt["flag"] == np.dtype(np.int8)


def test_records_to_columns_keep_width_and_sign():
    events = (Event * 2)()
    events[0].ts, events[0].pid, events[0].comm, events[0].delta = 2**64 - 1, 7, b"bash", -3
    events[0].inner.a, events[0].inner.b[1], events[0].arr[2] = 255, 2**32 - 1, -9
    events[1].comm = b"x" * 16  # no NUL at all
    raw = np.frombuffer(bytes(events), dtype=dtype_of(Event))
    frame = records_to_frame(raw)
    assert list(frame.columns) == ["ts", "pid", "comm", "delta", "inner_a", "inner_b", "arr", "flag"]
    assert frame["ts"].dtype == np.uint64 and frame["ts"][0] == 2**64 - 1
    assert frame["pid"].dtype == np.uint32
    assert frame["delta"].dtype == np.int16 and frame["delta"][0] == -3
    assert frame["inner_a"].dtype == np.uint8 and frame["inner_a"][0] == 255
    assert list(frame["inner_b"][0]) == [0, 2**32 - 1]
    assert list(frame["arr"][0]) == [0, 0, -9]
    assert frame["comm"].tolist() == ["bash", "x" * 16]


def test_cstrings_cut_at_first_nul_even_with_garbage_after():
    raw = np.array([b"ab\x00zz", b"\x00\x00q", b"hello"], dtype="S5")
    assert decode_cstrings(raw).tolist() == ["ab", "", "hello"]
    assert decode_cstrings(np.array([b"caf\xc3\xa9\xff"], dtype="S6")).tolist() == ["café\ufffd"]


def test_key_value_columns_and_name_clash():
    keys = np.array([(1, 2)], dtype=[("pid", "u4"), ("cpu", "u4")])
    values = np.array([(5, 6)], dtype=[("pid", "u8"), ("count", "u8")])
    frame = key_value_frame(keys, values)
    assert list(frame.columns) == ["pid", "cpu", "pid_value", "count"]
    scalar = key_value_frame(np.array([3], dtype="i4"), np.array([4], dtype="u8"))
    assert list(scalar.columns) == ["key", "value"] and scalar["value"].dtype == np.uint64


def test_bcc_field_type_names_map_to_ctypes():
    assert _field_ctype("unsigned long long") is ct.c_ulonglong
    assert _field_ctype("char[16]")._length_ == 16
    assert _field_ctype("u32 [4]")._type_ is ct.c_uint
    two_d = _field_ctype("int[2][3]")
    assert two_d._length_ == 2 and two_d._type_._length_ == 3
    assert _field_ctype("enum state") is ct.c_int
    assert _field_ctype("struct foo") is None


def test_perf_pages_hold_a_burst_of_20000():
    for size in (8, 32, 56, 200):
        pages = perf_pages_for(size)
        assert pages & (pages - 1) == 0
        assert pages * 4096 >= 20000 * (size + 12)
