"""What profile, offcputime and offwaketime share.

- `STACKS_C`: the stack table, user/kernel stack-id helpers, a drop counter
  and an exec watcher (a process that exec()s gets new user symbols).
- `BLOCKED_C`: offcputime's and offwaketime's clock of threads off CPU,
  with the stacks they blocked in; `bounds_us(...)` checks their
  min_us / max_us.
- `capture(...)`: compile, attach, run; every REMEMBER_EVERY seconds read
  the pids in the `counts` map and remember their memory maps (so the user
  stacks of processes that exit before the capture ends still resolve);
  after detaching, fold the stack ids into a Trace "stacks" frame while the
  stack table is still open.
- `fold_rows(...)`: one folded stack per row of stack ids.
- `PerfRoute`: a Route whose needs may name perf events ("perf:cpu-clock").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import system
from ..procmem import ProcessMemory
from ..symbols import UserSymbols, fold_stack_ids
from ..trace import Trace
from . import _base
from ._base import Route, ToolError

REMEMBER_EVERY = 0.1  # seconds between looks for new processes
DEFAULT_STACK_STORAGE = 16384  # stacks the table holds (bcc's default)
MAX_ENTRIES = 65536  # distinct (process, stacks) rows and threads tracked

# attach point every stack tool adds (STACKS_C's exec watcher)
EXEC_NEED = "tracepoint:sched:sched_process_exec"
EXEC_WHY = ("; sched:sched_process_exec tells when a process runs a new program, so its user "
            "symbols are read again")

# drop counter slots (the C and the report share them)
DROPS = {0: "rows not recorded: the counts map was full",
         1: "blocked threads not timed: the thread map was full",
         2: "wakeups not recorded: the waker map was full"}

STACKS_C = r"""
BPF_STACK_TRACE(stack_traces, STACK_STORAGE);
BPF_PERCPU_ARRAY(dropped, u64, 3);
BPF_HASH(execs, u32, u8, 4096);          /* processes that exec()ed since the last look */

static __always_inline void count_drop(int slot) {
    u64 *n = dropped.lookup(&slot);
    if (n) (*n)++;
}
static __always_inline int user_stack_id(void *ctx) {
    if (!USER_STACKS) return -1;
    return stack_traces.get_stackid(ctx, BPF_F_USER_STACK);
}
static __always_inline int kernel_stack_id(void *ctx) {
    if (!KERNEL_STACKS) return -1;
    return stack_traces.get_stackid(ctx, 0);
}
TRACEPOINT_PROBE(sched, sched_process_exec) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u8 one = 1;
    execs.update(&tgid, &one);
    return 0;
}
"""


# offcputime's and offwaketime's thread timer. At sched_switch the current
# task is still prev: its stacks, taken there, are the stacks it blocks in.
# They wait in `blocked` (by thread id) until the thread is switched in again.
# Comes after STACKS_C and needs MAX_ENTRIES (stack_defines).
BLOCKED_C = r"""
struct blocked_t {
    u64 ts;
    u32 pid;
    s32 user_stack_id;
    s32 kernel_stack_id;
    char comm[16];
};
BPF_HASH(blocked, u32, struct blocked_t, MAX_ENTRIES);

/* at switch-out of thread prev (still current) of process tgid: start its clock */
static __always_inline void block_start(void *ctx, u32 prev, u32 tgid) {
    struct blocked_t b = {};
    b.ts = bpf_ktime_get_ns();
    b.pid = tgid;
    b.user_stack_id = user_stack_id(ctx);
    b.kernel_stack_id = kernel_stack_id(ctx);
    bpf_get_current_comm(&b.comm, sizeof(b.comm));
    if (blocked.update(&prev, &b)) count_drop(1);
}
/* at switch-in of thread next: its record and microseconds off CPU into
   *out and *us, and the record forgotten; 0 when next was not being timed */
static __always_inline int block_end(u32 next, struct blocked_t *out, u64 *us) {
    struct blocked_t *b = blocked.lookup(&next);
    if (!b) return 0;
    *us = (bpf_ktime_get_ns() - b->ts) / 1000;
    __builtin_memcpy(out, b, sizeof(*out));
    blocked.delete(&next);
    return 1;
}
"""


# -- routes -----------------------------------------------------------------------
@dataclass(frozen=True)
class PerfRoute(Route):
    """A Route that may need perf events ("perf:cpu-clock") besides tracepoints."""

    def missing(self) -> list[str]:
        return [n for n in self.needs if not _have(n)]


def _have(need: str) -> bool:
    if need.startswith("perf:"):
        return system.perf_events_available()
    return _base.have(need)


def check_options(*, user: bool, kernel: bool, stack_storage: int, duration) -> None:
    if not (user or kernel):
        raise ToolError("user=False and kernel=False leaves no stack to record: keep at least one True")
    if int(stack_storage) < 1:
        raise ToolError(f"stack_storage={stack_storage}: the stack table needs room for at least one stack, "
                        f"e.g. {DEFAULT_STACK_STORAGE}")
    if duration is not None and duration < 0:
        raise ToolError(f"duration={duration}: give seconds (> 0), or None to run until interrupted")


U64_MAX = (1 << 64) - 1  # max_us=None: no upper bound


def bounds_us(min_us, max_us) -> tuple[int, int]:
    """(min_us, max_us) as the MIN_US / MAX_US defines take them (None: no bound)."""
    min_us = 0 if min_us is None else int(min_us)
    max_us = U64_MAX if max_us is None else int(max_us)
    if min_us < 0:
        raise ToolError(f"min_us={min_us}: a duration in microseconds is >= 0")
    if max_us < min_us:
        raise ToolError(f"max_us={max_us} is below min_us={min_us}: nothing could be counted; "
                        "raise max_us or leave it None")
    return min_us, max_us


def stack_defines(user: bool, kernel: bool, stack_storage: int) -> dict:
    return {"USER_STACKS": int(bool(user)), "KERNEL_STACKS": int(bool(kernel)),
            "STACK_STORAGE": int(stack_storage), "MAX_ENTRIES": MAX_ENTRIES}


# -- remembering processes while they live ---------------------------------------
def capture(tool: str, source: str, route: Route, *, duration, defines: dict, fold, attach=None,
            pid: int | None = None, pid_fields=("pid",), on_attach=None, options=None,
            why: str = "", counters: tuple[str, ...] = (), user_stacks: bool = True) -> Trace:
    """Run a stack tool's program; fold(rows, read_stack, usyms) -> stacks frame.

    rows is the `counts` map as a DataFrame (one column per key field, then
    `value`). The Trace holds that stacks frame as "counts"; lost["counts"]
    counts what the program could not record (maps full), and
    meta["tool"]["missing_stacks"] the stacks the table could not store.
    counters: names of per-CPU u64 arrays whose total goes to meta["tool"].
    user_stacks False: no user stacks, so no process is remembered.
    """
    from ..program import Program
    from ..snapshot import map_frame

    usyms = UserSymbols()
    memory = ProcessMemory(usyms, pid_fields)
    if pid is not None and user_stacks:
        memory.add(int(pid))
    try:
        with Program(_base.PID_FILTER_C + STACKS_C + source, defines=defines, attach=attach) as program:
            b = program.bpf
            runner = _run(program, duration, on_attach,
                          lambda final=False: user_stacks and memory.look(b["counts"], b["execs"], final))
            rows = map_frame(b["counts"])
            stacks = fold(rows, stack_reader(b["stack_traces"]), usyms)
            drops = _drops(b["dropped"])
            totals = {name: sum(_drops(b[name]).values()) for name in counters}
            meta = runner.meta()
    finally:
        memory.close()
    meta["interval"] = None  # the Run's ticks were ours (remembering processes), not the user's
    meta["tool"] = _base.tool_meta(tool, route, options)
    meta["tool"].update(why=why, remember_every_s=REMEMBER_EVERY if user_stacks else None, drops={DROPS[i]: n for i, n in drops.items() if n},
                        missing_stacks=missing_stacks(stacks),
                        processes_remembered=memory.remembered, **totals)
    if not len(stacks):
        meta["tool"]["note"] = ("no stack was recorded: nothing matched during the capture "
                                "(check pid=, and that the workload ran while attached)")
    trace = Trace(lost={"counts": sum(drops.values())}, meta=meta)
    trace.add("stacks", "counts", stacks)
    return trace


def _run(program, duration, on_attach, look):
    """Attach, on_attach(), look() every REMEMBER_EVERY s until the end, detach, look(final=True)."""
    from ..capture import Run

    runner = Run(program, _base.seconds(duration), interval=REMEMBER_EVERY,
                 on_interval=lambda run, elapsed: look())
    _base.attached(runner, on_attach)
    look(final=True)
    return runner


def stack_reader(table):
    """read_stack(id) -> addresses leaf first, each id read once."""
    cache: dict[int, np.ndarray] = {}

    def read(stack_id: int) -> np.ndarray:
        if stack_id not in cache:
            try:
                cache[stack_id] = np.fromiter(table.walk(stack_id), dtype=np.uint64)
            except KeyError:
                cache[stack_id] = np.zeros(0, dtype=np.uint64)
        return cache[stack_id]

    return read


def _drops(table) -> dict[int, int]:
    """{slot: total over CPUs} of a per-CPU u64 array."""
    from ..maps import read_table, sum_per_cpu

    keys, values = read_table(table)
    values = sum_per_cpu(values)
    return {int(k): int(v) for k, v in zip(keys.tolist(), np.asarray(values).tolist())}


def missing_stacks(stacks: pd.DataFrame) -> int:
    """Rows whose stack the table could not store (bcc's [Missing ... Stack])."""
    if not len(stacks):
        return 0
    return int(stacks["stack"].str.contains(r"\[Missing (?:User|Kernel) Stack\]", regex=True).sum())


# -- folding ------------------------------------------------------------------------
def fold_rows(rows: pd.DataFrame, read_stack, usyms: UserSymbols, *, kernel: str | None,
              user: str | None, pid: str) -> list[str]:
    """One folded stack (root first, ";"-joined; "" if none) per row of stack ids."""
    return fold_stack_ids(rows[kernel].to_numpy() if kernel else None,
                          rows[user].to_numpy() if user else None,
                          rows[pid].to_numpy(), read_stack, usyms)


def summed(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """[keys..., stack, value] with equal rows summed, largest value first."""
    frame = frame[frame["stack"] != ""]
    out = frame.groupby([*keys, "stack"], sort=False, as_index=False)["value"].sum()
    return out.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)


def by_process(user: bool, kernel: bool):
    """A fold for capture(): rows of (pid, comm, stack ids, value) ->
    [comm, pid, stack, value], equal stacks of a process summed."""

    def fold(rows, read_stack, usyms):
        if not len(rows):
            return empty_stacks(["comm", "pid"])
        frame = rows.assign(comm=comm_column(rows))
        folded = fold_rows(frame, read_stack, usyms, pid="pid",
                           kernel="kernel_stack_id" if kernel else None,
                           user="user_stack_id" if user else None)
        out = frame[["comm", "pid"]].assign(stack=folded, value=frame["value"].to_numpy())
        return summed(out, ["comm", "pid"])

    return fold


def empty_stacks(keys: list[str]) -> pd.DataFrame:
    return pd.DataFrame({**{k: pd.Series(dtype=object) for k in keys},
                         "stack": pd.Series(dtype=object), "value": pd.Series(dtype=np.uint64)})


def comm_column(rows: pd.DataFrame, name: str = "comm") -> pd.Series:
    col = rows[name]
    if col.dtype == object and len(col) and isinstance(col.iloc[0], (bytes, bytearray)):
        col = col.map(lambda v: bytes(v).split(b"\0", 1)[0].decode("utf-8", "replace"))
    return col


__all__ = ["PerfRoute", "ProcessMemory", "capture", "fold_rows", "summed", "STACKS_C", "BLOCKED_C"]
