"""bcc tools' printed histograms (text) -> hist frames.

    df = read_bcc_hist(text_or_path)     # [keys...], low, high, count

Reads what bcc's print_log2_hist and print_linear_hist print (runqlat,
biolatency, ext4dist, ...), including:

- the log2 form ``     usecs    : count     distribution`` then rows
  ``   4096 -> 8191       : 5        |***   |``, and its 64-bit wide form
  (wider columns, 20-star bars) used when a slot above 32 is filled;
- the linear form, rows ``        12        : 3        |*  |`` (bcc labels
  linear rows by slot, so low == high == the slot, step 1);
- keyed sections, a line ``disk = sda`` (or ``Bucket ptr = b'sda'``)
  before a histogram: the name left of " = " becomes a key column, the
  value (bytes/str reprs unquoted) its value, int64 when all are integers;
- interval output: a line ``09:12:33`` (or ``[09:12:33]``) before histograms gives them a
  ``time`` column (str); histograms printed again for the same key without
  a time get a ``print`` column numbering them from 0;
- text copied from a terminal or a slide: tabs instead of spaces, no colon
  in the header, missing bars, other lines (tool banners, "[...]", "avg = ..." lines) are skipped.

Like every hist frame: zero-count rows dropped, log2 bounds as bcc prints
them (low/high uint64), attrs {"hist_type", "step", "label"} where label
is the column header bcc printed ("usecs").
"""

from __future__ import annotations

import ast
import os
import re

import pandas as pd

from ..errors import TraceFileError
from ..frames.hist import from_slots, log2_bounds

__all__ = ["read_bcc_hist"]

_HEADER = re.compile(r"^\s*(\S.*?)\s*:?\s+count\s+distribution\s*$")
_LOG2_ROW = re.compile(r"^\s*(\d+)\s*->\s*(\d+)\s*:\s*(\d+)(?:\s.*)?$")
_LINEAR_ROW = re.compile(r"^\s*(\d+)\s*:\s*(\d+)(?:\s.*)?$")
_SECTION = re.compile(r"^\s*([^=:]*?\S)\s+=\s+(.*?)\s*$")
_TIME = re.compile(r"^\s*\[?(\d{1,2}:\d{2}:\d{2})\]?\s*$")  # argdist prints [HH:MM:SS]


def read_bcc_hist(source, *, label: str | None = None) -> pd.DataFrame:
    """Parse bcc's printed histogram(s) in source (a path or the text).

    Several histograms (sections, intervals) become one frame with key
    columns. label overrides the printed column header in attrs["label"].
    Raises TraceFileError when no histogram is found or log2 and linear
    histograms are mixed.
    """
    text, origin = _read_source(source)
    blocks = _blocks(text, origin)
    if not blocks:
        raise TraceFileError(
            f"{origin}: no bcc histogram found (expected a header like "
            f"'usecs : count distribution' followed by rows like '4096 -> 8191 : 5'); "
            f"pass the text a bcc tool printed"
        )
    kinds = {b["kind"] for b in blocks}
    if len(kinds) > 1:
        raise TraceFileError(
            f"{origin} mixes log2 and linear histograms; split the text and read each part on its own"
        )
    return _frame(blocks, kinds.pop(), label or blocks[0]["label"])


def _read_source(source) -> tuple[str, str]:
    if isinstance(source, bytes):
        return source.decode("utf-8", errors="replace"), "<text>"
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source and os.path.exists(source)):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read(), path
        except OSError as err:
            raise TraceFileError(f"cannot read bcc histogram text {path!r}: {err.strerror}; check the path") from None
    if isinstance(source, str):
        return source, "<text>"
    raise TypeError(f"read_bcc_hist takes a path or the text, not {type(source).__name__}")


def _blocks(text: str, origin: str) -> list[dict]:
    """One dict per printed histogram: label, kind, section, time, rows."""
    blocks: list[dict] = []
    section: tuple[str, str] | None = None
    time: str | None = None
    current: dict | None = None
    lines = text.expandtabs(8).splitlines()
    for lineno, line in enumerate(lines, 1):
        if m := _HEADER.match(line):
            current = {"label": m.group(1), "kind": None, "section": section, "time": time, "rows": []}
            blocks.append(current)
            section = None
        elif current is not None and (m := _LOG2_ROW.match(line)):
            _add_row(current, "log2", _log2_slot(int(m.group(1)), int(m.group(2)), origin, lineno), int(m.group(3)), origin, lineno)
        elif current is not None and (m := _LINEAR_ROW.match(line)):
            _add_row(current, "linear", int(m.group(1)), int(m.group(2)), origin, lineno)
        elif m := _TIME.match(line):
            time, current = m.group(1), None
        elif (m := _SECTION.match(line)) and _header_follows(lines, lineno):
            section, current = (m.group(1), _unrepr(m.group(2))), None
        elif line.strip():  # a banner, "avg = ..." or "[...]": ends a histogram
            current, section = None, None
    return [b for b in blocks if b["kind"] is not None]


def _header_follows(lines: list[str], lineno: int) -> bool:
    """Whether the next non-blank line after line lineno (1-based) is a header."""
    for line in lines[lineno:]:
        if line.strip():
            return bool(_HEADER.match(line))
    return False


def _add_row(block: dict, kind: str, slot: int, count: int, origin: str, lineno: int) -> None:
    if block["kind"] not in (None, kind):
        raise TraceFileError(f"{origin} line {lineno}: a {kind} row inside a {block['kind']} histogram; the text is damaged")
    block["kind"] = kind
    block["rows"].append((slot, count))


def _log2_slot(low: int, high: int, origin: str, lineno: int) -> int:
    slot = high.bit_length()  # high is (1 << slot) - 1
    exp_low, exp_high = log2_bounds([min(slot, 64)])
    if (low, high) != (int(exp_low[0]), int(exp_high[0])):
        raise TraceFileError(
            f"{origin} line {lineno}: '{low} -> {high}' is not a bcc log2 bucket "
            f"(bcc prints '{int(exp_low[0])} -> {int(exp_high[0])}' for that slot); "
            f"is this text from print_log2_hist?"
        )
    return slot


def _unrepr(value: str) -> str:
    """bcc prints section keys with %r: b'sda' and 'sda' -> sda."""
    if len(value) >= 2 and (value[0] in "'\"" or value[:2] in ("b'", 'b"')):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        if isinstance(parsed, bytes):
            return parsed.rstrip(b"\0").decode("utf-8", errors="replace")
        if isinstance(parsed, str):
            return parsed
    return value


def _frame(blocks: list[dict], kind: str, label: str) -> pd.DataFrame:
    key_names = list(dict.fromkeys(b["section"][0] for b in blocks if b["section"]))
    has_time = any(b["time"] is not None for b in blocks)
    seen: dict[tuple, int] = {}
    records = []
    for block in blocks:
        keys = {name: None for name in key_names}
        if block["section"]:
            keys[block["section"][0]] = block["section"][1]
        ident = (block["time"], tuple(keys.values()))
        nth = seen[ident] = seen.get(ident, -1) + 1
        for slot, count in block["rows"]:
            records.append({"print": nth, "time": block["time"], **keys, "slot": slot, "count": count})
    repeated = any(n > 0 for n in seen.values())
    keys = (["print"] if repeated else []) + (["time"] if has_time else []) + key_names
    table = pd.DataFrame.from_records(records, columns=["print", "time", *key_names, "slot", "count"])
    for name in key_names:
        table[name] = _typed(table[name])
    if has_time:
        table["time"] = table["time"].astype(object)
    table["print"] = table["print"].astype("int64")
    out = from_slots(table[keys + ["slot", "count"]], kind, step=1, keys=keys)
    out.attrs["label"] = label
    return out


def _typed(column: pd.Series) -> pd.Series:
    values = column.tolist()
    if values and all(isinstance(v, str) and re.fullmatch(r"-?\d+", v) for v in values):
        return pd.Series([int(v) for v in values], dtype="int64", index=column.index)
    return pd.Series(values, dtype=object, index=column.index)
