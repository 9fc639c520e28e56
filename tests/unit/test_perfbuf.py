"""The perf record decoder on hand-built records (no kernel)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bpfnb.perfbuf import LOST, SAMPLE, SampleDecoder, sample_stride

EVENT = np.dtype({"names": ["seq", "pid"], "formats": ["<u8", "<u4"], "offsets": [0, 8], "itemsize": 16})


def sample(seq: int, pid: int, length: int = 16) -> bytes:
    """A PERF_RECORD_SAMPLE as the kernel writes it: raw size padded so the record is 8-aligned."""
    payload = struct.pack("<QI4x", seq, pid)[:length]
    raw_size = (length + 4 + 7) // 8 * 8 - 4
    size = 8 + 4 + raw_size
    return struct.pack("<IHHI", SAMPLE, 0, size, raw_size) + payload.ljust(raw_size, b"\0")


def lost(n: int) -> bytes:
    return struct.pack("<IHHQQ", LOST, 0, 24, 7, n)


def decode(*records: bytes):
    decoder = SampleDecoder(EVENT)
    blocks, n_lost = decoder.decode(np.frombuffer(b"".join(records), dtype=np.uint8))
    events = np.concatenate([b.view(np.uint8) for b in blocks]).view(EVENT) if blocks else np.zeros(0, EVENT)
    return events, n_lost, decoder


def test_the_stride_matches_what_the_kernel_writes():
    assert len(sample(1, 2)) == sample_stride(16) == 32
    assert sample_stride(13) == 32 and sample_stride(12) == 24


def test_samples_lost_records_and_short_samples_in_one_stream():
    events, n_lost, decoder = decode(sample(0, 10), sample(1, 11), sample(2, 12), lost(5),
                                     sample(3, 13, length=8), sample(4, 14), sample(5, 15))
    assert events["seq"].tolist() == [0, 1, 2, 3, 4, 5]
    assert events["pid"].tolist() == [10, 11, 12, 0, 14, 15]   # the short sample is zero-padded
    assert n_lost == 5
    assert decoder.other_sizes == 1


def test_a_long_run_is_decoded_in_one_block():
    blocks, n_lost = SampleDecoder(EVENT).decode(
        np.frombuffer(b"".join(sample(i, i * 2) for i in range(1000)), dtype=np.uint8))
    assert len(blocks) == 1 and n_lost == 0
    assert (blocks[0]["seq"] == np.arange(1000)).all() and (blocks[0]["pid"] == np.arange(1000) * 2).all()


def test_nothing_to_read():
    events, n_lost, _ = decode()
    assert len(events) == 0 and n_lost == 0


def test_a_corrupt_record_is_an_error_not_a_silent_gap():
    broken = struct.pack("<IHH", SAMPLE, 0, 0) + b"\0" * 24
    with pytest.raises(RuntimeError, match="corrupt perf record"):
        decode(sample(0, 1), broken)
