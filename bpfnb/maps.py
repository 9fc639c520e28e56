"""Read BPF maps into numpy arrays in bulk.

BPF_MAP_LOOKUP_BATCH fills whole key and value arrays in a few syscalls,
with no Python object per entry; maps or kernels without batch support
fall back to bcc's iteration. Per-CPU values come back as one slot per
possible CPU, each rounded up to 8 bytes, as the kernel lays them out.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os

import numpy as np

from .frames.structs import dtype_of

# bcc's map type ids (linux/bpf.h)
HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY = 1, 2, 5, 6
PERF_EVENT_ARRAY, STACK_TRACE, LRU_HASH, LRU_PERCPU_HASH, RINGBUF = 4, 7, 9, 10, 27
PER_CPU = {PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH}
SNAPSHOT_TYPES = {HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH}
ENOTSUPP = 524  # the kernel's internal 'not supported', seen by user space
BATCH_TYPES = {HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH}


def possible_cpus() -> int:
    from bcc.utils import get_possible_cpus

    return len(get_possible_cpus())


def table_type(table) -> int:
    return int(table.ttype)


def key_dtype(table) -> np.dtype:
    return dtype_of(table.Key)


def value_dtype(table) -> np.dtype:
    """The dtype of one CPU's value (bcc keeps it as sLeaf for per-CPU maps)."""
    return dtype_of(getattr(table, "sLeaf", table.Leaf))


def read_table(table, per_cpu_layout: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(keys, values) of every entry; per-CPU values have shape (n, ncpu)."""
    kdt, vdt = key_dtype(table), value_dtype(table)
    ttype = table_type(table)
    ncpu = possible_cpus() if ttype in PER_CPU else 0
    if ttype in BATCH_TYPES:
        try:
            return _read_batch(table, kdt, vdt, ncpu)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS, ENOTSUPP):
                raise
    return _read_iter(table, kdt, vdt, ncpu)


def _value_row_dtype(vdt: np.dtype, ncpu: int) -> np.dtype:
    if not ncpu:
        return vdt
    slot = (vdt.itemsize + 7) // 8 * 8
    padded = np.dtype({"names": ["v"], "formats": [vdt], "offsets": [0], "itemsize": slot})
    return np.dtype((padded, (ncpu,)))


def _read_batch(table, kdt, vdt, ncpu):
    from bcc.libbcc import lib

    capacity = max(int(table.max_entries), 1)
    row = _value_row_dtype(vdt, ncpu)
    keys = np.zeros(capacity, dtype=kdt)
    values = np.zeros(capacity, dtype=row)
    token_size = max(kdt.itemsize, 8)
    in_batch = ct.create_string_buffer(token_size)
    out_batch = ct.create_string_buffer(token_size)
    count = ct.c_uint32(0)
    total = 0
    first = True
    while total < capacity:
        count.value = capacity - total
        res = lib.bpf_lookup_batch(
            table.map_fd,
            None if first else ct.cast(in_batch, ct.POINTER(ct.c_uint32)),
            ct.cast(out_batch, ct.POINTER(ct.c_uint32)),
            ct.c_void_p(keys.ctypes.data + total * kdt.itemsize),
            ct.c_void_p(values.ctypes.data + total * row.itemsize),
            ct.byref(count),
        )
        err = ct.get_errno()
        total += count.value
        if res != 0:
            if err == errno.ENOENT:
                break
            if err == errno.ENOSPC and first and count.value == 0:
                # a bucket larger than the buffer; cannot happen with capacity=max_entries
                break
            raise OSError(err, f"BPF_MAP_LOOKUP_BATCH: {os.strerror(err)}")
        if count.value == 0:
            break
        ct.memmove(in_batch, out_batch, token_size)
        first = False
    keys, values = keys[:total], values[:total]
    if ncpu:
        values = values["v"]
    return keys, values


def _read_iter(table, kdt, vdt, ncpu):
    items = table.items()
    n = len(items)
    keys = np.zeros(n, dtype=kdt)
    raw_keys = keys.view(np.uint8).reshape(n, kdt.itemsize) if n else None
    if ncpu:
        values = np.zeros((n, ncpu), dtype=vdt)
    else:
        values = np.zeros(n, dtype=vdt)
    for i, (k, v) in enumerate(items):
        raw_keys[i] = np.frombuffer(bytes(k), dtype=np.uint8, count=kdt.itemsize)
        if ncpu:
            for cpu in range(ncpu):
                values[i, cpu] = _as_value(v[cpu], vdt)
        else:
            values[i] = _as_value(v, vdt)
    return keys, values


def _as_value(value, dtype: np.dtype):
    """One bcc value (a ctypes object, or a plain int for per-CPU scalars) as a numpy scalar."""
    if isinstance(value, int):
        return np.array(value).astype(dtype)
    return np.frombuffer(bytes(value), dtype=dtype, count=1)[0]


def sum_per_cpu(values: np.ndarray) -> np.ndarray:
    """Sum (n, ncpu) per-CPU values field by field into (n,)."""
    if values.ndim == 1:
        return values
    if values.dtype.names is None:
        return values.sum(axis=1).astype(values.dtype)
    out = np.zeros(len(values), dtype=values.dtype)
    for name in values.dtype.names:
        field = values[name]
        if field.dtype.kind in "iuf":
            out[name] = field.sum(axis=1).astype(field.dtype)
        else:
            out[name] = field[:, 0]
    return out


def read_stack(stack_table, stack_id: int) -> list[int]:
    """Addresses of one stack, leaf first; [] when the id is an error code."""
    if stack_id < 0:
        return []
    try:
        return [addr for addr in stack_table.walk(stack_id)]
    except KeyError:
        return []
