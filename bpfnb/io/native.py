"""Saved traces: a folder of Parquet files plus JSON metadata. No pickle.

Layout of ``NAME.bpfnb/`` (schema version 1)::

    NAME.bpfnb/
        meta.json                      what is below, as JSON
        events-00-events.parquet       one Parquet file per output
        hist-01-dist.parquet
        ...

``meta.json``::

    {
      "format": "bpfnb-trace",         # anything else is a foreign file
      "schema_version": 1,             # newer than SCHEMA_VERSION -> refused
      "bpfnb_version": "0.1.0",
      "saved": {"time": ISO-8601, "host": ..., "kernel": ...},
      "meta": {...},                   # Trace.meta: program source, defines,
                                       # probes, host, kernel, bcc version,
                                       # start/end wall time (as captured)
      "lost": {output name: events lost},
      "outputs": [                     # the manifest, in Trace order
        {"kind": "hist", "name": "dist", "file": "hist-01-dist.parquet",
         "rows": 12, "sha256": HEX, "attrs": {...},        # DataFrame.attrs
         "columns": [{"name": "low", "dtype": "uint64"}, ...]}
      ]
    }

Each Parquet file holds one frame as pyarrow writes it from pandas (its
pandas metadata restores the index, categoricals, datetimes, nullable ints).
Parquet cannot say everything pandas can, so the manifest records each
column's dtype and load restores it: object columns come back as object
columns of the Python values pyarrow stores (str, bytes, lists, dicts;
missing values as None), not as pandas' ``str`` dtype; a column holding
one 1-d numpy array per row (struct array fields) comes back as such, with
the arrays' dtype.
``DataFrame.attrs`` live in the manifest (JSON), not in the Parquet file.

Opening a saved trace never runs code: JSON and Parquet only; pyarrow does
not load pickled extension types unless told to, and bpfnb never tells it.
Loading needs pandas and pyarrow only: no root, no bcc, no kernel.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TraceFileError
from ..trace import KINDS, Trace

FORMAT = "bpfnb-trace"
SCHEMA_VERSION = 1
SUFFIX = ".bpfnb"
META_FILE = "meta.json"

__all__ = ["save_trace", "load", "FORMAT", "SCHEMA_VERSION", "SUFFIX"]


# -- saving ---------------------------------------------------------------
def save_trace(trace: Trace, path) -> str:
    """Write trace to the folder path (".bpfnb" appended if missing).

    An existing bpfnb trace folder at path is replaced; any other existing
    file or folder is left alone and TraceFileError is raised. The folder is
    written beside its final place and renamed into it, so a crash never
    leaves half a trace under the final name. Returns the folder's path.
    """
    target = _with_suffix(Path(path))
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp, which makes it private) so the umask decides who may read it
    staging = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        outputs = [
            _write_output(staging, i, kind, name, frame)
            for i, (kind, name, frame) in enumerate(trace.items())
        ]
        document = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "bpfnb_version": _bpfnb_version(),
            "saved": {
                "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                "host": socket.gethostname(),
                "kernel": platform.release(),
            },
            "meta": trace.meta,
            "lost": trace.lost,
            "outputs": outputs,
        }
        text = json.dumps(document, indent=2, default=_json_default, allow_nan=True)
        (staging / META_FILE).write_text(text + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return str(target)


def _with_suffix(path: Path) -> Path:
    return path if path.name.endswith(SUFFIX) else path.with_name(path.name + SUFFIX)


def _check_replaceable(target: Path) -> None:
    if not target.exists():
        return
    if target.is_dir() and _is_trace_folder(target):
        return
    raise TraceFileError(
        f"{target} exists and is not a bpfnb trace folder; refusing to overwrite it. "
        f"Choose another path or remove it first."
    )


def _is_trace_folder(folder: Path) -> bool:
    try:
        doc = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def _write_output(folder: Path, index: int, kind: str, name: str, frame: pd.DataFrame) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = f"{kind}-{index:02d}-{_slug(name)}.parquet"
    columns = [_column_entry(frame, col) for col in frame.columns]
    bare = frame.copy(deep=False)
    bare.attrs = {}  # attrs go to meta.json, where any JSON value is fine
    try:
        table = _checked(pa.Table.from_pandas(bare, preserve_index=None), bare)
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise TraceFileError(
            f"cannot save {kind} output {name!r}: {err}. Parquet stores one type per "
            f"column; convert mixed object columns to one type (e.g. .astype(str)) first."
        ) from None
    pq.write_table(table, folder / file)
    return {
        "kind": kind,
        "name": name,
        "file": file,
        "rows": int(len(frame)),
        "sha256": _sha256(folder / file),
        "attrs": _jsonable(frame.attrs),
        "columns": columns,
    }


def _checked(table, frame: pd.DataFrame):
    """The table, after checking Arrow kept every value of object columns.

    Arrow types an object column from its values; a column it cannot type
    raises, and a column it typed must not have gained missing values.
    """
    for name in frame.columns:
        if frame[name].dtype != object:
            continue
        missing = int(frame[name].isna().sum())
        nulls = table.column(name).null_count
        if nulls != missing:
            raise ValueError(f"column {name!r} has {missing} missing values but Arrow made {nulls}")
    return table


def _column_entry(frame: pd.DataFrame, col) -> dict:
    if not isinstance(col, str):
        raise TraceFileError(
            f"cannot save a frame with column name {col!r} ({type(col).__name__}); "
            f"Parquet column names are strings: rename it first."
        )
    dtype = frame[col].dtype
    entry = {"name": col, "dtype": str(dtype)}
    if isinstance(dtype, pd.CategoricalDtype):
        # Parquet keeps a column's dictionary only with its data pages: an
        # empty frame would lose its categories
        entry["categories"] = _jsonable(dtype.categories.tolist())
        entry["categories_dtype"] = str(dtype.categories.dtype)
        entry["ordered"] = bool(dtype.ordered)
    elif dtype == object:
        item_dtype = _ndarray_item_dtype(frame[col])
        if item_dtype is not None:
            entry["values"] = "ndarray"
            entry["item_dtype"] = item_dtype
    return entry


def _ndarray_item_dtype(series: pd.Series) -> str | None:
    """The dtype of a column holding one 1-d numpy array per row, else None."""
    present = [v for v in series if v is not None]
    if not present or not all(isinstance(v, np.ndarray) and v.ndim == 1 for v in present):
        return None
    dtypes = {str(v.dtype) for v in present}
    return dtypes.pop() if len(dtypes) == 1 else None


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return slug[:60] or "output"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (_dt.datetime, _dt.date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _jsonable(value):
    return json.loads(json.dumps(value, default=_json_default))


def _bpfnb_version() -> str:
    from .. import __version__

    return __version__


# -- loading --------------------------------------------------------------
def load(path) -> Trace:
    """Read a trace saved by Trace.save (a NAME.bpfnb folder).

    Needs neither root nor bcc. Raises TraceFileError, naming the file, the
    problem and the fix, for a missing, damaged, truncated, altered, foreign
    or too new trace.
    """
    folder = _find_folder(Path(path))
    doc = _read_meta(folder)
    trace = Trace(lost=_lost(doc, folder), meta=doc.get("meta") or {})
    for entry in doc["outputs"]:
        kind, name = _entry_key(entry, folder)
        trace.add(kind, name, _read_output(folder, entry))
    return trace


def _find_folder(path: Path) -> Path:
    candidates = [path] if path.name.endswith(SUFFIX) else [path, _with_suffix(path)]
    for folder in candidates:
        if folder.is_dir():
            return folder
    if path.exists():
        raise TraceFileError(
            f"{path} is a file, not a bpfnb trace: a saved trace is a folder NAME{SUFFIX}/ "
            f"holding {META_FILE} and Parquet files. Pass the folder written by Trace.save."
        )
    raise TraceFileError(
        f"{path}: no such trace folder. Check the path; Trace.save writes NAME{SUFFIX}/."
    )


def _read_meta(folder: Path) -> dict:
    meta_path = folder / META_FILE
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceFileError(
            f"{meta_path} is missing, so {folder} is not a (complete) bpfnb trace. "
            f"Copy the whole folder written by Trace.save, or save the trace again."
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise TraceFileError(f"{meta_path} cannot be read ({err}); copy the trace folder again.") from None
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise TraceFileError(
            f"{meta_path} is damaged or truncated (not valid JSON: {err}); "
            f"copy the trace folder again or save the trace again."
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise TraceFileError(
            f"{meta_path} is not bpfnb trace metadata (format {found!r}, expected {FORMAT!r}); "
            f"this folder was not written by Trace.save."
        )
    version = doc.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise TraceFileError(f"{meta_path} has no valid schema_version ({version!r}); the file is damaged.")
    if version > SCHEMA_VERSION:
        raise TraceFileError(
            f"{meta_path} uses trace schema version {version}, newer than this bpfnb "
            f"({_bpfnb_version()}) reads (version {SCHEMA_VERSION}). Upgrade bpfnb to load it."
        )
    if not isinstance(doc.get("outputs"), list):
        raise TraceFileError(f"{meta_path} has no list of outputs; the file is damaged.")
    return doc


def _lost(doc: dict, folder: Path) -> dict:
    lost = doc.get("lost") or {}
    try:
        return {str(k): int(v) for k, v in lost.items()}
    except (AttributeError, TypeError, ValueError):
        raise TraceFileError(f"{folder / META_FILE}: 'lost' is not a map of counts; the file is damaged.") from None


def _entry_key(entry, folder: Path) -> tuple[str, str]:
    ok = isinstance(entry, dict) and entry.get("kind") in KINDS and isinstance(entry.get("name"), str)
    if not ok or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
        raise TraceFileError(f"{folder / META_FILE}: output entry {entry!r} is malformed; the file is damaged.")
    return entry["kind"], entry["name"]


def _read_output(folder: Path, entry: dict) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = folder / entry["file"]
    if Path(entry["file"]).name != entry["file"]:
        raise TraceFileError(f"{folder / META_FILE}: output file {entry['file']!r} is outside the trace folder.")
    if not file.is_file():
        raise TraceFileError(
            f"{file} is missing ({entry['kind']} output {entry['name']!r}); "
            f"copy the whole trace folder, not just {META_FILE}."
        )
    if _sha256(file) != entry["sha256"]:
        raise TraceFileError(
            f"{file} does not match the checksum in {META_FILE}: it was damaged, truncated "
            f"or altered after saving. Copy the trace folder again from its source."
        )
    try:
        table = pq.read_table(file)
        frame = table.to_pandas()
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as err:
        raise TraceFileError(f"{file} is not a readable Parquet file ({err}); copy the trace folder again.") from None
    if len(frame) != entry.get("rows", len(frame)):
        raise TraceFileError(f"{file} holds {len(frame)} rows, {META_FILE} says {entry['rows']}; the trace is damaged.")
    frame = _restore_columns(frame, table, entry.get("columns") or [], file)
    frame.attrs = dict(entry.get("attrs") or {})
    return frame


def _restore_columns(frame: pd.DataFrame, table, columns: list, file: Path) -> pd.DataFrame:
    for column in columns:
        name, dtype = column.get("name"), column.get("dtype")
        if name not in frame.columns:
            raise TraceFileError(f"{file} lacks column {name!r} listed in {META_FILE}; the trace is damaged.")
        if dtype == "object" and column.get("values") == "ndarray":
            frame[name] = _ndarrays(table.column(name), column["item_dtype"], frame.index)
        elif dtype == "object":
            # pyarrow gives numpy arrays for lists and pandas' str dtype for
            # strings; the frame held plain Python values
            values = table.column(name).to_pylist()
            frame[name] = pd.Series(values, index=frame.index, dtype=object)
        elif "categories" in column:
            frame[name] = _restore_categorical(frame[name], column)
        elif str(frame[name].dtype) != dtype:
            try:
                frame[name] = frame[name].astype(dtype)
            except (TypeError, ValueError) as err:
                raise TraceFileError(
                    f"{file}: column {name!r} cannot be restored to dtype {dtype} ({err}); "
                    f"the trace was saved by an incompatible pandas."
                ) from None
    return frame


def _restore_categorical(series: pd.Series, column: dict) -> pd.Series:
    categories = pd.Index(column["categories"], dtype=column.get("categories_dtype"))
    dtype = pd.CategoricalDtype(categories, ordered=bool(column.get("ordered")))
    if series.dtype == dtype:
        return series
    values = pd.Categorical(series.astype(object), dtype=dtype)
    return pd.Series(values, index=series.index, name=series.name)


def _ndarrays(column, item_dtype: str, index) -> pd.Series:
    """A list column back to one numpy array (of item_dtype) per row."""
    array = column.combine_chunks()
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(item_dtype, copy=False)
    offsets = array.offsets.to_numpy() - array.offsets[0].as_py()
    pieces = np.split(flat, offsets[1:-1]) if len(array) else []
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    values = np.empty(len(array), dtype=object)
    for i, (piece, null) in enumerate(zip(pieces, nulls)):
        values[i] = None if null else piece.copy()
    return pd.Series(values, index=index, dtype=object)
