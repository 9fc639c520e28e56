"""Build a Trace from a program's state: event sinks, maps, histograms, stacks.

Everything read here is copied into numpy/pandas, so the Trace survives
the program's close.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from . import maps as kmaps
from .frames.hist import from_slots
from .frames.structs import key_value_frame, parts_to_frame
from .symbols import fold_stack_ids
from .trace import Trace

_USER_STACK = re.compile(r"^(user_stack_id|ustack_id|ustack|user_stack|u_stack_id)$")
_KERNEL_STACK = re.compile(r"^(kernel_stack_id|kern_stack_id|kstack_id|kstack|kernel_stack|k_stack_id|stack_id)$")


def event_frame(sink) -> pd.DataFrame:
    return parts_to_frame(sink.parts(), sink.dtype)


def map_frame(table, per_cpu: bool = False) -> pd.DataFrame:
    keys, values = kmaps.read_table(table)
    if values.ndim == 2 and per_cpu:
        n, ncpu = values.shape
        frame = key_value_frame(np.repeat(keys, ncpu), values.reshape(-1))
        frame.insert(len(frame.columns) - _n_value_columns(values), "cpu", np.tile(np.arange(ncpu, dtype=np.int32), n))
        return frame
    return key_value_frame(keys, kmaps.sum_per_cpu(values))


def _n_value_columns(values: np.ndarray) -> int:
    return len(values.dtype.names) if values.dtype.names else 1


def hist_frame(table, hist_type: str) -> pd.DataFrame:
    keys, values = kmaps.read_table(table)
    values = kmaps.sum_per_cpu(values)
    counts = values if values.dtype.names is None else values[values.dtype.names[0]]
    if keys.dtype.names is None:
        slots = pd.DataFrame({"slot": keys.astype(np.int64), "count": counts.astype(np.int64)})
        key_cols: list[str] = []
    else:
        if "slot" not in keys.dtype.names:
            raise ValueError(
                f"histogram key struct has no 'slot' field (fields: {keys.dtype.names}); "
                "bcc's keyed histograms use a struct with a u64 slot"
            )
        frame = key_value_frame(keys, counts)
        slots = frame.rename(columns={"value": "count"})
        slots["slot"] = slots["slot"].astype(np.int64)
        slots["count"] = slots["count"].astype(np.int64)
        key_cols = [c for c in slots.columns if c not in ("slot", "count")]
    return from_slots(slots, hist_type=hist_type, keys=key_cols)


def stack_columns(key_fields) -> tuple[str | None, str | None]:
    """(user stack id field, kernel stack id field) in a map key, by bcc's names."""
    user = next((f for f in key_fields if _USER_STACK.match(f)), None)
    kernel = next((f for f in key_fields if _KERNEL_STACK.match(f)), None)
    return user, kernel


def stacks_frame(frame: pd.DataFrame, user_col, kernel_col, stack_table, symbolize=None, *,
                 usyms=None) -> pd.DataFrame:
    """Folded stacks for a map frame whose key holds stack ids.

    By default (symbolize None) kernel frames are resolved in bulk from
    /proc/kallsyms with the tracing glue on top stripped, and user frames
    per process (the `tgid` or `pid` column) through `usyms`, a
    bpfnb.symbols.UserSymbols (a fresh one when None: only processes alive
    now resolve). Stack ids that are errors other than -EFAULT (no stack of
    that kind) show as "[Missing User Stack]" / "[Missing Kernel Stack]".
    `symbolize(kind, addresses, pid)`, when given, names the frames of one
    stack instead (leaf first in, leaf first out); kind is "kernel" or "user".
    """
    pid_col = next((c for c in ("tgid", "pid") if c in frame.columns), None)
    value_cols = [c for c in frame.columns if c in ("value", "count", "total", "total_ns", "delta", "us", "ns")]
    if not value_cols:
        value_cols = [frame.columns[-1]]
    id_cols = [c for c in (user_col, kernel_col) if c]
    key_cols = [c for c in frame.columns if c not in id_cols and c not in value_cols]
    if symbolize is None:
        stacks = _fold_in_bulk(frame, user_col, kernel_col, pid_col, stack_table, usyms)
    else:
        stacks = _fold_each(frame, user_col, kernel_col, pid_col, stack_table, symbolize)
    out = frame[key_cols].copy()
    out["stack"] = stacks
    for col in value_cols:
        out[col] = frame[col].to_numpy()
    group = [c for c in key_cols if c not in ("cpu",)] + ["stack"]
    out = out.groupby(group, sort=False, dropna=False)[value_cols].sum().reset_index()
    if value_cols != ["value"] and "value" not in out.columns:
        out["value"] = out[value_cols[0]]
    return out.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)


def _fold_in_bulk(frame, user_col, kernel_col, pid_col, stack_table, usyms) -> list[str]:
    n = len(frame)
    return fold_stack_ids(
        frame[kernel_col].to_numpy(dtype=np.int64) if kernel_col else None,
        frame[user_col].to_numpy(dtype=np.int64) if user_col else None,
        frame[pid_col].to_numpy(dtype=np.int64) if pid_col else np.full(n, -1, dtype=np.int64),
        lambda stack_id: kmaps.read_stack(stack_table, stack_id), usyms)


def _fold_each(frame, user_col, kernel_col, pid_col, stack_table, symbolize) -> list[str]:
    id_cols = [c for c in (user_col, kernel_col) if c]
    cache: dict[tuple, str] = {}
    stacks = []
    for row in frame[id_cols + ([pid_col] if pid_col else [])].itertuples(index=False):
        values = dict(zip(id_cols + ([pid_col] if pid_col else []), row))
        pid = int(values[pid_col]) if pid_col else -1
        uid = int(values[user_col]) if user_col else -1
        kid = int(values[kernel_col]) if kernel_col else -1
        cache_key = (uid, kid, pid if uid >= 0 else -1)
        if cache_key not in cache:
            user = symbolize("user", kmaps.read_stack(stack_table, uid), pid) if uid >= 0 else []
            kernel = symbolize("kernel", kmaps.read_stack(stack_table, kid), pid) if kid >= 0 else []
            cache[cache_key] = ";".join(list(reversed(user)) + list(reversed(kernel)))
        stacks.append(cache[cache_key])
    return stacks


def bcc_symbolizer(bpf):
    """Name frames with bcc's resolvers (one call per address), cached."""
    names: dict[tuple, str] = {}

    def name_of(kind, addr, pid):
        key = (kind, addr, pid if kind == "user" else -1)
        if key not in names:
            raw = bpf.ksym(addr) if kind == "kernel" else bpf.sym(addr, pid)
            names[key] = raw.decode("utf-8", "replace") if raw else "[unknown]"
        return names[key]

    return lambda kind, addrs, pid: [name_of(kind, a, pid) for a in addrs]


def build_trace(program, sinks: dict, *, per_cpu: bool = False, hist_series=None,
                lost_extra: dict | None = None, meta: dict | None = None, usyms=None) -> Trace:
    """A Trace of everything the program has produced so far.

    usyms: a bpfnb.symbols.UserSymbols that remembered the traced processes
    while they ran (default: a fresh one, so only live processes resolve).
    """
    b = program.bpf
    trace = Trace(meta=meta or {})
    lost = {name: sink.lost for name, sink in sinks.items()}
    for name, n in (lost_extra or {}).items():
        # failures the program counted itself; for perf outputs these include
        # the ones the kernel's lost records report, so take the larger
        lost[name] = max(lost.get(name, 0), n)
    for name, sink in sinks.items():
        trace.add("events", name, event_frame(sink))
    stack_table = b[program.outputs.stack_tables[0]] if program.outputs.stack_tables else None
    for name in program.outputs.maps:
        frame = map_frame(b[name], per_cpu=per_cpu)
        trace.add("map", name, frame)
        user_col, kernel_col = stack_columns(frame.columns)
        if stack_table is not None and (user_col or kernel_col):
            trace.add("stacks", name, stacks_frame(frame, user_col, kernel_col, stack_table, usyms=usyms))
    for name, hist_type in program.outputs.hists.items():
        if hist_series and name in hist_series:
            trace.add("hist", name, hist_series[name])
        else:
            trace.add("hist", name, hist_frame(b[name], hist_type))
    trace.lost.update(lost)
    return trace
