"""biosnoop: one row per block I/O, with its process, disk, size and latency."""

from __future__ import annotations

from . import _base, _block
from ._base import Route

SOURCE = r"""
struct bio_t {
    u64 ts;
    u64 sector;
    u64 queued_ns;
    u64 issued_ns;
    u32 pid;
    u32 dev;
    u32 bytes;
    s32 error;
    char comm[16];
    char rwbs[10];
};
BPF_PERF_OUTPUT(ios);

TRACEPOINT_PROBE(block, block_rq_complete) {
    struct req_info r = {};
    if (!req_done(args->dev, args->sector, &r)) return 0;
    if (BPFNB_SKIP_TGID(r.pid)) return 0;
    struct bio_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.sector = args->sector;
    e.queued_ns = r.queued_ns;
    e.issued_ns = r.issued_ns;
    e.pid = r.pid;
    e.dev = args->dev;
    e.bytes = r.bytes;
    e.error = args->error;
    __builtin_memcpy(&e.comm, r.comm, sizeof(e.comm));
    bpf_probe_read_kernel(&e.rwbs, sizeof(e.rwbs), args->rwbs);
    if (FILTER_DEV && e.dev != FILTER_DEV) return 0;
    ios.perf_submit(args, &e, sizeof(e));
    return 0;
}
"""

ROUTES = [
    Route(
        "block tracepoints",
        needs=_block.NEEDS,
        optional=_block.OPTIONAL,
        measures="each block request from block_rq_insert (queued) / block_rq_issue (sent to the "
                 "device) to block_rq_complete; the submitting process from block_io_start",
        differs_from_bcc="bcc 0.26 keys requests by struct request pointer via kprobes; here by "
                         "(device, sector), so a request whose sector changes (merges, partial "
                         "completions) is not matched and is missing, not wrong.",
    ),
]


def plan() -> Route:
    return _base.choose("biosnoop", ROUTES)


def biosnoop(duration: float = 5, *, pid: int | None = None, disk: str | None = None,
             queued: bool = True, on_attach=None):
    """Trace block I/O requests.

    Options: pid (only requests submitted by this process), disk (e.g. "vda"),
    queued (bcc's -Q: report the time queued in the OS; always measured here).

    Returns a Trace with events "ios": ts (completion), time, pid, comm (the
    submitter; 0/"" when the submitter was not seen), disk, rwbs ("W", "WS",
    "R", ...), sector, bytes, lat_us (issue to completion), queue_us (insert
    to issue; 0 when the request went straight to the driver), error.
    """
    route = plan()
    defines = {**_base.pid_defines(pid), "FILTER_DEV": _disk_dev(disk)}
    raw = _base.run("biosnoop", _block.block_source(route, SOURCE), route, duration=duration,
                    defines=defines, on_attach=on_attach, options=dict(pid=pid, disk=disk, queued=queued))
    frame = raw.events("ios")
    ts = frame["ts"].astype("int64")
    frame = frame.assign(
        disk=_block.disk_column(frame),
        lat_us=(ts - frame["issued_ns"].astype("int64")) / 1e3,
        queue_us=(frame["issued_ns"].astype("int64") - frame["queued_ns"].astype("int64")) / 1e3,
    ).drop(columns=["queued_ns", "issued_ns"])
    if not queued:
        frame = frame.drop(columns=["queue_us"])
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "comm", "disk", "rwbs", "sector", "bytes", "lat_us", "queue_us"])
    return _base.result(raw, {("events", "ios"): frame},
                        note_if_empty="no block I/O completed during the capture (or none matched the filters)")


def _disk_dev(disk: str | None) -> int:
    if not disk:
        return 0
    import os

    from ._devices import kdev

    try:
        with open(f"/sys/class/block/{disk}/dev") as f:
            major, minor = f.read().strip().split(":")
    except OSError:
        names = os.listdir("/sys/class/block") if os.path.isdir("/sys/class/block") else []
        from ..errors import did_you_mean

        raise _base.ToolError(f"disk={disk!r}: no such block device." + did_you_mean(disk, names)
                              + f" Disks here: {', '.join(sorted(names)) or 'none'}.") from None
    return kdev(int(major), int(minor))
