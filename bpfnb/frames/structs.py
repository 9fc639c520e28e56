"""C structs -> numpy structured dtypes -> DataFrame columns.

bcc describes every map key, map value and event record as a ctypes type.
We turn that into a numpy dtype with the same offsets and size (padding
included), view raw bytes through it in bulk, and turn the fields into
columns:

- integers keep their width and signedness (u32 -> uint32, s64 -> int64);
- char arrays become str, cut at the first NUL;
- nested structs are flattened: `outer.inner` -> column `outer_inner`;
- other arrays become one column holding a numpy array per row.
"""

from __future__ import annotations

import ctypes as ct

import numpy as np
import pandas as pd

_CHAR_TYPES = (ct.c_char,)


def _is_struct(ctype) -> bool:
    return isinstance(ctype, type) and issubclass(ctype, (ct.Structure, ct.Union))


def dtype_of(ctype) -> np.dtype:
    """A numpy dtype laid out exactly like the ctypes type."""
    if isinstance(ctype, type) and issubclass(ctype, ct.Array):
        if ctype._type_ in _CHAR_TYPES:
            return np.dtype(f"S{ctype._length_}")
        return np.dtype((dtype_of(ctype._type_), (ctype._length_,)))
    if isinstance(ctype, type) and issubclass(ctype, ct.Union):
        return np.dtype(f"V{ct.sizeof(ctype)}")
    if _is_struct(ctype):
        names, formats, offsets = [], [], []
        for field in ctype._fields_:
            name, ftype = field[0], field[1]
            if len(field) > 2:  # bit fields: keep the raw storage unit
                continue
            if name.startswith("__pad"):  # bcc's explicit padding (its structs are _pack_ = 1)
                continue
            names.append(name)
            formats.append(dtype_of(ftype))
            offsets.append(getattr(ctype, name).offset)
        return np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": ct.sizeof(ctype)}
        )
    if ctype in (ct.c_char_p, ct.c_void_p):
        return np.dtype(np.uint64)
    return np.dtype(ctype)


def decode_cstrings(values: np.ndarray) -> np.ndarray:
    """Fixed-size byte strings -> str objects, cut at the first NUL."""
    n, width = len(values), values.dtype.itemsize
    if n == 0 or width == 0:
        return np.array([""] * n, dtype=object)
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(n, width).copy()
    after_nul = np.cumsum(raw == 0, axis=1) > 0
    raw[after_nul] = 0
    clean = raw.view(f"S{width}").reshape(n)
    try:
        return clean.astype(f"U{width}").astype(object)
    except UnicodeDecodeError:
        return np.array([b.decode("utf-8", "replace") for b in clean], dtype=object)


def columns_of(records: np.ndarray, prefix: str = "") -> dict[str, object]:
    """Flatten a structured array into {column name: values}."""
    return columns_of_parts([records], records.dtype, prefix)


def columns_of_parts(parts: list[np.ndarray], dtype: np.dtype, prefix: str = "") -> dict[str, object]:
    """columns_of over records kept in several arrays (a capture's chunks).

    Each column is gathered straight from the parts: the records are never
    joined into one array first, which would copy every byte once more.
    """
    if dtype.names is None:
        return {prefix or "value": _column(_join(parts, dtype))}
    out: dict[str, object] = {}
    for name in dtype.names:
        field_dtype = dtype.fields[name][0]
        fields = [part[name] for part in parts]
        column = f"{prefix}{name}"
        if field_dtype.names is not None:
            out.update(columns_of_parts(fields, field_dtype, prefix=f"{column}_"))
        else:
            out[column] = _column(_join(fields, field_dtype))
    return out


def _join(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The parts (of one plain, non-struct dtype) as one array; a single part as it is."""
    if len(parts) == 1:
        return parts[0]
    out = np.empty((sum(len(p) for p in parts),) + dtype.shape, dtype=dtype.base)
    at = 0
    for part in parts:
        out[at: at + len(part)] = part
        at += len(part)
    return out


def _column(values: np.ndarray):
    if values.dtype.kind == "S":
        return decode_cstrings(values)
    if values.dtype.kind == "V":
        return np.array([bytes(v) for v in values], dtype=object)
    if values.ndim > 1:  # arrays: one numpy array per row
        column = np.empty(len(values), dtype=object)
        for i, row in enumerate(values):
            column[i] = row.copy()
        return column
    return np.ascontiguousarray(values)


def records_to_frame(records: np.ndarray) -> pd.DataFrame:
    """A DataFrame with one column per (flattened) field of the records."""
    return pd.DataFrame(columns_of(records), copy=False)


def parts_to_frame(parts: list[np.ndarray], dtype: np.dtype) -> pd.DataFrame:
    """records_to_frame for records kept in several arrays of one dtype."""
    return pd.DataFrame(columns_of_parts(parts, dtype), copy=False)


def key_value_frame(keys: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """Columns for the key fields, then the value fields.

    A scalar key is the column `key`, a scalar value the column `value`;
    a value field whose name is also a key field gets a `_value` suffix.
    """
    key_cols = columns_of(keys, prefix="") if keys.dtype.names else {"key": _column(keys)}
    value_cols = columns_of(values) if values.dtype.names else {"value": _column(values)}
    columns = dict(key_cols)
    for name, col in value_cols.items():
        columns[f"{name}_value" if name in columns else name] = col
    return pd.DataFrame(columns, copy=False)
