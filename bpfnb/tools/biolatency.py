"""biolatency: block I/O latency as a log2 histogram, optionally per disk or per flags."""

from __future__ import annotations

from . import _base, _block
from ._base import Route

SOURCE = r"""
struct hist_key { u32 dev; char rwbs[12]; u64 slot; };
BPF_HISTOGRAM(latency, struct hist_key, 4096);

TRACEPOINT_PROBE(block, block_rq_complete) {
    struct req_info r = {};
    if (!req_done(args->dev, args->sector, &r)) return 0;
    if (BPFNB_SKIP_TGID(r.pid)) return 0;
    u64 start = FROM_QUEUED ? r.queued_ns : r.issued_ns;
    u64 delta = (bpf_ktime_get_ns() - start) / UNIT_NS;
    struct hist_key key = {};
    key.slot = bpf_log2l(delta);
    if (PER_DISK) key.dev = args->dev;
    if (PER_FLAG) bpf_probe_read_kernel(&key.rwbs, sizeof(args->rwbs), args->rwbs);
    latency.atomic_increment(key);
    return 0;
}
"""

ROUTES = [
    Route(
        "block tracepoints",
        needs=_block.NEEDS,
        optional=_block.OPTIONAL,
        measures="block request latency, block_rq_issue (or block_rq_insert with queued=True) to "
                 "block_rq_complete",
        differs_from_bcc="bcc 0.26 times struct request pointers from kprobes/raw tracepoints; here "
                         "requests are matched by (device, sector). Per-flag histograms key on the "
                         "rwbs text the tracepoint gives ('W', 'WS', 'RA', ...) rather than bcc's "
                         "decoded cmd_flags.",
    ),
]


def plan() -> Route:
    return _base.choose("biolatency", ROUTES)


def biolatency(duration: float = 5, *, milliseconds: bool = False, queued: bool = False,
               disks: bool = False, flags: bool = False, pid: int | None = None,
               interval: float | None = None, on_attach=None):
    """Block I/O latency histogram.

    Options (bcc's biolatency): milliseconds (-m; default microseconds),
    queued (-Q: include time queued in the OS), disks (-D: one histogram per
    disk), flags (-F: one per rwbs flags), pid (only I/O submitted by this
    process), interval (seconds: the histogram gets a `time` column, one
    histogram per interval, as bcc prints every interval).

    Returns a Trace with hist "latency": [time], [disk], [flags], low, high,
    count; bounds in the unit named by attrs["unit"] ("usecs" or "msecs").
    """
    route = plan()
    unit = "msecs" if milliseconds else "usecs"
    defines = {**_base.pid_defines(pid), "UNIT_NS": 1_000_000 if milliseconds else 1000,
               "FROM_QUEUED": int(bool(queued)), "PER_DISK": int(bool(disks)), "PER_FLAG": int(bool(flags))}
    source = _block.block_source(route, SOURCE)
    raw = _run(source, route, duration, defines, interval, on_attach,
               dict(milliseconds=milliseconds, queued=queued, disks=disks, flags=flags, pid=pid,
                    interval=interval))
    hist = raw.hist("latency")
    attrs = dict(hist.attrs)
    hist = hist.copy()
    if disks:
        hist.insert(list(hist.columns).index("dev"), "disk", _block.disk_column(hist))
    hist = hist.drop(columns=["dev"])
    if flags:
        hist = hist.rename(columns={"rwbs": "flags"})
    else:
        hist = hist.drop(columns=["rwbs"])
    hist = hist.reset_index(drop=True)
    hist.attrs.update(attrs, unit=unit)
    return _base.result(raw, {("hist", "latency"): hist},
                        note_if_empty="no block I/O completed during the capture")


def _run(source, route, duration, defines, interval, on_attach, options):
    return _base.run("biolatency", source, route, duration=duration, defines=defines,
                     on_attach=on_attach, hist_types={"latency": "log2"}, options=options,
                     interval=interval, hist_interval=interval is not None)
