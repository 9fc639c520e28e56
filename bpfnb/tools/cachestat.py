"""cachestat: page-cache hits, misses and dirtied pages per interval.

bcc's cachestat counts calls of mark_page_accessed(), add_to_page_cache_lru(),
account_page_dirtied() and mark_buffer_dirty() with kprobes. Without kprobes
this counts from tracepoints instead:

- reads:  pages returned by read()/pread64() calls that went through the page
          cache (the thread hit filemap:mm_filemap_get_pages during the call),
          counted from the bytes returned, plus one page per file page fault
          (filemap:mm_filemap_fault);
- misses: pages added to the page cache (filemap:mm_filemap_add_to_page_cache,
          1 << order pages each) by a thread inside such a read or fault;
- hits:   reads - misses (at least 0);
- dirties: folios dirtied (writeback:writeback_dirty_folio);
- added / deleted: every page added to / removed from the page cache.
"""

from __future__ import annotations

import ctypes as ct
import time

import numpy as np
import pandas as pd

from . import _base
from ._base import Route

SOURCE = r"""
struct slot_key { u32 slot; u32 pid; };
struct counts_t { u64 reads; u64 misses; u64 dirties; u64 added; u64 deleted; };
BPF_HASH(counts, struct slot_key, struct counts_t, 65536);
BPF_HASH(reading, u32, u32, 8192);   /* tid -> 1 while in read(), 2 once it touched the page cache */
BPF_ARRAY(start_ns, u64, 1);          /* set just before attaching */

static __always_inline struct counts_t *slot_counts(u32 tgid) {
    int zero = 0;
    u64 *start = start_ns.lookup(&zero);
    if (!start) return 0;
    struct slot_key key = {};
    key.slot = (bpf_ktime_get_ns() - *start) / INTERVAL_NS;
    key.pid = PER_PROCESS ? tgid : 0;
    struct counts_t empty = {};
    return counts.lookup_or_try_init(&key, &empty);
}
/* the current process's counters, or 0 when the pid filter skips it */
static __always_inline struct counts_t *wanted_counts(void) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (BPFNB_SKIP_TGID(tgid)) return 0;
    return slot_counts(tgid);
}

static __always_inline int read_enter(void) {
    u64 id = bpf_get_current_pid_tgid();
    if (BPFNB_SKIP_TGID(id >> 32)) return 0;
    u32 tid = (u32)id, one = 1;
    reading.update(&tid, &one);
    return 0;
}
static __always_inline int read_exit(long ret) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u32 *state = reading.lookup(&tid);
    if (!state) return 0;
    if (*state == 2 && ret > 0) {
        struct counts_t *c = slot_counts(id >> 32);
        if (c) __sync_fetch_and_add(&c->reads, (ret + 4095) / 4096);
    }
    reading.delete(&tid);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_enter_read) { return read_enter(); }
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return read_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_pread64) { return read_enter(); }
TRACEPOINT_PROBE(syscalls, sys_exit_pread64) { return read_exit(args->ret); }

TRACEPOINT_PROBE(filemap, mm_filemap_get_pages) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 *state = reading.lookup(&tid);
    if (state) *state = 2;
    return 0;
}
TRACEPOINT_PROBE(filemap, mm_filemap_fault) {
    struct counts_t *c = wanted_counts();
    if (c) __sync_fetch_and_add(&c->reads, 1);
    return 0;
}
TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache) {
    struct counts_t *c = wanted_counts();
    if (!c) return 0;
    u64 pages = 1ULL << (args->order & 31);
    __sync_fetch_and_add(&c->added, pages);
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (reading.lookup(&tid)) __sync_fetch_and_add(&c->misses, pages);
    return 0;
}
TRACEPOINT_PROBE(filemap, mm_filemap_delete_from_page_cache) {
    struct counts_t *c = wanted_counts();
    if (c) __sync_fetch_and_add(&c->deleted, 1ULL << (args->order & 31));
    return 0;
}
TRACEPOINT_PROBE(writeback, writeback_dirty_folio) {
    struct counts_t *c = wanted_counts();
    if (c) __sync_fetch_and_add(&c->dirties, 1);
    return 0;
}
"""

ROUTES = [
    Route(
        "filemap and writeback tracepoints",
        needs=("tracepoint:filemap:mm_filemap_get_pages", "tracepoint:filemap:mm_filemap_fault",
               "tracepoint:filemap:mm_filemap_add_to_page_cache",
               "tracepoint:filemap:mm_filemap_delete_from_page_cache",
               "tracepoint:writeback:writeback_dirty_folio",
               "tracepoint:syscalls:sys_enter_read", "tracepoint:syscalls:sys_exit_read",
               "tracepoint:syscalls:sys_enter_pread64", "tracepoint:syscalls:sys_exit_pread64"),
        measures="page-cache reads = pages returned by read()/pread64() calls through the page cache "
                 "+ file page faults; misses = pages added to the cache during those calls; "
                 "hits = reads - misses; dirties = folios dirtied",
        differs_from_bcc="bcc counts mark_page_accessed()/add_to_page_cache_lru()/account_page_dirtied() "
                         "with kprobes, so it also counts accesses from buffered writes and kernel "
                         "readers. Here accesses are reads by user read()/pread64() (not readv, "
                         "sendfile, splice) and faults; readahead pages added during a read count as "
                         "misses of that read; dirties count folios (a large folio counts once).",
    ),
]


def plan() -> Route:
    return _base.choose("cachestat", ROUTES)


def cachestat(duration: float = 5, *, interval: float = 1.0, pid: int | None = None,
              per_process: bool = False, on_attach=None):
    """Page-cache statistics per interval.

    Options: interval (seconds per row, bcc's positional interval), pid (only
    this process's activity), per_process (one row per process and interval,
    like cachetop).

    Returns a Trace with map "cachestat": interval (index), start_s (seconds
    since attach), [pid], reads, hits, misses, ratio (hits / reads, NaN with
    no reads), dirties, added, deleted, buffers_mb, cached_mb (from
    /proc/meminfo at the end of the interval; NaN when not sampled).
    """
    route = plan()
    if interval <= 0:
        raise _base.ToolError(f"interval={interval}: use a positive number of seconds")
    interval_ns = int(float(interval) * 1e9)
    defines = {**_base.pid_defines(pid), "INTERVAL_NS": interval_ns, "PER_PROCESS": int(bool(per_process))}
    memory: list[dict] = []
    start = []

    def set_start(program):  # bpf_ktime_get_ns() is CLOCK_MONOTONIC
        start.append(time.monotonic_ns())
        program.bpf["start_ns"][ct.c_int(0)] = ct.c_uint64(start[0])

    def sample(run, elapsed):
        memory.append({"interval": (time.monotonic_ns() - start[0]) // interval_ns - 1, **_meminfo()})

    raw = _base.run("cachestat", SOURCE, route, duration=duration, defines=defines, on_attach=on_attach,
                    interval=interval, on_interval=sample, prepare=set_start,
                    options=dict(interval=interval, pid=pid, per_process=per_process))
    frame = summarize(raw.map("counts"), memory, interval, per_process)
    return _base.result(raw, {("map", "cachestat"): frame},
                        note_if_empty="no page-cache activity was seen during the capture")


def summarize(counts: pd.DataFrame, memory: list[dict], interval: float, per_process: bool) -> pd.DataFrame:
    """Counter rows (slot, pid, reads, misses, ...) -> one row per interval [and pid]."""
    frame = counts.rename(columns={"slot": "interval"}).copy()
    if not per_process:
        frame = frame.drop(columns=["pid"])
    keys = ["interval"] + (["pid"] if per_process else [])
    frame = frame.sort_values(keys).reset_index(drop=True)
    reads = frame["reads"].astype("int64")
    misses = frame["misses"].astype("int64")
    hits = np.maximum(reads - misses, 0)
    frame.insert(len(keys), "start_s", frame["interval"].astype("float64") * interval)
    frame["hits"] = hits
    frame["ratio"] = np.where(reads > 0, hits / reads.where(reads > 0, 1), np.nan)
    mem = pd.DataFrame(memory, columns=["interval", "buffers_mb", "cached_mb"]).drop_duplicates("interval", keep="last")
    frame = frame.merge(mem, on="interval", how="left")
    columns = keys[:1] + ["start_s"] + keys[1:] + ["reads", "hits", "misses", "ratio", "dirties",
                                                  "added", "deleted", "buffers_mb", "cached_mb"]
    return frame[columns]


def _meminfo() -> dict:
    values = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("Buffers", "Cached"):
                    values[name] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return {"buffers_mb": values.get("Buffers", np.nan), "cached_mb": values.get("Cached", np.nan)}
