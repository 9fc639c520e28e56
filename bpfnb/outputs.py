"""Event outputs: record layouts, sinks that copy records into numpy chunks,
and the rewrite that makes every failed submission countable.

Ring buffers report no drops at all: a failed `ringbuf_output` or
`ringbuf_reserve` is only visible to the BPF program. Perf buffers report
drops through lost records, but only for a full buffer, and a drop that
happens as the capture ends may never get its record. bpfnb therefore
rewrites each `NAME.ringbuf_output(...)`, `NAME.ringbuf_reserve(...)` and
`NAME.perf_submit(...)` call in the user's C (on the same line, so clang's
line numbers stay the user's) into a statement expression that counts
failures in a per-CPU array, one slot per output. Nothing to do for the
user: `Trace.lost[NAME]` reports them (for perf outputs, the larger of this
count and the kernel's lost records).
"""

from __future__ import annotations

import ctypes as ct
import re

import numpy as np

from .errors import BpfnbError
from .frames.structs import dtype_of
from .perfbuf import sample_stride

LOST_MAP = "bpfnb_lost"
_RB_CALL = re.compile(r"\b(\w+)\s*\.\s*(ringbuf_output|ringbuf_reserve|perf_submit|perf_submit_skb)\s*\(")


def _matching_paren(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    raise BpfnbError("unbalanced parentheses in a ringbuf call; check the C source")


def rewrite_output_calls(source: str) -> tuple[str, dict[str, int]]:
    """(rewritten source, {output name: lost-counter slot})."""
    slots: dict[str, int] = {}
    out, pos = [], 0
    for m in _RB_CALL.finditer(source):
        if m.start() < pos:
            continue  # nested inside a call we already rewrote
        name, method = m.group(1), m.group(2)
        close = _matching_paren(source, m.end() - 1)
        call = source[m.start(): close + 1]
        slot = slots.setdefault(name, len(slots))
        count = (f"{{ int __bpfnb_k = {slot}; u64 *__bpfnb_c = {LOST_MAP}.lookup(&__bpfnb_k); "
                 f"if (__bpfnb_c) *__bpfnb_c += 1; }}")
        if method != "ringbuf_reserve":  # these return 0 or a negative errno
            new = f"({{ int __bpfnb_r = {call}; if (__bpfnb_r < 0) {count} __bpfnb_r; }})"
        else:
            new = f"({{ void *__bpfnb_p = {call}; if (!__bpfnb_p) {count} __bpfnb_p; }})"
        out.append(source[pos: m.start()])
        out.append(new)
        pos = close + 1
    out.append(source[pos:])
    return "".join(out), slots


# -- record layout -------------------------------------------------------------------
_CTYPES = {
    "char": ct.c_char, "s8": ct.c_byte, "__s8": ct.c_byte, "signed char": ct.c_byte,
    "unsigned char": ct.c_ubyte, "u8": ct.c_ubyte, "__u8": ct.c_ubyte, "_Bool": ct.c_bool, "bool": ct.c_bool,
    "short": ct.c_short, "s16": ct.c_short, "__s16": ct.c_short,
    "unsigned short": ct.c_ushort, "u16": ct.c_ushort, "__u16": ct.c_ushort,
    "int": ct.c_int, "s32": ct.c_int, "__s32": ct.c_int, "enum": ct.c_int,
    "unsigned int": ct.c_uint, "u32": ct.c_uint, "__u32": ct.c_uint,
    "long": ct.c_long, "unsigned long": ct.c_ulong,
    "long long": ct.c_longlong, "s64": ct.c_longlong, "__s64": ct.c_longlong,
    "unsigned long long": ct.c_ulonglong, "u64": ct.c_ulonglong, "__u64": ct.c_ulonglong,
    "__int128": ct.c_longlong * 2, "unsigned __int128": ct.c_ulonglong * 2,
    "void *": ct.c_void_p, "char *": ct.c_void_p, "u8 *": ct.c_void_p,
    "float": ct.c_float, "double": ct.c_double,
}
_ARRAY = re.compile(r"^(.*?) ?((?:\[\d+\])+)$")


def _field_ctype(type_name: str):
    type_name = type_name.strip()
    m = _ARRAY.match(type_name)
    if m:
        base = _field_ctype(m.group(1))
        for dim in reversed([int(d) for d in re.findall(r"\[(\d+)\]", m.group(2))]):
            base = base * dim
        return base
    if type_name.startswith("enum "):
        return ct.c_int
    if type_name.endswith("*"):
        return ct.c_void_p
    return _CTYPES.get(type_name)


def event_ctype(bpf, name: str):
    """The ctypes Structure of the records an output carries, or None if unknown.

    bcc records the struct passed to perf_submit/ringbuf_output; we map its
    fields ourselves (bcc's own mapping exits the process on unknown types).
    """
    from bcc.libbcc import lib

    count = lib.bpf_perf_event_fields(bpf.module, name.encode())
    if count <= 0:
        return None
    fields = []
    for i in range(count):
        spec = lib.bpf_perf_event_field(bpf.module, name.encode(), i).decode()
        field_name, _, type_name = spec.partition("#")
        ctype = _field_ctype(type_name)
        if ctype is None:
            raise BpfnbError(
                f"output {name!r}: field {field_name!r} has type {type_name!r}, which bpfnb cannot "
                "decode. Use integer, char-array or array fields in the event struct "
                "(flatten nested structs and unions)."
            )
        fields.append((field_name, ctype))
    return type(f"{name}_event", (ct.Structure,), {"_fields_": fields})


# -- sinks ----------------------------------------------------------------------------
class EventSink:
    """Keeps an output's records in numpy chunks, as the bulk readers hand them over.

    add_batch() takes a decoded block (ring and perf buffers); add() copies
    one raw record into the chunk being filled.
    """

    def __init__(self, name: str, dtype: np.dtype, *, chunk_rows: int = 1 << 16, limit: int | None = None):
        self.name = name
        self.dtype = dtype
        self.itemsize = dtype.itemsize
        self.chunk_rows = chunk_rows
        self.limit = limit
        self.chunks: list[np.ndarray] = []
        self.count = 0           # records kept
        self.over_limit = 0      # records seen after the limit was reached
        self.lost = 0            # lost in the kernel (perf's LOST records)
        self.listeners = []      # called with each full chunk (live views)
        self._new_chunk()

    def _new_chunk(self) -> None:
        self._chunk = np.zeros(self.chunk_rows, dtype=self.dtype)
        self._base = self._chunk.ctypes.data
        self._fill = 0

    @property
    def full(self) -> bool:
        return self.limit is not None and self.count >= self.limit

    def add(self, data, size: int) -> None:
        if self.limit is not None and self.count >= self.limit:
            self.over_limit += 1
            return
        if self._fill == self.chunk_rows:
            self._flush()
        ct.memmove(self._base + self._fill * self.itemsize, data, min(size, self.itemsize))
        self._fill += 1
        self.count += 1

    def add_batch(self, records: np.ndarray) -> None:
        """Keep a block of already-decoded records (the ring-buffer fast path)."""
        n = len(records)
        if self.limit is not None and self.count + n > self.limit:
            room = max(self.limit - self.count, 0)
            self.over_limit += n - room
            records = records[:room]
            n = room
        if not n:
            return
        if self._fill:
            self._flush()
        self.chunks.append(records)
        self.count += n
        for listener in self.listeners:
            listener(self.name, records)

    def lost_callback(self, lost):
        self.lost += int(lost)

    def _flush(self) -> None:
        chunk = self._chunk[: self._fill]
        self.chunks.append(chunk)
        for listener in self.listeners:
            listener(self.name, chunk)
        self._new_chunk()

    # -- spill mode (bpfnb.spill, issue 8): hand chunks over and forget them -----
    def flush(self) -> None:
        """Close the chunk being filled, so listeners see it (no-op when empty)."""
        if self._fill:
            self._flush()

    def take_chunks(self) -> list[np.ndarray]:
        """Remove and return the completed chunks: memory a spill has written out."""
        chunks, self.chunks = self.chunks, []
        return chunks

    def parts(self) -> list[np.ndarray]:
        """Every record so far, in arrival order, as the arrays that hold them (no copy)."""
        return self.chunks + [self._chunk[: self._fill]]

    def records(self) -> np.ndarray:
        """Every record so far, in arrival order (a copy)."""
        parts = self.parts()
        # not np.concatenate: its dtype promotion packs structs, dropping C padding
        out = np.empty(sum(len(p) for p in parts), dtype=self.dtype)
        at = 0
        for part in parts:
            out[at: at + len(part)] = part
            at += len(part)
        return out


def perf_pages_for(record_size: int, burst: int = 20000, minimum: int = 64, maximum: int = 4096) -> int:
    """Pages per CPU so that a burst of `burst` records from one CPU fits whole.

    The result is a power of two, as perf requires.
    """
    per_record = sample_stride(record_size)
    need = (burst * per_record * 5 // 4) // 4096 + 1
    pages = minimum
    while pages < need and pages < maximum:
        pages *= 2
    return pages


def sink_for(bpf, name: str, *, limit=None) -> EventSink:
    ctype = event_ctype(bpf, name)
    dtype = dtype_of(ctype) if ctype is not None else np.dtype([("raw", "V8")])
    return EventSink(name, dtype, limit=limit)
