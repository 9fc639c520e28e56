"""A BPF ring buffer consumer that decodes records in bulk with numpy.

The kernel exposes a ring buffer map through mmap:

    offset 0          one page, read-write: the consumer position
    offset PAGE       one page, read-only: the producer position
    offset 2 * PAGE   the data area, read-only, mapped twice in a row so
                      that a record never wraps at the end

Each record is an 8-byte header (u32 length with a BUSY bit 31 and a
DISCARD bit 30, u32 page offset) followed by the payload, padded to 8
bytes. With fixed-size records the area between the consumer and producer
positions is a strided array: we view it through a structured dtype
(header + payload), check every header at once, copy the payloads out in
one operation and advance the consumer position. A busy header (a record
still being written) ends the batch; discarded records and records of
another size fall back to a record-by-record scan.
"""

from __future__ import annotations

import mmap

import numpy as np

BUSY = np.uint32(1 << 31)
DISCARD = np.uint32(1 << 30)
HEADER = 8
PAGE = mmap.PAGESIZE


def _round8(n: int) -> int:
    return (n + 7) & ~7


class RingBufferReader:
    """Reads one BPF_MAP_TYPE_RINGBUF map by mmap; see the module docstring."""

    def __init__(self, map_fd: int, max_entries: int, record_dtype: np.dtype):
        if max_entries & (max_entries - 1) or max_entries % PAGE:
            raise ValueError(f"ring buffer size {max_entries} is not a power-of-two multiple of the page size")
        self.fd = map_fd
        self.size = max_entries
        self.mask = max_entries - 1
        self.dtype = np.dtype(record_dtype)
        self.record_len = self.dtype.itemsize
        self.stride = _round8(self.record_len + HEADER)
        self._consumer_map = mmap.mmap(map_fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._data_map = mmap.mmap(map_fd, PAGE + 2 * max_entries, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)
        self._consumer = np.frombuffer(self._consumer_map, dtype=np.uint64, count=1)
        self._producer = np.frombuffer(self._data_map, dtype=np.uint64, count=1)
        self._data = np.frombuffer(self._data_map, dtype=np.uint8, offset=PAGE)
        self._framed = np.dtype({
            "names": ["len", "payload"],
            "formats": [np.uint32, self.dtype],
            "offsets": [0, HEADER],
            "itemsize": self.stride,
        })
        self.discarded = 0
        self.short_records = 0

    # -- positions -------------------------------------------------------------------
    @property
    def consumer_pos(self) -> int:
        return int(self._consumer[0])

    @property
    def producer_pos(self) -> int:
        return int(self._producer[0])

    def pending_bytes(self) -> int:
        return self.producer_pos - self.consumer_pos

    # -- reading -------------------------------------------------------------------------
    def read(self, max_records: int | None = None) -> list[np.ndarray]:
        """Consume every complete record now in the buffer; returns payload arrays."""
        out: list[np.ndarray] = []
        cons = self.consumer_pos
        prod = self.producer_pos
        taken = 0
        while cons < prod and (max_records is None or taken < max_records):
            start = cons & self.mask
            fits = min((prod - cons) // self.stride, self.size // self.stride)
            if max_records is not None:
                fits = min(fits, max_records - taken)
            if fits:
                view = np.ndarray((fits,), dtype=self._framed, buffer=self._data, offset=start)
                lens = view["len"]
                good = lens == np.uint32(self.record_len)
                n_good = fits if good.all() else int(np.argmin(good))
                if n_good:
                    out.append(view["payload"][:n_good].copy())
                    cons += n_good * self.stride
                    taken += n_good
                    self._consumer[0] = cons  # release the space as soon as it is copied
                    continue
            # the record at `cons` is busy, discarded, or of another size
            header = int(np.frombuffer(self._data, dtype=np.uint32, count=1, offset=start)[0])
            if header & int(BUSY):
                break
            length = header & ~(int(BUSY) | int(DISCARD))
            if header & int(DISCARD):
                self.discarded += 1
            else:
                out.append(self._one_record(start, length))
                taken += 1
            cons += _round8(length + HEADER)
            self._consumer[0] = cons
        return out

    def _one_record(self, start: int, length: int) -> np.ndarray:
        """A record of another size: zero-padded or cut to the struct's size."""
        record = np.zeros(1, dtype=self.dtype)
        n = min(length, self.record_len)
        if length < self.record_len:
            self.short_records += 1
        record.view(np.uint8)[:n] = self._data[start + HEADER: start + HEADER + n]
        return record

    def close(self) -> None:
        if self._data_map.closed:
            return
        del self._consumer, self._producer, self._data
        self._consumer_map.close()
        self._data_map.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
