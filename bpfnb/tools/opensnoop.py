"""opensnoop: every open()/openat()/openat2() with its path, flags and result."""

from __future__ import annotations

import os

from . import _base
from ._base import Route

PATH_LEN = 256

SOURCE = r"""
struct open_t {
    u64 ts;
    u32 pid;
    u32 tid;
    s32 ret;
    s32 flags;
    u32 mode;
    u32 call;            /* 0 open, 1 openat, 2 openat2 */
    u64 path_ptr;        /* the user's path, read at exit: the kernel has paged it in by then */
    char comm[16];
    char path[PATH_LEN];
};
BPF_PERCPU_ARRAY(scratch, struct open_t, 1);
BPF_HASH(inflight, u32, struct open_t, 4096);
BPF_PERF_OUTPUT(opens);

static __always_inline int on_open_enter(const char *path, s32 flags, u32 mode, u32 call) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (BPFNB_SKIP_TGID(tgid)) return 0;
    if (FILTER_TID && tid != FILTER_TID) return 0;
    int zero = 0;
    struct open_t *e = scratch.lookup(&zero);
    if (!e) return 0;
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = tid;
    e->flags = flags;
    e->mode = mode;
    e->call = call;
    e->path_ptr = (u64)path;
    inflight.update(&tid, e);
    return 0;
}

static __always_inline int on_open_exit(void *ctx, long ret) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct open_t *e = inflight.lookup(&tid);
    if (!e) return 0;
    e->ret = ret;
    bpf_probe_read_user_str(e->path, sizeof(e->path), (const char *)e->path_ptr);
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    if (!(FAILED_ONLY && ret >= 0))
        opens.perf_submit(ctx, e, sizeof(*e));
    inflight.delete(&tid);
    return 0;
}
"""

PROBES = {
    "openat": r"""
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    return on_open_enter(args->filename, args->flags, args->mode, 1);
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat) { return on_open_exit(args, args->ret); }
""",
    "open": r"""
TRACEPOINT_PROBE(syscalls, sys_enter_open) {
    return on_open_enter(args->filename, args->flags, args->mode, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_open) { return on_open_exit(args, args->ret); }
""",
    "openat2": r"""
TRACEPOINT_PROBE(syscalls, sys_enter_openat2) {
    u64 how[2] = {};                      /* struct open_how: u64 flags, u64 mode, ... */
    bpf_probe_read_user(&how, sizeof(how), args->how);
    return on_open_enter(args->filename, (s32)how[0], (u32)how[1], 2);
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat2) { return on_open_exit(args, args->ret); }
""",
}
CALLS = {0: "open", 1: "openat", 2: "openat2"}

ROUTES = [
    Route(
        "syscall tracepoints",
        needs=("tracepoint:syscalls:sys_enter_openat", "tracepoint:syscalls:sys_exit_openat"),
        optional=("tracepoint:syscalls:sys_enter_open", "tracepoint:syscalls:sys_exit_open",
                  "tracepoint:syscalls:sys_enter_openat2", "tracepoint:syscalls:sys_exit_openat2"),
        measures="open, openat and openat2 syscalls: path and flags at entry, fd or error at exit",
        differs_from_bcc="bcc 0.26 uses kprobes/fentry on the syscall functions; the syscall "
                         "tracepoints see the same calls. creat() and open_by_handle_at() are not traced.",
    ),
]

_FLAG_NAMES = [(getattr(os, n), n) for n in (
    "O_WRONLY", "O_RDWR", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK",
    "O_DSYNC", "O_DIRECT", "O_LARGEFILE", "O_DIRECTORY", "O_NOFOLLOW", "O_NOATIME", "O_CLOEXEC",
    "O_PATH", "O_TMPFILE", "O_SYNC") if hasattr(os, n)]


def plan() -> Route:
    return _base.choose("opensnoop", ROUTES)


def opensnoop(duration: float = 5, *, pid: int | None = None, tid: int | None = None,
              name: str | None = None, path: str | None = None, failed: bool = False,
              on_attach=None):
    """Trace file opens.

    Options (bcc's opensnoop): pid (-p), tid (-t), name (-n: substring of comm),
    path (substring of the opened path), failed (-x: only failed opens).

    Returns a Trace with events "opens": ts, time, pid, tid, comm, path, fd
    (-1 on error), errno (0 on success), flags (int), flags_text
    ("O_WRONLY|O_CREAT"), mode, call ("open", "openat", "openat2").
    """
    route = plan()
    present = [c for c in ("openat", "open", "openat2") if _base.have(f"tracepoint:syscalls:sys_enter_{c}")]
    source = SOURCE + "".join(PROBES[c] for c in present)
    defines = {**_base.pid_defines(pid), "FILTER_TID": int(tid or 0), "FAILED_ONLY": int(bool(failed)),
               "PATH_LEN": PATH_LEN}
    raw = _base.run("opensnoop", source, route, duration=duration, defines=defines, on_attach=on_attach,
                    options=dict(pid=pid, tid=tid, name=name, path=path, failed=failed))
    frame = raw.events("opens")
    ret = frame["ret"].astype("int64")
    frame = frame.assign(
        fd=ret.where(ret >= 0, -1),
        errno=(-ret).where(ret < 0, 0),
        flags_text=frame["flags"].map(flags_text),
        call=frame["call"].map(CALLS),
    ).drop(columns=["ret", "path_ptr"])
    if name:
        frame = frame[frame["comm"].str.contains(name, regex=False)]
    if path:
        frame = frame[frame["path"].str.contains(path, regex=False)]
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "tid", "comm", "fd", "errno", "path", "flags", "flags_text"])
    return _base.result(raw, {("events", "opens"): frame},
                        note_if_empty="no file was opened during the capture (or none matched the filters)")


def flags_text(flags: int) -> str:
    """open(2) flags as text: 'O_RDONLY', 'O_WRONLY|O_CREAT|O_TRUNC'."""
    flags = int(flags) & 0xFFFFFFFF
    names = [n for bit, n in _FLAG_NAMES if bit and flags & bit == bit]
    if flags & 3 == 0:
        names.insert(0, "O_RDONLY")
    return "|".join(names)
