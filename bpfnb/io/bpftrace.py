"""bpftrace's ``-f json`` output -> Trace.

    t = read_bpftrace("out.json")                 # a file, or the text itself
    t = read_bpftrace(text, program=PROGRAM)      # names key columns from @map[...] in PROGRAM

bpftrace writes one JSON object per line, ``{"type": ..., "data": ...}``
(recorded samples from bpftrace 0.17: tests/data/bpftrace/*.json):

- "map": ``{"@name": value}`` or ``{"@name": {key: value}}`` -> map frame
  ``[key columns...], value`` (a tuple value becomes value0, value1, ...).
- "hist" (hist and lhist alike) -> hist frame ``[key columns...], low,
  high, count`` with attrs hist_type "log2"|"linear" and step; buckets with
  a zero count are dropped, as in every hist frame.
- "stats": stats() -> map frame ``[keys...], count, average, total``;
  avg() (a bare number) -> ``[keys...], average``.
- "printf", "time", "cat", "join", "syscall" (system()) and any other text
  -> the events frame "printf": ``type, message`` in output order (message
  without its one trailing newline); with strict=False, non-JSON lines too
  (type "stdout").
- "lost_events" -> trace.lost["printf"] (the perf buffer those lines use).
- "attached_probes" -> trace.meta["attached_probes"].

trace.meta: {"tool": "bpftrace", "attached_probes": n, "source": program
(when given), "file": path (when read from a file)}.

Keys. bpftrace 0.17 joins the keys of ``@m[comm, pid]`` with "," into one
string ("bash,1234"). Key columns are named from the program when it is
given (``comm``, ``pid``, ``args->fd`` -> ``fd``, ``kstack`` ...), else
``key`` for one key and ``key0, key1, ...`` for several. The arity comes
from the program or, without it, from the key with the fewest commas; a
key with extra commas (a comm holding ",") keeps them in its only text
column, or, when that is ambiguous, the whole map keeps one ``key`` column
of the raw strings. A column whose every value is an integer is int64
(uint64 past 2**63); others are str (object dtype). Values likewise.

Stacks. A key column holding kstack/ustack text becomes, in the map frame,
that text as bpftrace printed it; the Trace also gets a stacks frame of
the same name, ``[other keys...], stack, value`` with the stack folded
root-first, ";"-joined, without "+offset" suffixes.

Open-ended buckets. hist puts negative values in a bucket with no "min";
lhist puts values below its min in one with no "min" and values at or
above its max in one with no "max". Their open bound is the limit of
bpftrace's 64-bit signed integers: low = -2**63, high = 2**63 - 1, so low
and high stay int64 and every value of the bucket lies within its bounds.

Repeated prints. A map printed more than once (``interval { print(@x);
clear(@x); }``) gets a ``print`` column numbering the prints from 0 and,
when the program calls time() before printing, a ``time`` column with that
text.

hist vs lhist. Both arrive as "hist". With the program, the call decides;
without, a histogram whose buckets are all power-of-two buckets ([0,0],
[1,1], [2,3], [4,7] ...) and that has no open top is log2, others linear.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict

import numpy as np
import pandas as pd

from ..errors import TraceFileError
from ..trace import Trace

__all__ = ["read_bpftrace", "map_keys", "PRINTF", "INT64_MIN", "INT64_MAX"]

PRINTF = "printf"  # name of the events output holding text lines
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
TEXT_TYPES = ("printf", "time", "cat", "join", "syscall")


# -- entry point ----------------------------------------------------------
def read_bpftrace(path_or_text, *, program: str | None = None, strict: bool = True) -> Trace:
    """Read bpftrace ``-f json`` output (a path, or the text) into a Trace.

    program: the bpftrace program that produced it, if known; it names key
    columns and tells hist from lhist. Raises TraceFileError when the input
    is not bpftrace JSON output; with strict=False, lines that are not
    JSON records (the output of a command run with bpftrace -c) are kept as
    rows of type "stdout" in the "printf" events instead.
    """
    text, origin = _read_source(path_or_text)
    records = _records(text, origin, strict)
    keys = map_keys(program) if program else {}
    functions = _map_functions(program) if program else {}
    builder = _Builder(keys, functions)
    for lineno, record in records:
        builder.add(record, lineno, origin)
    trace = builder.trace()
    trace.meta["tool"] = "bpftrace"
    if program is not None:
        trace.meta["source"] = program  # the program, as in a capture's meta
    if origin != "<text>":
        trace.meta["file"] = origin
    return trace


def _read_source(source) -> tuple[str, str]:
    if isinstance(source, bytes):
        return source.decode("utf-8", errors="replace"), "<text>"
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and not source.lstrip().startswith("{")
    ):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read(), path
        except FileNotFoundError:
            raise TraceFileError(
                f"bpftrace output file {path!r} does not exist; pass an existing path "
                f"or the JSON text itself (from bpftrace -f json)"
            ) from None
        except IsADirectoryError:
            raise TraceFileError(f"{path!r} is a folder; pass a bpftrace -f json output file") from None
    if isinstance(source, str):
        return source, "<text>"
    raise TypeError(f"read_bpftrace takes a path or the JSON text, not {type(source).__name__}")


def _records(text: str, origin: str, strict: bool = True) -> list[tuple[int, dict]]:
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if not strict:
                records.append((lineno, {"type": "stdout", "data": line}))
                continue
            raise TraceFileError(
                f"{origin} line {lineno} is not JSON ({line[:60]!r}); read_bpftrace reads "
                f"the output of bpftrace -f json (one JSON object per line), not its text output"
            ) from None
        if not isinstance(record, dict) or "type" not in record:
            if not strict:
                records.append((lineno, {"type": "stdout", "data": line}))
                continue
            raise TraceFileError(
                f"{origin} line {lineno} is JSON but not a bpftrace record (no \"type\"); "
                f"pass the output of bpftrace -f json"
            )
        records.append((lineno, record))
    return records


# -- collecting records -----------------------------------------------------
class _Builder:
    """Accumulates records into frames, remembering print order and time()."""

    def __init__(self, keys: dict[str, list[str]], functions: dict[str, str]):
        self.keys = keys
        self.functions = functions
        self.text_rows: list[tuple[str, str]] = []
        self.prints: dict[tuple[str, str], list[tuple[object, str | None]]] = defaultdict(list)
        self.lost = 0
        self.meta: dict = {}
        self.last_time: str | None = None

    def add(self, record: dict, lineno: int, origin: str) -> None:
        kind, data = record["type"], record.get("data")
        if kind in ("map", "hist", "stats"):
            if not isinstance(data, dict):
                raise TraceFileError(f"{origin} line {lineno}: {kind} record without a map; the output is damaged")
            for name, value in data.items():
                self.prints[(kind, name)].append((value, self.last_time))
        elif kind == "lost_events":
            self.lost += int((data or {}).get("events", 0))
        elif kind == "attached_probes":
            self.meta["attached_probes"] = int((data or {}).get("probes", 0))
        elif kind in TEXT_TYPES or isinstance(data, str):
            message = data if isinstance(data, str) else json.dumps(data)
            if kind == "time":
                self.last_time = message.strip()
            self.text_rows.append((kind, message[:-1] if message.endswith("\n") else message))
        else:  # unknown record types are kept, never dropped
            self.text_rows.append((kind, json.dumps(data)))

    def trace(self) -> Trace:
        trace = Trace(meta=self.meta)
        if self.text_rows or self.lost:
            kinds, messages = zip(*self.text_rows) if self.text_rows else ((), ())
            trace.add(
                "events",
                PRINTF,
                pd.DataFrame(
                    {"type": pd.Series(kinds, dtype=object), "message": pd.Series(messages, dtype=object)}
                ),
            )
        if self.lost:
            trace.lost[PRINTF] = self.lost
        for (kind, name), prints in self.prints.items():
            frames = [self._frame(kind, name, value) for value, _ in prints]
            frame = _stack_prints(frames, [t for _, t in prints])
            target = "hist" if kind == "hist" else "map"
            trace.add(target, name, frame)
            stacks = _folded(frame)
            if stacks is not None:
                trace.add("stacks", name, stacks)
        return trace

    def _frame(self, kind: str, name: str, value) -> pd.DataFrame:
        names = self.keys.get(name)
        if kind == "hist":
            linear = {"hist": False, "lhist": True}.get(self.functions.get(name, ""))
            return _hist_frame(value, names, linear)
        if kind == "stats":
            return _stats_frame(value, names)
        return _map_frame(value, names)


def _stack_prints(frames: list[pd.DataFrame], times: list[str | None]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0]
    attrs = next((f.attrs for f in frames if f.attrs), {})
    numbered = []
    for i, (frame, time) in enumerate(zip(frames, times)):
        frame = frame.copy()
        frame.insert(0, "print", np.int64(i))
        if any(t is not None for t in times):
            frame.insert(1, "time", pd.Series([time] * len(frame), dtype=object, index=frame.index))
        numbered.append(frame)
    nonempty = [f for f in numbered if len(f)] or numbered[:1]
    out = pd.concat(nonempty, ignore_index=True)
    out["print"] = out["print"].astype(np.int64)
    out.attrs = dict(attrs)
    return out


# -- keys -------------------------------------------------------------------
def _key_frame(raw_keys: list, names: list[str] | None) -> pd.DataFrame:
    """Key columns from bpftrace's key strings."""
    if not raw_keys:
        return pd.DataFrame({n: pd.Series([], dtype=object) for n in (names or ["key"])})
    arity = len(names) if names else min(str(k).count(",") + 1 for k in raw_keys)
    parts = _split_keys([str(k) for k in raw_keys], arity)
    if parts is None:  # ambiguous commas: keep the raw strings
        arity, parts = 1, [[str(k)] for k in raw_keys]
        names = None
    if not names or len(names) != arity:
        names = ["key"] if arity == 1 else [f"key{i}" for i in range(arity)]
    columns = {name: _typed([p[i] for p in parts]) for i, name in enumerate(names)}
    return pd.DataFrame(columns)


def _split_keys(keys: list[str], arity: int) -> list[list] | None:
    if arity == 1:
        return [[k] for k in keys]
    split = [k.split(",") for k in keys]
    clean = [p for p in split if len(p) == arity]
    if len(clean) == len(split):
        return split
    # extra commas belong to the one column that is not always an integer
    texty = [i for i in range(arity) if not all(_is_int(p[i]) for p in clean)] if clean else []
    if len(texty) != 1:
        return None
    col = texty[0]
    fixed = []
    for p in split:
        extra = len(p) - arity
        if extra < 0:
            return None
        fixed.append(p[:col] + [",".join(p[col : col + extra + 1])] + p[col + extra + 1 :])
    # the columns around the text one must still be integers after the merge
    if not all(_is_int(p[i]) for p in fixed for i in range(arity) if i != col):
        return None
    return fixed


_INT = re.compile(r"-?\d+\Z")


def _is_int(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, str) and bool(_INT.match(value))


def _typed(values: list) -> pd.Series:
    """int64 (uint64 past int64) when every value is an integer, else str objects."""
    if values and all(_is_int(v) for v in values):
        ints = [int(v) for v in values]
        if INT64_MIN <= min(ints) and max(ints) <= INT64_MAX:
            return pd.Series(np.array(ints, dtype=np.int64))
        if min(ints) >= 0 and max(ints) < 2**64:
            return pd.Series(np.array(ints, dtype=np.uint64))
    return pd.Series([v if isinstance(v, str) else json.dumps(v) for v in values], dtype=object)


# -- maps, stats, hists ---------------------------------------------------------
def _map_frame(value, names: list[str] | None) -> pd.DataFrame:
    if isinstance(value, dict):
        frame = _key_frame(list(value), names)
        values = pd.DataFrame(_value_columns(list(value.values())))
        return pd.concat([frame, values], axis=1)
    return pd.DataFrame(_value_columns([value]))


def _value_columns(values: list) -> dict[str, pd.Series]:
    if values and all(isinstance(v, list) for v in values):  # tuples
        width = max(len(v) for v in values)
        return {f"value{i}": _typed([v[i] if i < len(v) else None for v in values]) for i in range(width)}
    return {"value": _typed(values) if values else pd.Series([], dtype=np.int64)}


def _stats_frame(value, names: list[str] | None) -> pd.DataFrame:
    keyed = isinstance(value, dict) and not _is_stats(value)
    entries = list(value.values()) if keyed else [value]
    if entries and all(_is_stats(e) for e in entries):
        cols = {c: pd.Series(np.array([e[c] for e in entries], dtype=np.int64)) for c in ("count", "average", "total")}
    else:  # avg(): a bare number per key
        cols = {"average": pd.Series(np.array(entries, dtype=np.int64))}
    stats = pd.DataFrame(cols)
    if not keyed:
        return stats
    return pd.concat([_key_frame(list(value), names), stats], axis=1)


def _is_stats(value) -> bool:
    return isinstance(value, dict) and {"count", "average", "total"} <= set(value)


def _hist_frame(value, names: list[str] | None, linear: bool | None) -> pd.DataFrame:
    keyed = isinstance(value, dict)
    buckets = value if keyed else {None: value}
    every = [b for bs in buckets.values() for b in bs]
    if linear is None:
        linear = not _looks_log2(every)
    key_frame = _key_frame(list(buckets), names) if keyed else None
    rows, keys_index = [], []
    for i, bs in enumerate(buckets.values()):
        for b in bs:
            if b.get("count", 0):
                rows.append((b.get("min", INT64_MIN), b.get("max", INT64_MAX), b["count"]))
                keys_index.append(i)
    low, high, count = (list(c) for c in zip(*rows)) if rows else ([], [], [])
    out = key_frame.iloc[keys_index].reset_index(drop=True) if keyed else pd.DataFrame(index=range(len(rows)))
    out["low"] = np.array(low, dtype=np.int64)
    out["high"] = np.array(high, dtype=np.int64)
    out["count"] = np.array(count, dtype=np.int64)
    out.attrs.update(hist_type="linear" if linear else "log2", step=_step(every) if linear else 1)
    return out


def _looks_log2(buckets: list[dict]) -> bool:
    if any("max" not in b for b in buckets):
        return False
    for b in buckets:
        if "min" not in b:
            continue
        low, high = b["min"], b["max"]
        if not ((low == high and low in (0, 1)) or (low >= 2 and low & (low - 1) == 0 and high == 2 * low - 1)):
            return False
    return True


def _step(buckets: list[dict]) -> int:
    widths = [b["max"] - b["min"] + 1 for b in buckets if "min" in b and "max" in b]
    return int(widths[0]) if widths else 1


# -- stacks -------------------------------------------------------------------
_OFFSET = re.compile(r"\+(?:0x[0-9a-fA-F]+|\d+)$")


def _is_stack_text(value) -> bool:
    return isinstance(value, str) and value.startswith("\n") and value.endswith("\n")


def _folded(frame: pd.DataFrame) -> pd.DataFrame | None:
    """The stacks frame of a map keyed by one kstack/ustack, else None."""
    if "value" not in frame.columns or not len(frame):
        return None
    stack_cols = [
        c for c in frame.columns if frame[c].dtype == object and all(_is_stack_text(v) for v in frame[c])
    ]
    if len(stack_cols) != 1:
        return None
    col = stack_cols[0]
    others = [c for c in frame.columns if c not in (col, "value")]
    out = frame[others].copy()
    out["stack"] = pd.Series([fold_stack(s) for s in frame[col]], dtype=object, index=frame.index)
    out["value"] = frame["value"]
    return out.reset_index(drop=True)


def fold_stack(text: str) -> str:
    """bpftrace's stack text (leaf first, one frame a line) -> "root;...;leaf"."""
    frames = [_OFFSET.sub("", line.strip()) for line in text.splitlines() if line.strip()]
    return ";".join(reversed(frames))


# -- the program: key names and hist kinds -------------------------------------
_ASSIGN = re.compile(r"(@\w*)\s*\[")
_CALL = re.compile(r"(@\w*)\s*(?:\[[^\]]*\])?\s*=\s*(hist|lhist)\s*\(")
_NAME = re.compile(r"[A-Za-z_]\w*\Z")


def map_keys(program: str) -> dict[str, list[str]]:
    """{"@map": [key column names]} for maps indexed with [...] in program."""
    keys: dict[str, list[str]] = {}
    for match in _ASSIGN.finditer(program):
        inside = _bracketed(program, match.end() - 1)
        if inside is None or match.group(1) in keys:
            continue
        exprs = _split_top(inside)
        keys[match.group(1)] = _unique([_column_name(e, i) for i, e in enumerate(exprs)], len(exprs))
    return keys


def _map_functions(program: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _CALL.finditer(program)}


def _bracketed(text: str, start: int) -> str | None:
    depth = 0
    for i in range(start, len(text)):
        if text[i] in "[(":
            depth += 1
        elif text[i] in "])":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


def _split_top(text: str) -> list[str]:
    parts, depth, current, quote = [], 0, "", False
    for ch in text:
        if ch == '"':
            quote = not quote
        elif not quote and ch in "([":
            depth += 1
        elif not quote and ch in ")]":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def _column_name(expr: str, index: int) -> str:
    expr = expr.strip()
    call = re.match(r"(\w+)\s*\((.*)\)\Z", expr, re.S)
    if call and call.group(1) in ("kstack", "ustack"):
        return call.group(1)
    if call and call.group(1) in ("str", "ntop", "buf", "usym", "ksym", "kaddr", "uaddr"):
        inner = _split_top(call.group(2))[0]
        return _column_name(inner, index) if inner else f"key{index}"
    field = re.search(r"(?:->|\.)\s*(\w+)\Z", expr)
    if field:
        return field.group(1)
    name = expr.lstrip("$")
    return name if _NAME.match(name) else f"key{index}"


# columns the importer adds itself; a key of that name gets a "_key" suffix
_RESERVED = {"value", "count", "average", "total", "low", "high", "print", "time", "stack"}


def _unique(names: list[str], arity: int) -> list[str]:
    if arity == 1 and names[0].startswith("key"):
        return ["key"]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        name = f"{name}_key" if name in _RESERVED or name.startswith("value") else name
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out
