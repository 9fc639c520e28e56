"""Folded stacks, the flame graph lingua franca: `root;...;leaf COUNT` per line.

    df = read_folded("out.folded")      # DataFrame [stack, value]
    text = write_folded(df)             # the same text back

The count is separated from the stack by the *last* space of the line, so
frames may contain spaces (comm names such as "Web Content" do). Counts are
integers (samples, microseconds); a file with fractional counts (e.g. a
normalized differential profile) reads as float.
"""

from __future__ import annotations

import os
from typing import IO, Iterable

import numpy as np
import pandas as pd

from ..errors import TraceFileError

STACK, VALUE = "stack", "value"
_BLOCK = 8 << 20  # read in 8 MiB blocks so the whole file is never held twice


class FoldedFormatError(TraceFileError, ValueError):
    """A folded-stacks file or frame is not in the `a;b;c COUNT` format."""


# -- reading -----------------------------------------------------------------
def read_folded(source) -> pd.DataFrame:
    """Read folded stacks into a DataFrame [stack, value].

    source: a path, a file object (text or binary), or the folded text itself
    (a str holding at least one newline, or a str that is not an existing path
    but looks like a folded line). Blank lines are skipped. Identical stacks are
    kept as separate rows (sum them with `df.groupby("stack").value.sum()`).
    """
    stacks, counts = [], []
    lineno = 1
    for text in _chunks(source):
        lineno += _parse_lines(text, lineno, stacks, counts)
    values = _to_numbers(counts, stacks)
    # object dtype: building pandas' Arrow-backed strings would copy 45 MB again
    return pd.DataFrame(
        {STACK: pd.Series(stacks, dtype=object), VALUE: values}, copy=False
    )


def _chunks(source) -> Iterable[str]:
    """Blocks of whole lines of text from any supported source."""
    if isinstance(source, (str, os.PathLike)) and not _is_text(source):
        path = os.fspath(source)
        try:
            fobj = open(path, "rb")
        except FileNotFoundError:
            raise FoldedFormatError(
                f"folded stacks file {path!r} does not exist; pass an existing path, "
                "a file object or the folded text itself"
            ) from None
        with fobj:
            yield from _file_chunks(fobj)
    elif isinstance(source, str):
        yield source
    elif isinstance(source, (bytes, bytearray)):
        yield bytes(source).decode("utf-8", "replace")
    elif hasattr(source, "read"):
        yield from _file_chunks(source)
    else:
        raise FoldedFormatError(
            f"cannot read folded stacks from a {type(source).__name__}; "
            "pass a path, a file object or the text"
        )


def _is_text(source) -> bool:
    if not isinstance(source, str):
        return False
    if "\n" in source:
        return True
    return not os.path.exists(source) and ";" in source and " " in source.strip()


def _file_chunks(fobj: IO) -> Iterable[str]:
    if not hasattr(fobj, "readinto"):  # text files and other file-likes
        text = fobj.read()
        yield text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return
    buf = bytearray(_BLOCK)
    kept = 0
    while True:
        if kept == len(buf):  # a line longer than the buffer: grow it
            buf.extend(bytes(len(buf)))
        with memoryview(buf) as view:
            got = fobj.readinto(view[kept:]) or 0
            end = kept + got
            # UTF-8 never has 0x0a inside a character, so cutting after \n is safe
            cut = end if not got else buf.rfind(b"\n", 0, end) + 1
            if cut:
                yield str(view[:cut], "utf-8", "replace")
        if not got:
            return
        kept = end - cut
        buf[:kept] = buf[cut:end]


def _parse_lines(text: str, first: int, stacks: list, counts: list) -> int:
    """Append the stacks and count strings of whole lines; return the line count."""
    tokens = text.split()
    n_lines = text.count("\n") + (not text.endswith("\n"))
    # fast path: every line is exactly "stack count" -> stack, count, stack, ...
    if len(tokens) == 2 * n_lines and sum(map(len, tokens)) == len(text) - 2 * n_lines + (
        not text.endswith("\n")
    ):
        stacks.extend(tokens[0::2])
        counts.extend(tokens[1::2])
        return n_lines
    del tokens
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stack, sep, count = line.rpartition(" ")
        if not sep or not stack.strip():
            if not line.strip():
                continue  # blank line
            raise FoldedFormatError(
                f"line {first + i} of the folded stacks has no count: {line[:80]!r}; "
                "each line must be 'frame;frame;... COUNT'"
            )
        stacks.append(stack)
        counts.append(count)
    return len(lines)


def _to_numbers(counts: list[str], stacks: list[str]) -> np.ndarray:
    if not counts:
        return np.zeros(0, dtype=np.int64)
    try:
        return np.array(list(map(int, counts)), dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    try:
        values = np.array(list(map(float, counts)), dtype=np.float64)
    except ValueError:
        bad = next(i for i, c in enumerate(counts) if not _is_number(c))
        raise FoldedFormatError(
            f"the count {counts[bad]!r} after stack {stacks[bad][:60]!r} is not a number; "
            "each line must end with a space and an integer (or decimal) count"
        ) from None
    if np.all(values == np.round(values)) and np.all(np.abs(values) < 2**62):
        return values.astype(np.int64)
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- writing -----------------------------------------------------------------
def key_columns(df: pd.DataFrame) -> list[str]:
    """The columns of a stacks frame other than stack and value (comm, pid, ...)."""
    return [c for c in df.columns if c not in (STACK, VALUE)]


def stacks_with_keys(df: pd.DataFrame, keys: list[str] | None = None) -> list[str]:
    """The `stack` column with the key columns prepended as root frames.

    bcc's `-f` output puts the process name first (`comm;root;...;leaf`); key
    columns are prepended in column order, e.g. comm then pid. keys=[] leaves
    the stacks as they are.
    """
    _check_frame(df)
    keys = key_columns(df) if keys is None else list(keys)
    stacks = df[STACK].astype(object)
    for key in reversed(keys):
        stacks = df[key].astype(str).astype(object) + ";" + stacks
    return stacks.tolist()


def write_folded(df: pd.DataFrame, path=None, keys: list[str] | None = None) -> str | None:
    """Write [keys..., stack, value] as folded text; return it when path is None.

    Key columns (comm, pid, ...) become the root frames, bcc `-f` style; pass
    keys=[] to leave them out. Integer values are written as integers.
    """
    stacks = stacks_with_keys(df, keys)
    values = df[VALUE].to_numpy()
    if np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    counts = values.astype(str) if values.dtype.kind in "iu" else [repr(float(v)) for v in values]
    text = "".join(f"{s} {c}\n" for s, c in zip(stacks, counts))
    if path is None:
        return text
    if hasattr(path, "write"):
        path.write(text)
        return None
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    return None


def _check_frame(df) -> None:
    if not isinstance(df, pd.DataFrame) or STACK not in df or VALUE not in df:
        got = list(df.columns) if isinstance(df, pd.DataFrame) else type(df).__name__
        raise FoldedFormatError(
            f"expected a stacks DataFrame with 'stack' and 'value' columns, got {got}; "
            "use Trace.stacks() or bpfnb.read_folded()"
        )


__all__ = ["read_folded", "write_folded", "stacks_with_keys", "key_columns", "FoldedFormatError"]
