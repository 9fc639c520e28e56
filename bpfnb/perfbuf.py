"""BPF perf output buffers (BPF_PERF_OUTPUT) read by mmap and decoded in bulk.

bcc's reader calls back into Python for every sample, and wakes the
reader for every sample too: on this VM the wake-ups alone hold a traced
process that calls getppid() to 0.14 M calls/s. Here each online CPU gets
a perf event opened by us (PERF_COUNT_SW_BPF_OUTPUT, raw samples, a wake-up
every `wakeup_events` samples), installed in the program's perf event
array; its buffer is mapped and read like the ring buffers of ringbuf.py:

    header page   data_head (written by the kernel), data_tail (by us)
    data area     records: u32 type, u16 misc, u16 size, then for a sample
                  (type 9) a u32 raw size and the raw bytes, padded so the
                  record is a multiple of 8; a lost record (type 2) holds
                  u64 id, u64 lost

Samples of the event struct's size are a strided array: every header is
checked at once and the payloads copied out in one operation. Lost
records, samples of another size and the record that wraps at the end of
the area go through a record-by-record scan.
"""

from __future__ import annotations

import ctypes as ct
import errno
import mmap
import os
import platform

import numpy as np

from .errors import PrivilegeError, SetupError

PAGE = mmap.PAGESIZE
SAMPLE, LOST = 9, 2                     # perf record types
_HEADER = 8                             # u32 type, u16 misc, u16 size
_PERF_TYPE_SOFTWARE, _PERF_COUNT_SW_BPF_OUTPUT, _PERF_SAMPLE_RAW = 1, 10, 1 << 10
_PERF_FLAG_FD_CLOEXEC = 1 << 3
_HEAD, _TAIL, _DATA_OFFSET, _DATA_SIZE = 1024 // 8, 1032 // 8, 1040 // 8, 1048 // 8  # u64 slots


class _PerfEventAttr(ct.Structure):
    _fields_ = [("type", ct.c_uint32), ("size", ct.c_uint32), ("config", ct.c_uint64),
                ("sample_period", ct.c_uint64), ("sample_type", ct.c_uint64), ("read_format", ct.c_uint64),
                ("flags", ct.c_uint64), ("wakeup_events", ct.c_uint32), ("bp_type", ct.c_uint32),
                ("config1", ct.c_uint64), ("config2", ct.c_uint64)]


_FIXES = {
    errno.EACCES: "run as root, or give the Python binary CAP_PERFMON (see README: your own machine)",
    errno.EPERM: "run as root, or give the Python binary CAP_PERFMON (see README: your own machine)",
    errno.EMFILE: "this process has too many files open: raise `ulimit -n`, or close finished Programs",
    errno.ENOMEM: "not enough locked memory for the buffers: pass buffer_pages= smaller, or raise `ulimit -l`",
}


def _open_bpf_output(cpu: int, wakeup_events: int) -> int:
    from .system import SYSCALL_NUMBERS, libc

    number = SYSCALL_NUMBERS.get("perf_event_open")
    if number is None:
        raise SetupError(f"perf buffers: perf_event_open is not known on {platform.machine()}; "
                         "use BPF_RINGBUF_OUTPUT (ring buffers) instead")
    attr = _PerfEventAttr(type=_PERF_TYPE_SOFTWARE, size=ct.sizeof(_PerfEventAttr),
                          config=_PERF_COUNT_SW_BPF_OUTPUT, sample_period=1, sample_type=_PERF_SAMPLE_RAW,
                          wakeup_events=max(1, int(wakeup_events)))
    fd = libc().syscall(number, ct.byref(attr), -1, cpu, -1, _PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ct.get_errno()
        fix = _FIXES.get(err, "see `bpfnb doctor`")
        error = PrivilegeError if err in (errno.EACCES, errno.EPERM) else SetupError
        raise error(f"could not open the perf buffer for CPU {cpu}: {os.strerror(err)}; {fix}")
    return int(fd)


def sample_stride(record_len: int) -> int:
    """Bytes a sample of record_len raw bytes takes: header, u32 size, data, padding."""
    return _HEADER + (record_len + 4 + 7) // 8 * 8


class _CpuBuffer:
    """One CPU's perf buffer: the event fd and its mapping."""

    def __init__(self, cpu: int, pages: int, wakeup_events: int):
        self.cpu = cpu
        self.fd = _open_bpf_output(cpu, wakeup_events)
        try:
            self._map = mmap.mmap(self.fd, (pages + 1) * PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            os.close(self.fd)
            raise SetupError(
                f"could not map a {pages}-page perf buffer for CPU {cpu}: {exc.strerror}; pass a smaller "
                "buffer_pages=, or (not root) raise /proc/sys/kernel/perf_event_mlock_kb") from None
        except BaseException:
            os.close(self.fd)
            raise
        self._meta = np.frombuffer(self._map, dtype=np.uint64, count=PAGE // 8)
        offset = int(self._meta[_DATA_OFFSET]) or PAGE     # kernels before 4.1 leave these 0
        self.size = int(self._meta[_DATA_SIZE]) or pages * PAGE
        self.data = np.frombuffer(self._map, dtype=np.uint8, count=self.size, offset=offset)

    @property
    def head(self) -> int:
        return int(self._meta[_HEAD])

    @property
    def tail(self) -> int:
        return int(self._meta[_TAIL])

    def release(self, position: int) -> None:
        self._meta[_TAIL] = position

    def pending(self, head: int) -> np.ndarray:
        """The bytes between tail and head, unwrapped (a view when they do not wrap)."""
        tail = self.tail
        start, n = tail % self.size, head - tail
        if start + n <= self.size:
            return self.data[start: start + n]
        return np.concatenate([self.data[start:], self.data[: n - (self.size - start)]])

    def close(self) -> None:
        if self._map.closed:
            return
        del self._meta, self.data
        self._map.close()
        os.close(self.fd)


class SampleDecoder:
    """Perf records (bytes between a buffer's tail and head) -> event arrays and a lost count."""

    def __init__(self, record_dtype: np.dtype):
        self.dtype = np.dtype(record_dtype)
        self.record_len = self.dtype.itemsize
        self.stride = sample_stride(self.record_len)
        self.other_sizes = 0          # samples of another size (zero-padded or cut)
        self._framed = np.dtype({
            "names": ["type", "size", "raw_size", "payload"],
            "formats": [np.uint32, np.uint16, np.uint32, self.dtype],
            "offsets": [0, 6, 8, 12],
            "itemsize": self.stride,
        })
        self._raw_size = self.stride - _HEADER - 4

    def decode(self, raw: np.ndarray) -> tuple[list[np.ndarray], int]:
        """(payload arrays in order, samples the kernel reported lost)."""
        out: list[np.ndarray] = []
        lost = 0
        at, end = 0, len(raw)
        while at < end:
            fits = (end - at) // self.stride
            if fits:
                view = np.ndarray((fits,), dtype=self._framed, buffer=raw, offset=at)
                good = ((view["type"] == SAMPLE) & (view["size"] == self.stride)
                        & (view["raw_size"] == self._raw_size))
                n_good = fits if good.all() else int(np.argmin(good))
                if n_good:
                    out.append(view["payload"][:n_good].copy())
                    at += n_good * self.stride
                    continue
            at, lost_here = self._one_record(raw, at, out)
            lost += lost_here
        return out, lost

    def _one_record(self, raw: np.ndarray, at: int, out: list[np.ndarray]) -> tuple[int, int]:
        """The record at `at` (lost, or a sample of another size): (next offset, lost)."""
        rtype, size = int(raw[at: at + 4].view(np.uint32)[0]), int(raw[at + 6: at + 8].view(np.uint16)[0])
        if size < _HEADER or at + size > len(raw):   # never from a sane kernel: say so, lose nothing silently
            raise RuntimeError(f"corrupt perf record (type {rtype}, size {size}) at byte {at} of {len(raw)}")
        if rtype == LOST and size >= _HEADER + 16:
            return at + size, int(raw[at + 16: at + 24].view(np.uint64)[0])
        if rtype == SAMPLE and size >= _HEADER + 4:
            length = min(int(raw[at + 8: at + 12].view(np.uint32)[0]), size - _HEADER - 4)
            record = np.zeros(1, dtype=self.dtype)
            n = min(length, self.record_len)
            record.view(np.uint8)[:n] = raw[at + 12: at + 12 + n]
            self.other_sizes += 1
            out.append(record)
        return at + size, 0


class PerfOutputReader:
    """Every online CPU's buffer of one BPF_PERF_OUTPUT table, read in bulk."""

    def __init__(self, table, record_dtype: np.dtype, pages: int, *, wakeup_events: int = 256,
                 lost_callback=None):
        from bcc.utils import get_online_cpus

        if pages & (pages - 1):
            raise ValueError(f"perf buffer pages must be a power of two, not {pages}")
        self.table = table
        self.decoder = SampleDecoder(record_dtype)
        self.lost_callback = lost_callback   # called with each LOST record's count
        self.buffers: list[_CpuBuffer] = []
        try:
            for cpu in get_online_cpus():
                buffer = _CpuBuffer(cpu, pages, wakeup_events)
                self.buffers.append(buffer)
                table[table.Key(cpu)] = table.Leaf(buffer.fd)
        except BaseException:
            self.close()
            raise

    @property
    def fds(self) -> list[int]:
        return [b.fd for b in self.buffers]

    def pending_bytes(self) -> int:
        return sum(b.head - b.tail for b in self.buffers)

    def read(self) -> list[np.ndarray]:
        """Consume every record now in every CPU's buffer; returns payload arrays."""
        out: list[np.ndarray] = []
        for buffer in self.buffers:
            head = buffer.head   # read once: what is decoded is exactly what is released
            if head != buffer.tail:
                blocks, lost = self.decoder.decode(buffer.pending(head))
                buffer.release(head)
                out += blocks
                if lost and self.lost_callback is not None:
                    self.lost_callback(lost)
        return out

    def close(self) -> None:
        """Take the buffers out of the table and free them (idempotent)."""
        from bcc.libbcc import lib

        for buffer in self.buffers:
            key = ct.c_int(buffer.cpu)
            lib.bpf_delete_elem(self.table.map_fd, ct.byref(key))
            buffer.close()
        self.buffers = []

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
