"""Many saved traces as one table, without loading them into memory.

    ddf = bpfnb.fleet.load_many("week/*.bpfnb")                   # Dask DataFrame (lazy)
    ddf.groupby("host")["lat_us"].max().compute()
    rel = bpfnb.fleet.load_many("week/", engine="duckdb")          # DuckDB relation (lazy)
    bpfnb.fleet.query("week/", "SELECT host, quantile_cont(lat_us, 0.99) FROM events GROUP BY host")

Sources: a folder (searched recursively), a glob, a list of paths, or a
Trace captured with spill_dir=. Each source is a saved trace (NAME.bpfnb,
see bpfnb.io.native) or a spill folder (spill.json, see bpfnb.spill). Only
the metadata (meta.json, spill.json, Parquet footers) is read up front;
rows are read by Dask or DuckDB when a query runs.

Every row gets `trace` (the trace folder's name) and `host` (from the
frame when it has one, as fleet captures do, else the trace's meta).
"""

from __future__ import annotations

import glob as _glob
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import BpfnbError, did_you_mean

ENGINES = ("dask", "duckdb")
__all__ = ["load_many", "query", "find_traces", "sources", "OutOfCoreError", "Source"]


class OutOfCoreError(BpfnbError):
    """Saved traces that cannot be read together (none found, output missing, columns differ)."""


@dataclass(frozen=True)
class Source:
    """One Parquet file to read and the constant columns its rows get."""

    file: str
    trace: str
    host: str | None
    rows: int


def find_traces(where) -> list[Path]:
    """Trace folders (NAME.bpfnb) and spill folders under a folder, a glob or a list."""
    from ..spill import MANIFEST
    from ..trace import Trace

    if isinstance(where, Trace):
        from ..spill import manifest_of

        return [manifest_of(where)[0]]
    items = list(where) if isinstance(where, (list, tuple)) else [where]
    found: list[Path] = []
    for item in items:
        text = str(item)
        paths = [Path(p) for p in sorted(_glob.glob(text, recursive=True))] if _glob.has_magic(text) \
            else [Path(text)]
        for path in paths:
            if _is_trace(path):
                found.append(path)
            elif path.is_dir():
                found += sorted(p.parent for p in path.rglob("meta.json") if _is_trace(p.parent))
                found += sorted(p.parent for p in path.rglob(MANIFEST))
    found = list(dict.fromkeys(found))
    if not found:
        raise OutOfCoreError(f"no saved traces in {where!r}: expected NAME.bpfnb folders (Trace.save) "
                             "or spill folders (spill.json); check the path or the glob")
    return found


def _is_trace(path: Path) -> bool:
    from ..spill import MANIFEST

    return path.is_dir() and ((path / "meta.json").is_file() or (path / MANIFEST).is_file())


def sources(where, kind: str = "events", name: str | None = None) -> tuple[str, list[Source]]:
    """(output name, the Parquet files that hold it) across every trace found."""
    folders = find_traces(where)
    entries: list[tuple[str, Source]] = []
    for folder in folders:
        entries += _entries(folder, kind)
    names = list(dict.fromkeys(n for n, _ in entries))
    if name is None:
        if len(names) != 1:
            raise OutOfCoreError(
                f"the traces hold {len(names)} {kind} outputs ({', '.join(names) or 'none'}); "
                f"name one, e.g. load_many(..., kind={kind!r}, name={names[0] if names else 'NAME'!r})")
        name = names[0]
    # a saved spilled trace and its spill folder may both be found: read each file once
    chosen = list({str(Path(s.file).resolve()): s for n, s in entries if n == name}.values())
    if not chosen:
        raise OutOfCoreError(f"no {kind} output named {name!r} in these traces." + did_you_mean(name, names))
    return name, chosen


def _entries(folder: Path, kind: str) -> list[tuple[str, Source]]:
    from ..spill import MANIFEST

    if (folder / MANIFEST).is_file():
        if kind != "events":
            return []
        doc = _read_json(folder / MANIFEST)
        out = []
        for name, info in (doc.get("outputs") or {}).items():
            for part in info.get("parts", []):
                out.append((name, Source(str(folder / part["file"]), folder.name, doc.get("host"),
                                         int(part["rows"]))))
        return out
    doc = _read_json(folder / "meta.json")
    if doc.get("format") != "bpfnb-trace":
        raise OutOfCoreError(f"{folder / 'meta.json'} is not bpfnb trace metadata; remove it from the set")
    meta = doc.get("meta") or {}
    out = []
    spilled = (meta.get("spill") or {}).get("folder")
    for entry in doc.get("outputs") or []:
        if entry.get("kind") != kind:
            continue
        if spilled and entry.get("rows") == 0 and Path(spilled, "spill.json").is_file():
            continue  # the rows are in the spill folder, found through it below
        out.append((entry["name"], Source(str(folder / entry["file"]), folder.name, meta.get("host"),
                                          int(entry.get("rows", 0)))))
    if spilled and Path(spilled, "spill.json").is_file():
        out += _entries(Path(spilled), kind)
    return out


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise OutOfCoreError(f"{path} cannot be read ({err}); copy that trace again or leave it out") from None
    return doc if isinstance(doc, dict) else {}


def _schema(files: list[Source]) -> list[str]:
    """The column names every file shares (files of other programs are refused)."""
    import pyarrow.parquet as pq

    names = [n for n in pq.read_schema(files[0].file).names if not n.startswith("__index_level_")]
    for source in files[1:]:
        other = [n for n in pq.read_schema(source.file).names if not n.startswith("__index_level_")]
        if other != names:
            raise OutOfCoreError(
                f"{source.file} has columns {other}, but {files[0].file} has {names}: these traces "
                "come from different programs; load them separately")
    return names


def read_part(source: Source, columns=None, file_columns=()) -> pd.DataFrame:
    """One Source as a Dask partition: only `columns` (Dask passes the ones a query uses).

    `ddf.groupby("host")["lat_us"].max()` reads one column of each file, not
    all. Text stays in Arrow (pandas' Arrow string dtype) and `host`/`trace`
    are built in Arrow: no Python string per row.
    """
    import pyarrow.parquet as pq

    columns = list(columns) if columns is not None else None
    wanted = [c for c in (columns or file_columns) if c in file_columns]
    return part_frame(pq.read_table(source.file, columns=wanted), source, columns)


def part_frame(table, source: Source, columns=None) -> pd.DataFrame:
    import pyarrow as pa

    n = table.num_rows
    extra = [("host", source.host)] if "host" not in table.column_names else []
    extra.append(("trace", source.trace))
    for name, value in extra:
        if (columns is None or name in columns) and name not in table.column_names:
            table = table.append_column(name, pa.repeat(pa.scalar(value, pa.string()), n))
    frame = table.to_pandas(types_mapper=_arrow_strings, ignore_metadata=True)
    if columns is not None:
        return frame[[c for c in columns if c in frame.columns]]
    return frame


def _arrow_strings(arrow_type):
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def load_many(where, *, kind: str = "events", name: str | None = None, engine: str = "dask",
              con=None, view: str | None = None):
    """Every trace's output `name` of `kind` as one lazy table.

    engine "dask": a dask.dataframe.DataFrame, one partition per file, reading
    only the columns a query uses; text columns in pandas' Arrow string dtype.
    engine "duckdb": a DuckDB relation on `con` (a new in-memory connection
    if None); with view="events" it is also a view of that name on `con`.
    """
    if engine not in ENGINES:
        raise OutOfCoreError(f"engine={engine!r}: use one of {', '.join(ENGINES)}")
    _, files = sources(where, kind, name)
    columns = _schema(files)
    if engine == "dask":
        import dask.dataframe as dd
        import pyarrow.parquet as pq

        order = (["host"] if "host" not in columns else []) + columns + (["trace"] if "trace" not in columns else [])
        meta = part_frame(pq.read_schema(files[0].file).empty_table(), files[0], order)
        return dd.from_map(read_part, files, meta=meta, enforce_metadata=False, label="bpfnb-load-many",
                           file_columns=tuple(columns))
    return _duckdb_relation(files, columns, con, view)


def _duckdb_relation(files: list[Source], columns: list[str], con, view: str | None):
    import duckdb

    con = con if con is not None else duckdb.connect()
    table = f"bpfnb_files_{uuid.uuid4().hex[:10]}"
    mapping = pd.DataFrame({"file": [s.file for s in files], "trace": [s.trace for s in files],
                            "host": [s.host for s in files]}, dtype=object)
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM mapping")
    quoted = [_q(c) for c in columns]
    select = ["m.host AS host"] if "host" not in columns else []
    select += [f"p.{c}" for c in quoted]
    if "trace" not in columns:
        select.append("m.trace AS trace")
    paths = "[" + ", ".join(_lit(s.file) for s in files) + "]"
    sql = (f"SELECT {', '.join(select)} FROM read_parquet({paths}, filename = true) p "
           f"JOIN {table} m ON p.filename = m.file")
    if view:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {_q(view)} AS {sql}")
        return con.table(view)
    return con.sql(sql)


def _q(identifier: str) -> str:
    return '"' + str(identifier).replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def query(where, sql: str, *, kind: str = "events", name: str | None = None, view: str = "events",
          con=None) -> pd.DataFrame:
    """Run DuckDB SQL over every trace's output, seen as the table `view`; a pandas result."""
    import duckdb

    con = con if con is not None else duckdb.connect()
    load_many(where, kind=kind, name=name, engine="duckdb", con=con, view=view)
    try:
        return con.sql(sql).df()
    except duckdb.Error as err:
        raise OutOfCoreError(f"the query failed: {err}. The table is {view!r}; "
                             f"see its columns with query(..., 'DESCRIBE {view}')") from None
