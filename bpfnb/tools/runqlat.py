"""runqlat: run-queue (scheduler) latency, as a log2 histogram."""

from __future__ import annotations

from . import _base
from ._base import Route

SOURCE = r"""
struct hist_key { u32 id; u32 pad; u64 slot; };
BPF_HASH(queued, u32, u64, 65536);       /* tid -> when it became runnable */
BPF_HASH(tgids, u32, u32, 65536);        /* tid -> tgid, learned when the thread runs */
BPF_HISTOGRAM(latency, struct hist_key, 8192);

static __always_inline int wanted(u32 tid) {
    if (!tid) return 0;                  /* the idle task */
    if (FILTER_PID == 0) return 1;
    if (tid == FILTER_PID) return 1;
    u32 *tgid = tgids.lookup(&tid);
    return tgid && *tgid == FILTER_PID;
}
static __always_inline void enqueue(u32 tid) {
    if (!wanted(tid)) return;
    u64 ts = bpf_ktime_get_ns();
    queued.update(&tid, &ts);
}
TRACEPOINT_PROBE(sched, sched_wakeup) { enqueue(args->pid); return 0; }
TRACEPOINT_PROBE(sched, sched_wakeup_new) { enqueue(args->pid); return 0; }

TRACEPOINT_PROBE(sched, sched_switch) {
    u64 id = bpf_get_current_pid_tgid();            /* still the previous task */
    u32 prev = args->prev_pid, tgid = id >> 32;
    if (prev) tgids.update(&prev, &tgid);
    if ((args->prev_state & 0xff) == 0) enqueue(prev);  /* preempted: still runnable */
    u32 next = args->next_pid;
    u64 *ts = queued.lookup(&next);
    if (!ts) return 0;
    u64 delta = (bpf_ktime_get_ns() - *ts) / UNIT_NS;
    queued.delete(&next);
    struct hist_key key = {};
    if (PER_THREAD) key.id = next;
    else if (PER_PROCESS) {
        u32 *g = tgids.lookup(&next);
        key.id = g ? *g : next;
    }
    key.slot = bpf_log2l(delta);
    latency.atomic_increment(key);
    return 0;
}
"""

ROUTES = [
    Route(
        "sched tracepoints",
        needs=("tracepoint:sched:sched_wakeup", "tracepoint:sched:sched_wakeup_new",
               "tracepoint:sched:sched_switch"),
        measures="time from a thread becoming runnable (sched_wakeup, sched_wakeup_new, or "
                 "preemption at sched_switch) to running (sched_switch in)",
        differs_from_bcc="bcc 0.26 uses the same tracepoints as raw tracepoints and reads task_struct "
                         "for tgids; here the tgid of a thread is learned when it is seen running, so "
                         "a pid filter or per-process histogram may miss a thread's first wakeups.",
    ),
]


def plan() -> Route:
    return _base.choose("runqlat", ROUTES)


def runqlat(duration: float = 5, *, milliseconds: bool = False, pid: int | None = None,
            pids: bool = False, tids: bool = False, interval: float | None = None, on_attach=None):
    """Run-queue latency histogram.

    Options (bcc's runqlat): milliseconds (-m; default microseconds), pid
    (-p: only this process's threads), pids (-P: one histogram per process),
    tids (-L: one per thread), interval (seconds: a `time` column, one
    histogram per interval).

    Returns a Trace with hist "latency": [time], [pid | tid], low, high,
    count; attrs["unit"] is "usecs" or "msecs".
    """
    route = plan()
    if pids and tids:
        raise _base.ToolError("pids=True and tids=True: choose one (per process or per thread)")
    defines = {**_base.pid_defines(pid), "UNIT_NS": 1_000_000 if milliseconds else 1000,
               "PER_PROCESS": int(bool(pids)), "PER_THREAD": int(bool(tids))}
    raw = _base.run("runqlat", SOURCE, route, duration=duration, defines=defines, on_attach=on_attach,
                    interval=interval, hist_interval=interval is not None, hist_types={"latency": "log2"},
                    options=dict(milliseconds=milliseconds, pid=pid, pids=pids, tids=tids, interval=interval))
    hist = raw.hist("latency")
    attrs = dict(hist.attrs)
    hist = hist.drop(columns=["pad"])
    hist = hist.rename(columns={"id": "pid"}) if pids else (
        hist.rename(columns={"id": "tid"}) if tids else hist.drop(columns=["id"]))
    if not (pids or tids):
        keys = [c for c in ("time",) if c in hist.columns]
        hist = hist.groupby(keys + ["low", "high"], as_index=False)["count"].sum()
    hist = hist.reset_index(drop=True)
    hist.attrs.update(attrs, unit="msecs" if milliseconds else "usecs")
    return _base.result(raw, {("hist", "latency"): hist},
                        note_if_empty="no thread waited on a run queue during the capture (or none matched)")
