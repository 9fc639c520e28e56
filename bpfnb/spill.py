"""Spill-to-Parquet capture mode: long captures on one host in bounded memory.

    t = bpfnb.capture(SRC, duration=3600, spill_dir="spill/", memory_limit=256 << 20,
                      event_limit=None)
    t.events()                                  # empty: the rows are on disk
    t.meta["spill"]                             # where the parts are, rows per output
    bpfnb.fleet.load_many(t, engine="duckdb")   # query them without loading them
    bpfnb.spill.read(t)                         # or load them, when they fit

Each capture writes one folder ``SPILL_DIR/capture-<time>-<id>/``::

    spill.json                       manifest: outputs, parts, rows, columns, host
    events/part-00000.parquet        one part per spill of an output
    events/part-00001.parquet
    ...

Memory accounting: event sinks fill chunks of 65,536 records; a full chunk
is held in memory until the records held (completed chunks of every
output, plus the chunk being filled per output) exceed `memory_limit`
bytes or `row_limit` records, and then every output's completed chunks are
written as one part each and dropped. The floor is therefore one chunk per
output: a limit below that spills every chunk as soon as it is full.
A ring buffer is read in blocks of whatever has arrived, so a single read
can exceed the limit for a moment; it is written out at once.
`meta["spill"]` reports the highest amount held (`peak_held_bytes`, the
block just read included) and kept between reads (`peak_retained_bytes`).

Only event outputs spill; maps and histograms are bounded by their size in
the kernel and stay in the Trace. The events frames of the returned Trace
are empty (same columns and dtypes) with ``attrs["spilled"]`` naming the
folder, so nothing looks complete that is not.
"""

from __future__ import annotations

import json
import platform
import re
import socket
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BpfnbError

MANIFEST = "spill.json"
FORMAT = "bpfnb-spill"
DEFAULT_MEMORY_LIMIT = 256 << 20

__all__ = ["Spill", "SpillError", "read", "manifest_of", "MANIFEST"]


class SpillError(BpfnbError):
    """A spill folder cannot be written or read."""


class Spill:
    """Writes event chunks to Parquet part files once memory holds too much.

    Use: `spill.watch(run.sinks)` before polling, `spill.flush(run.sinks)`
    after the probes are detached, then `spill.finish(trace)`.
    """

    def __init__(self, folder, memory_limit: int | None = DEFAULT_MEMORY_LIMIT, *,
                 row_limit: int | None = None, host: str | None = None):
        if memory_limit is not None and memory_limit <= 0:
            raise SpillError(f"memory_limit={memory_limit!r}: give a positive number of bytes "
                             "(e.g. 256 << 20), or None for no byte limit")
        if row_limit is not None and row_limit <= 0:
            raise SpillError(f"row_limit={row_limit!r}: give a positive number of records, or None")
        root = Path(folder)
        if root.exists() and not root.is_dir():
            raise SpillError(f"spill_dir {root} is a file; give a folder (it is created if missing)")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.folder = root / f"capture-{stamp}-{uuid.uuid4().hex[:8]}"
        try:
            self.folder.mkdir(parents=True)
        except OSError as err:
            raise SpillError(f"cannot create the spill folder {self.folder} ({err}); "
                             "choose a writable spill_dir") from None
        self.memory_limit = memory_limit
        self.row_limit = row_limit
        self.host = host  # None: the trace's host
        self.sinks: dict = {}
        self.parts: dict[str, list[dict]] = {}
        self.peak_held_bytes = 0      # before a spill decision: includes the batch just read
        self.peak_held_rows = 0
        self.peak_retained_bytes = 0  # after it: what stays in memory between reads
        self.spills = 0

    # -- during the capture ------------------------------------------------------
    def watch(self, sinks: dict) -> None:
        """Listen to every sink: full chunks may be written out as they come."""
        for name, sink in sinks.items():
            self.sinks[name] = sink
            self.parts.setdefault(name, [])
            sink.listeners.append(self._on_chunk)

    def held(self) -> tuple[int, int]:
        """(bytes, records) held in memory by the watched sinks, fill buffers included."""
        nbytes = rows = 0
        for sink in self.sinks.values():
            nbytes += sum(c.nbytes for c in sink.chunks) + sink.chunk_rows * sink.itemsize
            rows += sum(len(c) for c in sink.chunks) + sink.chunk_rows
        return nbytes, rows

    def _on_chunk(self, name, chunk) -> None:
        nbytes, rows = self.held()
        self.peak_held_bytes = max(self.peak_held_bytes, nbytes)
        self.peak_held_rows = max(self.peak_held_rows, rows)
        over_bytes = self.memory_limit is not None and nbytes > self.memory_limit
        over_rows = self.row_limit is not None and rows > self.row_limit
        if over_bytes or over_rows:
            for sink_name in self.sinks:
                self._write(sink_name)
            nbytes, rows = self.held()
        self.peak_retained_bytes = max(self.peak_retained_bytes, nbytes)

    def _write(self, name: str) -> None:
        """Every completed chunk of one output -> one Parquet part; memory freed."""
        chunks = self.sinks[name].take_chunks()
        if not chunks:
            return
        sink = self.sinks[name]
        records = np.empty(sum(len(c) for c in chunks), dtype=sink.dtype)
        at = 0
        for c in chunks:  # not np.concatenate: it would pack the C struct's padding
            records[at: at + len(c)] = c
            at += len(c)
        frame = _frame(records)
        part_dir = self.folder / _slug(name)
        part_dir.mkdir(exist_ok=True)
        index = len(self.parts[name])
        file = part_dir / f"part-{index:05d}.parquet"
        _write_parquet(frame, file)
        self.parts[name].append({"file": str(file.relative_to(self.folder)), "rows": len(frame)})
        self.spills += 1

    # -- at the end -------------------------------------------------------------------
    def flush(self, sinks: dict | None = None) -> None:
        """Write out everything still held (call after the probes are detached)."""
        for name, sink in (sinks or self.sinks).items():
            if name not in self.sinks:
                self.watch({name: sink})
            sink.flush()  # the listener may already write it
            self._write(name)

    def finish(self, trace):
        """Mark the Trace: empty events frames pointing at the parts; write the manifest."""
        outputs = {}
        for name, parts in self.parts.items():
            frame = trace.events(name) if name in trace.names("events") else None
            columns = [] if frame is None else [
                {"name": str(c), "dtype": str(frame[c].dtype)} for c in frame.columns]
            outputs[name] = {"parts": parts, "rows": sum(p["rows"] for p in parts), "columns": columns}
            if frame is not None:
                frame.attrs["spilled"] = {"folder": str(self.folder), "rows": outputs[name]["rows"]}
        info = {
            "folder": str(self.folder.resolve()),
            "memory_limit": self.memory_limit,
            "row_limit": self.row_limit,
            "peak_held_bytes": self.peak_held_bytes,
            "peak_held_rows": self.peak_held_rows,
            "peak_retained_bytes": self.peak_retained_bytes,
            "spills": self.spills,
            "outputs": outputs,
        }
        trace.meta["spill"] = info
        host = self.host or trace.meta.get("host") or socket.gethostname()
        document = {"format": FORMAT, "version": 1, "host": host,
                    "kernel": trace.meta.get("kernel", platform.release()),
                    "start_wall": trace.meta.get("start_wall"), "end_wall": trace.meta.get("end_wall"),
                    "lost": trace.lost, **info}
        (self.folder / MANIFEST).write_text(json.dumps(document, indent=2, default=str) + "\n",
                                            encoding="utf-8")
        return trace


def _frame(records: np.ndarray) -> pd.DataFrame:
    from .frames.structs import records_to_frame

    return records_to_frame(records)


def _write_parquet(frame: pd.DataFrame, file: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), file)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "output"


# -- reading back ------------------------------------------------------------------------
def manifest_of(source) -> tuple[Path, dict]:
    """(folder, manifest) of a spilled Trace, a spill folder or its spill.json."""
    from .trace import Trace

    if isinstance(source, Trace):
        info = source.meta.get("spill")
        if not info:
            raise SpillError("this trace was not captured with spill_dir=...; its frames are in memory")
        source = info["folder"]
    folder = Path(source)
    if folder.name == MANIFEST:
        folder = folder.parent
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpillError(f"{folder} has no {MANIFEST}: not a spill folder, or the capture did "
                         "not finish (the parts may still be read one by one)") from None
    except (OSError, ValueError) as err:
        raise SpillError(f"{folder / MANIFEST} cannot be read ({err}); the spill folder is damaged") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SpillError(f"{folder / MANIFEST} is not a bpfnb spill manifest")
    return folder, doc


def part_files(source, name: str | None = None) -> tuple[str, list[Path]]:
    """(output name, its part files) of a spill; name may be left out when there is one output."""
    folder, doc = manifest_of(source)
    outputs = doc.get("outputs") or {}
    if name is None:
        if len(outputs) != 1:
            raise SpillError(f"{folder} holds {len(outputs)} spilled outputs ({', '.join(outputs)}); "
                             "name one")
        name = next(iter(outputs))
    if name not in outputs:
        raise SpillError(f"{folder} has no spilled output {name!r} (it has {', '.join(outputs) or 'none'})")
    files = [folder / p["file"] for p in outputs[name]["parts"]]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise SpillError(f"{missing[0]} is missing; copy the whole spill folder {folder}")
    return name, files


def read(source, name: str | None = None) -> pd.DataFrame:
    """Load a spilled output into memory (only when it fits; else use bpfnb.fleet.load_many)."""
    import pyarrow.parquet as pq

    _, doc = manifest_of(source)
    name, files = part_files(source, name)
    columns = doc["outputs"][name].get("columns") or []
    if not files:
        return pd.DataFrame({c["name"]: pd.Series([], dtype=c["dtype"]) for c in columns})
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    return restore_dtypes(frame, columns)


def restore_dtypes(frame: pd.DataFrame, columns: list[dict]) -> pd.DataFrame:
    """Object columns (char arrays as str) back to object, as the in-memory capture has them."""
    for column in columns:
        name = column.get("name")
        if column.get("dtype") == "object" and name in frame.columns and frame[name].dtype != object:
            frame[name] = frame[name].astype(object)
    return frame
