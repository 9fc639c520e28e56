"""bpfnb on many hosts: capture on every Dask worker at once, analyse captures larger than memory.

    from dask.distributed import Client
    client = Client("scheduler:8786")                       # pip install bpfnb[fleet]
    t = bpfnb.fleet.capture(client, "runqlat", duration=10)  # one Trace, a `host` column
    t.meta["hosts"]                                          # kernel, lost, attach points, errors
    bpfnb.fleet.summary(t)                                   # the same, one row per host
    bpfnb.fleet.hist(t)                                      # per-host small multiples
    bpfnb.fleet.heatmap(t.events(), value="lat_us")          # hosts as rows
    bpfnb.fleet.flamegraph(t, host="web-3", baseline="web-1")  # differenced by host
    ddf = bpfnb.fleet.load_many("captures/*.bpfnb")          # a Dask DataFrame, lazily
    rel = bpfnb.fleet.load_many("captures/", engine="duckdb")  # a DuckDB relation
    bpfnb.fleet.query("captures/", "SELECT host, count(*) FROM events GROUP BY host")

Dask and DuckDB are imported only when used (the `fleet` extra).
"""

from __future__ import annotations

from .capture import HOST, FleetError, FleetRun, capture, host_labels, merge, start, summary, wall_time
from .outofcore import OutOfCoreError, find_traces, load_many, query
from .pictures import flamegraph, heatmap, hist, host_matrix

__all__ = ["capture", "start", "FleetRun", "FleetError", "HOST", "host_labels", "merge", "summary", "wall_time",
           "load_many", "query", "find_traces", "OutOfCoreError",
           "hist", "heatmap", "host_matrix", "flamegraph"]
