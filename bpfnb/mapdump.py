"""Read a whole hash or array map with one walk inside the kernel.

BPF_MAP_LOOKUP_BATCH makes two copy_to_user() calls per hash bucket; on
Linux 6.18 three quarters of a 1,000,000-key batch read is spent in them
and their hardened-usercopy checks. Here a tiny program, assembled below,
walks the map with bpf_for_each_map_elem() and copies every key and value
into a fresh mmap-able array map; one BPF_PROG_TEST_RUN runs it, and the
result is read in place through the mapping: no copy to user space at all.

    keys, values = dump(table.map_fd, key_dtype, value_dtype, max_entries)

keys and values are strided views into the mapping (writable, private to
this process); the kernel frees the array when the last view is gone.

Limits, each sending maps.read_table back to the batch path:
- per-CPU maps: the walk sees only the running CPU's copy of each value;
- hash maps whose probes are attached: the walk takes no bucket locks
  (see maps._walkable);
- kernels before 5.13 (no bpf_for_each_map_elem) or without BTF: OSError;
- the walk runs in one stretch in the kernel (about 0.1 s per million
  entries here), so maps larger than DUMP_MAX_ENTRIES are read in batches.
Like a batch read, the walk is not atomic: entries updated while it runs
may show their old or new value.
"""

from __future__ import annotations

import ctypes as ct
import errno
import functools
import mmap
import os
import struct

import numpy as np

DUMP_MIN_ENTRIES = 1 << 16   # smaller maps: a batch read costs less than building the walk
DUMP_MAX_ENTRIES = 1 << 22   # larger maps: keep each kernel stretch short (batch calls instead)

_MAP_CREATE, _PROG_LOAD, _PROG_TEST_RUN, _BTF_LOAD = 0, 5, 10, 18
_MAP_TYPE_ARRAY, _F_MMAPABLE = 2, 1 << 10
_PROG_TYPE_RAW_TRACEPOINT = 17
_HELPER_MAP_LOOKUP, _HELPER_FOR_EACH = 1, 164
_FULL = 0xFFFFFFFF           # the walk's answer when the destination ran out of room


class _MapCreate(ct.Structure):
    _fields_ = [("map_type", ct.c_uint32), ("key_size", ct.c_uint32), ("value_size", ct.c_uint32),
                ("max_entries", ct.c_uint32), ("map_flags", ct.c_uint32), ("inner_map_fd", ct.c_uint32),
                ("numa_node", ct.c_uint32), ("map_name", ct.c_char * 16)]


class _ProgLoad(ct.Structure):
    _fields_ = [("prog_type", ct.c_uint32), ("insn_cnt", ct.c_uint32), ("insns", ct.c_uint64),
                ("license", ct.c_uint64), ("log_level", ct.c_uint32), ("log_size", ct.c_uint32),
                ("log_buf", ct.c_uint64), ("kern_version", ct.c_uint32), ("prog_flags", ct.c_uint32),
                ("prog_name", ct.c_char * 16), ("prog_ifindex", ct.c_uint32),
                ("expected_attach_type", ct.c_uint32), ("prog_btf_fd", ct.c_uint32),
                ("func_info_rec_size", ct.c_uint32), ("func_info", ct.c_uint64), ("func_info_cnt", ct.c_uint32)]


class _TestRun(ct.Structure):
    _fields_ = [("prog_fd", ct.c_uint32), ("retval", ct.c_uint32), ("data_size_in", ct.c_uint32),
                ("data_size_out", ct.c_uint32), ("data_in", ct.c_uint64), ("data_out", ct.c_uint64),
                ("repeat", ct.c_uint32), ("duration", ct.c_uint32), ("ctx_size_in", ct.c_uint32),
                ("ctx_size_out", ct.c_uint32), ("ctx_in", ct.c_uint64), ("ctx_out", ct.c_uint64),
                ("flags", ct.c_uint32), ("cpu", ct.c_uint32), ("batch_size", ct.c_uint32)]


class _BtfLoad(ct.Structure):
    _fields_ = [("btf", ct.c_uint64), ("btf_log_buf", ct.c_uint64), ("btf_size", ct.c_uint32),
                ("btf_log_size", ct.c_uint32), ("btf_log_level", ct.c_uint32)]


def _sys_bpf(cmd: int, attr: ct.Structure, what: str) -> int:
    from .system import bpf_syscall

    try:
        return bpf_syscall(cmd, attr)
    except OSError as exc:
        raise OSError(exc.errno, f"{what}: {exc.strerror}") from None


# -- BTF: the kernel wants function info for a program with a callback -------------------
def _btf_blob() -> bytes:
    """Types for `long dump(void *ctx)` and `long walk(void *map, *key, *value, *ctx)`."""
    strings = b"\0long\0ctx\0dump\0walk\0map\0key\0value\0"

    def name(text: str) -> int:
        return strings.index(text.encode() + b"\0")

    def info(kind: int, vlen: int = 0) -> int:
        return (kind << 24) | vlen

    INT, PTR, FUNC, FUNC_PROTO = 1, 2, 12, 13
    types = b"".join([
        struct.pack("<IIII", name("long"), info(INT), 8, (1 << 24) | 64),  # 1: signed 64-bit
        struct.pack("<III", 0, info(PTR), 0),                              # 2: void *
        struct.pack("<III", 0, info(FUNC_PROTO, 1), 1), struct.pack("<II", name("ctx"), 2),  # 3
        struct.pack("<III", name("dump"), info(FUNC), 3),                  # 4: static func
        struct.pack("<III", 0, info(FUNC_PROTO, 4), 1),                    # 5
        *(struct.pack("<II", name(arg), 2) for arg in ("map", "key", "value", "ctx")),
        struct.pack("<III", name("walk"), info(FUNC), 5),                  # 6: static func
    ])
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


_btf = {"fd": None, "error": None}


def _btf_fd() -> int:
    """One BTF object per process (the same for every walk)."""
    if _btf["error"] is not None:
        raise _btf["error"]
    if _btf["fd"] is None:
        blob = _btf_blob()
        buf = ct.create_string_buffer(blob, len(blob))
        try:
            _btf["fd"] = _sys_bpf(_BTF_LOAD, _BtfLoad(btf=ct.addressof(buf), btf_size=len(blob)), "BPF_BTF_LOAD")
        except OSError as exc:
            _btf["error"] = exc
            raise
    return _btf["fd"]


# -- the walk, in BPF instructions --------------------------------------------------------
def _insn(code, dst=0, src=0, off=0, imm=0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _ld_imm64(dst, src, imm) -> list[bytes]:
    return [_insn(0x18, dst, src, 0, imm), _insn(0, 0, 0, 0, 0)]


_SIZE_BITS = {8: 0x18, 4: 0x00, 2: 0x08, 1: 0x10}
_PSEUDO_MAP_FD, _PSEUDO_FUNC = 1, 4
R0, R1, R2, R3, R4, R7, R8, R9, R10 = 0, 1, 2, 3, 4, 7, 8, 9, 10


def _load(size, dst, src, off) -> bytes:
    return _insn(0x61 | _SIZE_BITS[size], dst, src, off)    # dst = *(size *)(src + off)


def _store(size, dst, src, off) -> bytes:
    return _insn(0x63 | _SIZE_BITS[size], dst, src, off)    # *(size *)(dst + off) = src


def _copy(dst_reg, dst_off, src_reg, nbytes) -> list[bytes]:
    """Copy nbytes in the widest loads the size allows (never past the end)."""
    out, at = [], 0
    while at < nbytes:
        size = next(s for s in (8, 4, 2, 1) if nbytes - at >= s)
        out += [_load(size, R1, src_reg, at), _store(size, dst_reg, R1, dst_off + at)]
        at += size
    return out


def program(source_fd: int, dest_fd: int, key_size: int, value_size: int, value_offset: int):
    """(instructions, index of the callback's first instruction).

    main: idx = 0; bpf_for_each_map_elem(source, walk, &idx, 0); return idx
    walk: slot = lookup(dest, &idx); if !slot { idx = FULL; stop }
          copy key to slot, value to slot + value_offset; idx++; continue
    """
    main = [_insn(0x7A, R10, 0, -8, 0)]                              # *(u64 *)(fp - 8) = 0
    main += _ld_imm64(R1, _PSEUDO_MAP_FD, source_fd)
    callback_ref = len(main)
    main += _ld_imm64(R2, _PSEUDO_FUNC, 0)                           # patched below
    main += [_insn(0xBF, R3, R10), _insn(0x07, R3, 0, 0, -8),        # r3 = fp - 8
             _insn(0xB7, R4, 0, 0, 0),
             _insn(0x85, 0, 0, 0, _HELPER_FOR_EACH),
             _load(8, R0, R10, -8),
             _insn(0x95)]
    start = len(main)
    main[callback_ref] = _insn(0x18, R2, _PSEUDO_FUNC, 0, start - callback_ref - 1)
    walk = [_insn(0xBF, R7, R2), _insn(0xBF, R8, R3), _insn(0xBF, R9, R4)]  # key, value, &idx
    walk += _ld_imm64(R1, _PSEUDO_MAP_FD, dest_fd)
    walk += [_insn(0xBF, R2, R9), _insn(0x85, 0, 0, 0, _HELPER_MAP_LOOKUP)]
    walk += [_insn(0x55, R0, 0, 3, 0),                               # slot? skip the stop
             _insn(0x7A, R9, 0, 0, -1),                              # idx = FULL (low 32 bits)
             _insn(0xB7, R0, 0, 0, 1), _insn(0x95)]                  # return 1: stop
    walk += _copy(R0, 0, R7, key_size) + _copy(R0, value_offset, R8, value_size)
    walk += [_load(8, R1, R9, 0), _insn(0x07, R1, 0, 0, 1), _store(8, R9, R1, 0),
             _insn(0xB7, R0, 0, 0, 0), _insn(0x95)]
    return b"".join(main + walk), start


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def dump(map_fd: int, kdt: np.dtype, vdt: np.dtype, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, values) of every entry of a hash, LRU hash or array map."""
    value_offset = _round8(kdt.itemsize)
    record = value_offset + _round8(vdt.itemsize)
    capacity = max(int(capacity), 1)
    btf_fd = _btf_fd()
    dest = _sys_bpf(_MAP_CREATE, _MapCreate(map_type=_MAP_TYPE_ARRAY, key_size=4, value_size=record,
                                            max_entries=capacity, map_flags=_F_MMAPABLE,
                                            map_name=b"bpfnb_dump"), "creating the dump array")
    prog = -1
    try:
        code, start = program(map_fd, dest, kdt.itemsize, vdt.itemsize, value_offset)
        insns = ct.create_string_buffer(code, len(code))
        license_ = ct.create_string_buffer(b"GPL")
        func_info = (ct.c_uint32 * 4)(0, 4, start, 6)   # (instruction, BTF func id) pairs
        prog = _sys_bpf(_PROG_LOAD, _ProgLoad(
            prog_type=_PROG_TYPE_RAW_TRACEPOINT, insn_cnt=len(code) // 8, insns=ct.addressof(insns),
            license=ct.addressof(license_), prog_name=b"bpfnb_dump", prog_btf_fd=btf_fd,
            func_info_rec_size=8, func_info=ct.addressof(func_info), func_info_cnt=2), "loading the map walk")
        run = _TestRun(prog_fd=prog)
        _sys_bpf(_PROG_TEST_RUN, run, "running the map walk")
        if run.retval == _FULL:
            raise OSError(errno.EOVERFLOW, f"the map holds more than its {capacity} max_entries")
        length = (capacity * record + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
        mapping = mmap.mmap(dest, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        if prog >= 0:
            os.close(prog)
        os.close(dest)   # the mapping keeps the array alive until the views are gone
    layout = np.dtype({"names": ["k", "v"], "formats": [kdt, vdt], "offsets": [0, value_offset],
                       "itemsize": record})
    records = np.frombuffer(mapping, dtype=layout, count=int(run.retval))
    return records["k"], records["v"]


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Whether this kernel runs the walk (tried once, for real, on a 4-entry array)."""
    try:
        source = _sys_bpf(_MAP_CREATE, _MapCreate(map_type=_MAP_TYPE_ARRAY, key_size=4, value_size=8,
                                                  max_entries=4, map_name=b"bpfnb_probe"), "probe map")
    except OSError:
        return False
    try:
        keys, _values = dump(source, np.dtype(np.uint32), np.dtype(np.uint64), 4)
        return keys.tolist() == [0, 1, 2, 3]
    except OSError:
        return False
    finally:
        os.close(source)
