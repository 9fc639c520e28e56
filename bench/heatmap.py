#!/usr/bin/env python3
"""Benchmark: (timestamp, latency) rows -> finished HeatMap -> SVG string.

Rows come from ../shared/bench/gen_latency_trace.py (three latency modes, a
drifting slow mode, periodic bursts, a long tail), scaled to --events
(default 10,000,000). Generating them takes a while in pure Python, so the
generator is run once and its output cached as .npy under /tmp.

The anchor is the figure quoted in the issue, NOT measured here:
trace2heatmap.pl takes 0.88 s per 1,000,000 rows on this machine. The
target is 10,000,000 rows in <= 1.0 s (about 9x its per-row speed).

Figures are printed last, one per line.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bpfnb.plot.heatmap import heatmap  # noqa: E402

GENERATOR = ROOT.parent / "shared" / "bench" / "gen_latency_trace.py"
CACHE = Path("/tmp/bpfnb-bench")
QUOTED_PERL_S_PER_1M = 0.88  # from the issue text, not measured in this run
TARGET_S = 1.0


def load_rows(events: int, seconds: float, seed: int) -> pd.DataFrame:
    """The generator's rows as a DataFrame (ts in us, lat_us), cached under /tmp."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"latency-{events}-{seconds:g}s-seed{seed}.npy"
    if not path.exists():
        if not GENERATOR.exists():
            sys.exit(f"generator not found at {GENERATOR}")
        print(f"generating {events:,} rows with {GENERATOR.name} (once; cached in {path})",
              file=sys.stderr)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(GENERATOR), "--events", str(events), "--seconds", str(seconds),
             "--seed", str(seed)], stdout=subprocess.PIPE)
        frame = pd.read_csv(proc.stdout, sep=" ", header=None, names=["ts", "lat_us"],
                            dtype=np.int64, engine="c")
        if proc.wait() != 0:
            sys.exit("the generator failed")
        np.save(path, frame.to_numpy())
        print(f"generated in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    data = np.load(path)
    return pd.DataFrame({"ts": data[:, 0].copy(), "lat_us": data[:, 1].copy()})


def run_once(rows: pd.DataFrame, **options) -> tuple[float, str, object]:
    t0 = time.perf_counter()
    hm = heatmap(rows, time="ts", value="lat_us", time_unit="us", **options)
    svg = hm.to_svg()
    return time.perf_counter() - t0, svg, hm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()

    rows = load_rows(a.events, a.seconds, a.seed)
    run_once(rows.iloc[:1000])  # warm imports and caches
    times = []
    for _ in range(a.repeat):
        seconds, svg, hm = run_once(rows)
        times.append(seconds)
    log_seconds, _, log_hm = run_once(rows, scale="log", quantile=0.999)
    best = min(times)
    per_million = best / (len(rows) / 1e6)
    print(f"# {hm!r}")
    print(f"# log rows, 0.999 quantile cut-off: {log_hm!r}")
    cells = svg.count('<rect class="cell"')
    print(f"# SVG: {len(svg):,} characters, {cells:,} cells drawn (non-empty bins: {hm.bins.nonempty:,})")
    print(f"# runs (s): {', '.join(f'{t:.3f}' for t in times)}")
    print(f"rows: {len(rows)}")
    print(f"seconds_rows_to_svg_best: {best:.3f}")
    print(f"seconds_rows_to_svg_median: {statistics.median(times):.3f}")
    print(f"seconds_rows_to_svg_log_quantile: {log_seconds:.3f}")
    print(f"rows_per_second: {len(rows) / best:,.0f}")
    print(f"seconds_per_1M_rows: {per_million:.4f}")
    print(f"quoted_trace2heatmap_pl_seconds_per_1M_rows (issue figure, not measured here): "
          f"{QUOTED_PERL_S_PER_1M}")
    print(f"speedup_per_row_vs_quoted_figure: {QUOTED_PERL_S_PER_1M / per_million:.1f}x")
    print(f"target_seconds_for_10M_rows: {TARGET_S} ({'met' if best * 1e7 / len(rows) <= TARGET_S else 'NOT met'})")


if __name__ == "__main__":
    main()
