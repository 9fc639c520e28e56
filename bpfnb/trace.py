"""Trace: the plain result of a capture. Data only, no kernel handles.

A Trace holds DataFrames grouped by kind:

- "events": one frame per event output (BPF_PERF_OUTPUT, BPF_RINGBUF_OUTPUT)
- "map":    one frame per map snapshot (key columns, value columns)
- "hist":   one frame per histogram ([key columns...], low, high, count)
- "stacks": folded stacks derived from a map whose key holds stack ids
            ([key columns...], stack, value)

plus `lost` ({output name: events lost}) and `meta` (a JSON-able dict).
The same name may appear under several kinds (a map "counts" and the
stacks derived from it).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

from .errors import OutputError

KINDS = ("events", "map", "hist", "stacks")


class Trace:
    """Result of a capture: frames by kind and name, lost counts, metadata."""

    def __init__(
        self,
        frames: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
        lost: Mapping[str, int] | None = None,
        meta: Mapping | None = None,
    ):
        frames = frames or {}
        unknown = set(frames) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown frame kinds {sorted(unknown)}; expected {KINDS}")
        self._frames: dict[str, dict[str, pd.DataFrame]] = {
            kind: dict(frames.get(kind, {})) for kind in KINDS
        }
        self.lost: dict[str, int] = {str(k): int(v) for k, v in (lost or {}).items()}
        self.meta: dict = dict(meta or {})

    # -- access ----------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        """Names of the outputs of one kind, in capture order."""
        return list(self._frames[kind])

    @property
    def outputs(self) -> dict[str, list[str]]:
        """{kind: [names]} for every kind that has outputs."""
        return {k: list(v) for k, v in self._frames.items() if v}

    def frame(self, kind: str, name: str | None = None) -> pd.DataFrame:
        """The frame of one output; name may be left out when the kind has one."""
        if kind not in KINDS:
            raise OutputError(f"unknown output kind {kind!r}; use one of {', '.join(KINDS)}")
        frames = self._frames[kind]
        if name is None:
            if len(frames) == 1:
                return next(iter(frames.values()))
            if not frames:
                raise OutputError(self._missing_message(kind, None))
            raise OutputError(
                f"this trace has {len(frames)} {kind} outputs ({', '.join(frames)}); "
                f"name one, e.g. .{kind}({next(iter(frames))!r})"
            )
        if name not in frames:
            raise OutputError(self._missing_message(kind, name))
        return frames[name]

    def _missing_message(self, kind: str, name: str | None) -> str:
        what = f"no {kind} output named {name!r}" if name else f"no {kind} output"
        others = [f".{k}({n!r})" for k in KINDS for n in self._frames[k]]
        hint = f"; it has {', '.join(others)}" if others else "; it is empty"
        if name:
            from .errors import did_you_mean

            hint += did_you_mean(name, self._frames[kind])
        return f"this trace has {what}{hint}"

    def events(self, name: str | None = None) -> pd.DataFrame:
        return self.frame("events", name)

    def map(self, name: str | None = None) -> pd.DataFrame:
        return self.frame("map", name)

    def hist(self, name: str | None = None) -> pd.DataFrame:
        return self.frame("hist", name)

    def stacks(self, name: str | None = None) -> pd.DataFrame:
        return self.frame("stacks", name)

    def items(self) -> Iterable[tuple[str, str, pd.DataFrame]]:
        """(kind, name, frame) for every output."""
        for kind in KINDS:
            for name, frame in self._frames[kind].items():
                yield kind, name, frame

    def add(self, kind: str, name: str, frame: pd.DataFrame) -> None:
        """Add or replace one output's frame (used by captures and importers)."""
        if kind not in KINDS:
            raise ValueError(f"unknown frame kind {kind!r}")
        self._frames[kind][name] = frame

    def wall_time(self, ts_ns, tz: str | None = None) -> pd.Series:
        """bpf_ktime_get_ns() values of this capture -> wall-clock datetimes."""
        offset = self.meta.get("monotonic_to_wall_ns")
        if offset is None:
            raise OutputError("this trace has no clock offset (meta['monotonic_to_wall_ns']); "
                              "it was not made by bpfnb.capture")
        from .frames.time import wall_time

        return wall_time(ts_ns, offset, tz=tz)

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    # -- persistence (bpfnb.io.native) -------------------------------------
    def save(self, path) -> str:
        """Save to a .bpfnb folder (Parquet + JSON); see bpfnb.load."""
        from .io.native import save_trace

        return save_trace(self, path)

    # -- display ---------------------------------------------------------
    def summary_rows(self) -> list[tuple[str, str, int, int]]:
        """(kind, name, rows, lost) per output."""
        return [
            (kind, name, len(frame), self.lost.get(name, 0))
            for kind, name, frame in self.items()
        ]

    def __repr__(self) -> str:
        parts = [f"{kind} {name!r}: {rows} rows" for kind, name, rows, _ in self.summary_rows()]
        lost = f", lost {self.lost}" if self.total_lost else ""
        return f"<Trace {'; '.join(parts) or 'empty'}{lost}>"

    def _repr_pretty_(self, p, cycle):
        from .display import trace_text

        p.text(repr(self) if cycle else trace_text(self))

    def _repr_html_(self) -> str:
        from .display import trace_html

        return trace_html(self)

