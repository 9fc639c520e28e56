"""ext4slower: ext4 reads, writes and fsyncs slower than a threshold.

Without kprobes there is no hook on ext4_file_read_iter() and friends, so
this measures the *syscall* (read, write, pread64, pwrite64, fsync,
fdatasync) from entry to exit, and keeps only calls during which the same
thread hit an ext4 tracepoint (ext4_da_write_begin, ext4_write_begin,
ext4_sync_file_enter, ext4_es_lookup_extent_enter) or the page-cache read
tracepoint filemap:mm_filemap_get_pages on an ext4 device. Those tracepoints
carry the device and inode, which prove the call reached ext4.
"""

from __future__ import annotations

from . import _base
from ._base import Route
from ._devices import disk_name, mounts

NAME_LEN = 128
OPS = {ord("R"): "R", ord("W"): "W", ord("S"): "S"}

SOURCE = r"""
typedef u32 ext4_lblk_t;   /* named by the ext4 tracepoint formats, not by kernel headers */
struct op_t { u64 ts; s64 offset; u64 dev; u64 ino; u32 fd; u32 op; };
struct name_key { u32 tgid; u32 fd; };
struct slow_t {
    u64 ts;
    u64 lat_ns;
    u64 ino;
    s64 offset;
    s64 bytes;
    u32 pid;
    u32 tid;
    u32 dev;
    u32 fd;
    u32 op;
    u32 pad;
    char comm[16];
    char file[NAME_LEN];
};
BPF_HASH(ops, u32, struct op_t, 8192);
BPF_HASH(open_paths, u32, u64, 8192);
BPF_HASH(names, struct name_key, struct slow_t, 8192);   /* only .file is used */
BPF_PERCPU_ARRAY(scratch, struct slow_t, 1);
BPF_PERF_OUTPUT(slow);

static __always_inline int op_enter(u32 fd, u32 op, s64 offset) {
    u64 id = bpf_get_current_pid_tgid();
    if (BPFNB_SKIP_TGID(id >> 32)) return 0;
    u32 tid = (u32)id;
    struct op_t o = {.ts = bpf_ktime_get_ns(), .offset = offset, .fd = fd, .op = op};
    ops.update(&tid, &o);
    return 0;
}

/* a tracepoint that names (dev, inode) ran inside the current syscall */
static __always_inline void op_mark(u64 dev, u64 ino, s64 offset, int known_ext4) {
    if (!known_ext4 && !IS_EXT4_DEV(dev)) return;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct op_t *o = ops.lookup(&tid);
    if (!o || o->dev) return;
    o->dev = dev;
    o->ino = ino;
    if (o->offset < 0) o->offset = offset;
}

static __always_inline int op_exit(void *ctx, long ret) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct op_t *o = ops.lookup(&tid);
    if (!o) return 0;
    u64 now = bpf_ktime_get_ns();
    if (!o->dev || now - o->ts < MIN_NS) { ops.delete(&tid); return 0; }
    int zero = 0;
    struct slow_t *e = scratch.lookup(&zero);
    if (!e) { ops.delete(&tid); return 0; }
    e->ts = now;
    e->lat_ns = now - o->ts;
    e->ino = o->ino;
    e->offset = o->offset;
    e->bytes = ret;
    e->pid = id >> 32;
    e->tid = tid;
    e->dev = o->dev;
    e->fd = o->fd;
    e->op = o->op;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    struct name_key nk = {.tgid = id >> 32, .fd = o->fd};
    struct slow_t *named = names.lookup(&nk);
    if (named) __builtin_memcpy(&e->file, named->file, sizeof(e->file));
    else e->file[0] = 0;
    slow.perf_submit(ctx, e, sizeof(*e));
    ops.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) { return op_enter(args->fd, 'R', -1); }
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return op_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_pread64) { return op_enter(args->fd, 'R', args->pos); }
TRACEPOINT_PROBE(syscalls, sys_exit_pread64) { return op_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_write) { return op_enter(args->fd, 'W', -1); }
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return op_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_pwrite64) { return op_enter(args->fd, 'W', args->pos); }
TRACEPOINT_PROBE(syscalls, sys_exit_pwrite64) { return op_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_fsync) { return op_enter(args->fd, 'S', 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_fsync) { return op_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_fdatasync) { return op_enter(args->fd, 'S', 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_fdatasync) { return op_exit(args, args->ret); }

TRACEPOINT_PROBE(ext4, ext4_da_write_begin) { op_mark(args->dev, args->ino, args->pos, 1); return 0; }
TRACEPOINT_PROBE(ext4, ext4_write_begin) { op_mark(args->dev, args->ino, args->pos, 1); return 0; }
TRACEPOINT_PROBE(ext4, ext4_sync_file_enter) { op_mark(args->dev, args->ino, 0, 1); return 0; }
TRACEPOINT_PROBE(ext4, ext4_es_lookup_extent_enter) {
    op_mark(args->dev, args->ino, (s64)args->lblk * 4096, 1);
    return 0;
}
TRACEPOINT_PROBE(filemap, mm_filemap_get_pages) {
    op_mark(args->s_dev, args->i_ino, (s64)args->index * 4096, 0);
    return 0;
}

/* file names: remember what each fd was opened as (opens seen during the capture) */
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    u64 id = bpf_get_current_pid_tgid();
    if (BPFNB_SKIP_TGID(id >> 32)) return 0;
    u32 tid = (u32)id;
    u64 ptr = (u64)args->filename;
    open_paths.update(&tid, &ptr);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u64 *ptr = open_paths.lookup(&tid);
    if (!ptr) return 0;
    if (args->ret >= 0) {
        int zero = 0;
        struct slow_t *e = scratch.lookup(&zero);
        if (e) {
            bpf_probe_read_user_str(&e->file, sizeof(e->file), (const char *)*ptr);
            struct name_key nk = {.tgid = id >> 32, .fd = args->ret};
            names.update(&nk, e);
        }
    }
    open_paths.delete(&tid);
    return 0;
}
"""

_SYSCALLS = ("read", "pread64", "write", "pwrite64", "fsync", "fdatasync", "openat")
ROUTES = [
    Route(
        "syscall latency marked by ext4 tracepoints",
        needs=tuple(f"tracepoint:syscalls:sys_{d}_{c}" for c in _SYSCALLS for d in ("enter", "exit"))
        + ("tracepoint:ext4:ext4_da_write_begin", "tracepoint:ext4:ext4_write_begin",
           "tracepoint:ext4:ext4_sync_file_enter", "tracepoint:ext4:ext4_es_lookup_extent_enter",
           "tracepoint:filemap:mm_filemap_get_pages"),
        measures="latency of read/pread64/write/pwrite64/fsync/fdatasync syscalls (entry to exit) "
                 "that reached an ext4 file system, as shown by an ext4 tracepoint or a page-cache "
                 "read on an ext4 device in the same thread during the call",
        differs_from_bcc="bcc times ext4_file_read_iter/write_iter/open/sync_file with kprobes (no "
                         "kprobes here). This includes syscall overhead (slightly higher latencies), "
                         "does not report opens ('O'), misses readv/writev/mmap I/O and calls that "
                         "touch none of the marking tracepoints, and names files only when they were "
                         "opened during the capture (else from /proc, else by inode).",
    ),
]


def plan() -> Route:
    return _base.choose("ext4slower", ROUTES)


def ext4slower(duration: float = 5, *, min_ms: float = 10.0, pid: int | None = None, on_attach=None):
    """Trace ext4 reads, writes and fsyncs slower than min_ms (0: all of them).

    Options (bcc's ext4slower): min_ms (the positional threshold, default 10),
    pid (-p).

    Returns a Trace with events "slow": ts (completion), time, pid, tid, comm,
    op ("R", "W", "S" for fsync/fdatasync), bytes (the syscall's result),
    offset (bytes; -1 when unknown), lat_ms, file (path as opened, "" when the
    open was not seen and /proc cannot tell), fd, disk, dev, ino.
    """
    route = plan()
    ext4 = mounts("ext4")
    if not ext4:
        raise _base.ToolUnavailableError(
            "ext4slower: no ext4 file system is mounted here (see /proc/self/mountinfo). "
            "Trace syscall latency on your file system with bpfnb.tools.argdist or trace instead.")
    devs = sorted({m["kdev"] for m in ext4})
    defines = {**_base.pid_defines(pid), "MIN_NS": int(float(min_ms) * 1e6), "NAME_LEN": NAME_LEN}
    is_ext4 = "#define IS_EXT4_DEV(d) (" + " || ".join(f"(d) == {d}" for d in devs) + ")\n"
    raw = _base.run("ext4slower", is_ext4 + SOURCE, route, duration=duration, defines=defines, on_attach=on_attach,
                    options=dict(min_ms=min_ms, pid=pid))
    frame = raw.events("slow")
    frame = frame.assign(
        op=frame["op"].map(OPS),
        lat_ms=frame["lat_ns"].astype("float64") / 1e6,
        disk=frame["dev"].map(lambda d: disk_name(int(d))).astype(object),
        file=[f or _proc_fd_path(p, fd) for f, p, fd in zip(frame["file"], frame["pid"], frame["fd"])],
    ).drop(columns=["lat_ns", "pad"])
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "tid", "comm", "op", "bytes", "offset", "lat_ms", "file", "fd"])
    trace = _base.result(raw, {("events", "slow"): frame},
                         note_if_empty=f"no ext4 read/write/fsync took {min_ms} ms or more during the capture")
    trace.meta["tool"]["ext4_mounts"] = [m["mountpoint"] for m in ext4]
    return trace


def _proc_fd_path(pid, fd) -> str:
    import os

    try:
        return os.readlink(f"/proc/{int(pid)}/fd/{int(fd)}")
    except OSError:
        return ""
