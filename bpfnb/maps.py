"""Read BPF maps into numpy arrays in bulk.

Large hash and array maps are walked inside the kernel (bpfnb.mapdump)
and read through a mapping; other maps go through BPF_MAP_LOOKUP_BATCH,
which fills whole key and value arrays in a few syscalls, with no Python
object per entry; maps or kernels without batch support fall back to
bcc's iteration. Per-CPU values come back as one slot per
possible CPU, each rounded up to 8 bytes, as the kernel lays them out.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os

import numpy as np

from . import mapdump
from .frames.structs import dtype_of

# bcc's map type ids (linux/bpf.h)
HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY = 1, 2, 5, 6
PERF_EVENT_ARRAY, STACK_TRACE, LRU_HASH, LRU_PERCPU_HASH, RINGBUF = 4, 7, 9, 10, 27
PER_CPU = {PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH}
SNAPSHOT_TYPES = {HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH}
ENOTSUPP = 524  # the kernel's internal 'not supported', seen by user space
HASH_FAMILY = {HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH}
PARALLEL_MIN_ENTRIES = 1 << 17     # below this one walk is fast enough
PARALLEL_CHUNK = 1 << 16           # entries per call in the two-thread walk
BATCH_TYPES = {HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH}
DUMP_TYPES = {HASH, ARRAY, LRU_HASH}   # not per-CPU: an in-kernel walk sees one CPU's values


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
    if _walkable(table, ttype):
        try:
            return mapdump.dump(table.map_fd, kdt, vdt, int(table.max_entries))
        except OSError:
            pass  # an older kernel, or no room: the batch read below gives the same answer
    if ttype in BATCH_TYPES:
        try:
            return _read_batch(table, kdt, vdt, ncpu)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS, ENOTSUPP):
                raise
    return _read_iter(table, kdt, vdt, ncpu)


def _walkable(table, ttype: int) -> bool:
    """Whether bpfnb.mapdump may read this map.

    The in-kernel walk reads a hash map without its bucket locks, as a BPF
    program does; a preallocated entry deleted and re-used for another key
    while it is copied could come out torn. So hash maps are walked only
    while no probe of their program is attached (a capture's final
    snapshot, taken after detaching); batch reads lock each bucket.
    """
    if ttype not in DUMP_TYPES:
        return False
    if not mapdump.DUMP_MIN_ENTRIES <= int(table.max_entries) <= mapdump.DUMP_MAX_ENTRIES:
        return False
    if ttype == ARRAY:
        return True   # array slots are never re-used for other keys
    from .program import probes_attached

    bpf = getattr(table, "bpf", None)
    return bpf is not None and not probes_attached(bpf)


def _value_row_dtype(vdt: np.dtype, ncpu: int) -> np.dtype:
    if not ncpu:
        return vdt
    slot = (vdt.itemsize + 7) // 8 * 8
    padded = np.dtype({"names": ["v"], "formats": [vdt], "offsets": [0], "itemsize": slot})
    return np.dtype((padded, (ncpu,)))


def _read_batch(table, kdt, vdt, ncpu):
    capacity = max(int(table.max_entries), 1)
    row = _value_row_dtype(vdt, ncpu)
    parallel = (table_type(table) in HASH_FAMILY and capacity >= PARALLEL_MIN_ENTRIES
                and (os.cpu_count() or 1) >= 2)
    keys, values = (_read_hash_halves if parallel else _read_range)(table.map_fd, kdt, row, capacity)
    if ncpu:
        values = values["v"]
    return keys, values


class _Range:
    """One BPF_MAP_LOOKUP_BATCH walk: from a start token until a stop token."""

    def __init__(self, fd, kdt, row, capacity, start=None, stop=None, chunk=None, keys=None, values=None):
        self.fd, self.kdt, self.row = fd, kdt, row
        # the arrays to fill (views into a caller's larger arrays, or our own)
        self.keys = np.zeros(capacity, dtype=kdt) if keys is None else keys
        self.values = np.zeros(capacity, dtype=row) if values is None else values
        self.start, self.stop = start, stop
        self.chunk = chunk or capacity
        self.total = 0
        self.last_call_start = 0     # index of the first entry the last call returned
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            self._walk()
        except OSError as exc:
            self.error = exc

    def _walk(self) -> None:
        from bcc.libbcc import lib

        tok_in, tok_out = ct.c_uint64(self.start or 0), ct.c_uint64(0)
        as_u32p = ct.POINTER(ct.c_uint32)
        count = ct.c_uint32(0)
        chunk = self.chunk
        capacity = len(self.keys)
        first = self.start is None
        while self.total < capacity:
            count.value = min(chunk, capacity - self.total)
            res = lib.bpf_lookup_batch(
                self.fd,
                None if first else ct.cast(ct.pointer(tok_in), as_u32p),
                ct.cast(ct.pointer(tok_out), as_u32p),
                ct.c_void_p(self.keys.ctypes.data + self.total * self.kdt.itemsize),
                ct.c_void_p(self.values.ctypes.data + self.total * self.row.itemsize),
                ct.byref(count),
            )
            err = ct.get_errno()
            if count.value:
                self.last_call_start = self.total
                self.total += count.value
            if res != 0:
                if err == errno.ENOENT:
                    return
                if err == errno.ENOSPC and count.value == 0 and chunk < capacity:
                    chunk *= 2  # one bucket holds more entries than we asked for
                    continue
                raise OSError(err, f"BPF_MAP_LOOKUP_BATCH: {os.strerror(err)}")
            if count.value == 0:
                return
            tok_in.value = tok_out.value
            first = False
            if self.stop is not None and tok_in.value >= self.stop:
                return

    def result(self):
        if self.error is not None:
            raise self.error
        return self.keys[: self.total], self.values[: self.total]


def _read_range(fd, kdt, row, capacity):
    walk = _Range(fd, kdt, row, capacity)
    walk.run()
    return walk.result()


def _read_hash_halves(fd, kdt, row, capacity):
    """Read a large hash map in two threads, each walking half of its buckets.

    A hash map's batch token is a bucket index (the kernel has
    roundup_pow_of_two(max_entries) buckets), so the second walk starts at
    the middle bucket. The first walk's last call may run past the middle;
    the entries it read there are, in the same order, the start of what the
    second walk read: they are found by key (keys are unique), checked
    byte for byte, and dropped once. Anything unexpected (the map changed
    under us) falls back to one sequential walk.
    """
    import threading

    middle = 1 << (capacity - 1).bit_length() - 1
    # one allocation: the first walk fills the front half, the second the back half
    keys = np.empty(2 * capacity, dtype=kdt)
    values = np.empty(2 * capacity, dtype=row)
    first = _Range(fd, kdt, row, capacity, stop=middle, chunk=PARALLEL_CHUNK,
                   keys=keys[:capacity], values=values[:capacity])
    second = _Range(fd, kdt, row, capacity, start=middle, chunk=PARALLEL_CHUNK,
                    keys=keys[capacity:], values=values[capacity:])
    threads = [threading.Thread(target=walk.run) for walk in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    k1, v1 = first.result()
    k2, v2 = second.result()
    overlap = _overlap(k1[first.last_call_start:], k2)
    if overlap is None:
        return _read_range(fd, kdt, row, capacity)
    keep = len(k1) - overlap
    end = keep + len(k2)
    keys[keep:end] = k2      # move the back half down, in place
    values[keep:end] = v2
    return keys[:end], values[:end]


def _overlap(tail: np.ndarray, following: np.ndarray) -> int | None:
    """How many entries at the end of `tail` start `following` (None: inconsistent)."""
    if not len(tail) or not len(following):
        return 0
    width = tail.dtype.itemsize
    tail_rows = np.ascontiguousarray(tail).view(np.uint8).reshape(len(tail), width)
    head = np.ascontiguousarray(following[:1]).view(np.uint8).reshape(width)
    hits = np.flatnonzero((tail_rows == head).all(axis=1))
    if not len(hits):
        return 0
    n = len(tail) - int(hits[0])
    if n > len(following):
        return None
    same = np.ascontiguousarray(following[:n]).view(np.uint8).reshape(n, width)
    return n if np.array_equal(tail_rows[-n:], same) else None


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
