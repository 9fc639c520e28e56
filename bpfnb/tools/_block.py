"""What biolatency and biosnoop share: block request identity and timing.

A request is known by (dev, sector) from insert/issue to completion, as the
block tracepoints give no request pointer that outlives them. `REQUEST_C`
records, per request, when it was queued (block_rq_insert, when the kernel
fires it: requests issued straight to the driver skip it), when it was
issued (block_rq_issue), and who submitted it (block_io_start runs in the
submitter's context, Linux 6.5+; before that block_rq_insert's task).
"""

from __future__ import annotations

import pandas as pd

from ._base import Route
from ._devices import disk_name

REQUEST_C = r"""
struct req_key { u32 dev; u32 pad; u64 sector; };
struct req_info { u64 queued_ns; u64 issued_ns; u32 pid; u32 bytes; char comm[16]; };
BPF_HASH(requests, struct req_key, struct req_info, 16384);

static __always_inline struct req_info *req_get(u32 dev, u64 sector) {
    struct req_key key = {.dev = dev, .sector = sector};
    struct req_info zero = {};
    return requests.lookup_or_try_init(&key, &zero);
}
static __always_inline void req_who(struct req_info *r) {
    r->pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&r->comm, sizeof(r->comm));
}
TRACEPOINT_PROBE(block, block_rq_insert) {
    struct req_info *r = req_get(args->dev, args->sector);
    if (!r) return 0;
    r->queued_ns = bpf_ktime_get_ns();
    if (!HAVE_IO_START) req_who(r);
    return 0;
}
TRACEPOINT_PROBE(block, block_rq_issue) {
    struct req_info *r = req_get(args->dev, args->sector);
    if (!r) return 0;
    r->issued_ns = bpf_ktime_get_ns();
    r->bytes = args->bytes;
    if (!r->queued_ns) r->queued_ns = r->issued_ns;   /* issued directly: no time in queue */
    return 0;
}
@IO_START_PROBE@
/* at block_rq_complete: the request's info, removed from the table */
static __always_inline int req_done(u32 dev, u64 sector, struct req_info *out) {
    struct req_key key = {.dev = dev, .sector = sector};
    struct req_info *r = requests.lookup(&key);
    if (!r) return 0;
    __builtin_memcpy(out, r, sizeof(*out));
    requests.delete(&key);
    return out->issued_ns != 0;
}
"""

NEEDS = ("tracepoint:block:block_rq_insert", "tracepoint:block:block_rq_issue",
         "tracepoint:block:block_rq_complete")
OPTIONAL = ("tracepoint:block:block_io_start",)


IO_START_C = r"""
TRACEPOINT_PROBE(block, block_io_start) {   /* a new request: forget any stale entry */
    struct req_key key = {.dev = args->dev, .sector = args->sector};
    struct req_info fresh = {};
    req_who(&fresh);
    requests.update(&key, &fresh);
    return 0;
}
"""


def block_source(route: Route, body: str) -> str:
    """REQUEST_C (with block_io_start when the route has it) + the tool's C."""
    have_start = "tracepoint:block:block_io_start" in route.attach_points()
    source = REQUEST_C.replace("@IO_START_PROBE@", IO_START_C if have_start else "")
    return f"#define HAVE_IO_START {int(have_start)}\n" + source + body


def disk_column(frame: pd.DataFrame, column: str = "dev") -> pd.Series:
    """Kernel dev_t column -> disk names ('vda')."""
    return frame[column].map(lambda d: disk_name(int(d))).astype(object)
