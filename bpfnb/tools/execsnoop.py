"""execsnoop: every exec() with its command line, parent and result."""

from __future__ import annotations

import re

import numpy as np

from . import _base
from ._base import Route

SOURCE = r"""
struct exec_t {
    u64 ts;
    u32 pid;
    u32 tid;
    u32 ppid;
    s32 ret;
    u32 argc;
    u32 truncated;       /* more than MAX_ARGS arguments */
    char comm[16];
    char filename[ARG_LEN];
    u8 argv[MAX_ARGS * ARG_LEN];  /* bcc's ctypes mis-size 2-D char arrays */
};
BPF_PERCPU_ARRAY(scratch, struct exec_t, 1);
BPF_HASH(inflight, u32, struct exec_t, 1024);
BPF_HASH(parents, u32, u32, 16384);
BPF_PERF_OUTPUT(execs);

TRACEPOINT_PROBE(sched, sched_process_fork) {
    u32 child = args->child_pid;
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    parents.update(&child, &parent);
    return 0;
}

static __always_inline int on_exec_enter(const char *filename, const char *const *argv) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (FILTER_PPID) {
        u32 *pp = parents.lookup(&tgid);
        if (!pp || *pp != FILTER_PPID) return 0;
    }
    int zero = 0;
    struct exec_t *e = scratch.lookup(&zero);
    if (!e) return 0;
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = tid;
    e->ret = 0;
    e->argc = 0;
    u32 *pp = parents.lookup(&tgid);
    e->ppid = pp ? *pp : 0;
    bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename);
#pragma unroll
    for (int i = 0; i < MAX_ARGS; i++) {
        const char *arg = NULL;
        bpf_probe_read_user(&arg, sizeof(arg), &argv[i]);
        if (!arg) break;
        bpf_probe_read_user_str(&e->argv[i * ARG_LEN], ARG_LEN, arg);
        e->argc = i + 1;
    }
    const char *more = NULL;
    if (e->argc == MAX_ARGS) bpf_probe_read_user(&more, sizeof(more), &argv[MAX_ARGS]);
    e->truncated = more != NULL;
    inflight.update(&tid, e);
    return 0;
}

static __always_inline int on_exec_exit(void *ctx, long ret) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct exec_t *e = inflight.lookup(&tid);
    if (!e) return 0;
    e->ret = ret;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    execs.perf_submit(ctx, e, sizeof(*e));
    inflight.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    return on_exec_enter(args->filename, args->argv);
}
TRACEPOINT_PROBE(syscalls, sys_exit_execve) {
    return on_exec_exit(args, args->ret);
}
"""

EXECVEAT = r"""
TRACEPOINT_PROBE(syscalls, sys_enter_execveat) {
    return on_exec_enter(args->filename, args->argv);
}
TRACEPOINT_PROBE(syscalls, sys_exit_execveat) {
    return on_exec_exit(args, args->ret);
}
"""

ARG_LEN = 128

ROUTES = [
    Route(
        "syscall tracepoints",
        needs=("tracepoint:syscalls:sys_enter_execve", "tracepoint:syscalls:sys_exit_execve",
               "tracepoint:sched:sched_process_fork"),
        optional=("tracepoint:syscalls:sys_enter_execveat", "tracepoint:syscalls:sys_exit_execveat"),
        measures="execve/execveat calls: file name and argv read at syscall entry, result and new "
                 "comm at syscall exit",
        differs_from_bcc="bcc 0.26 uses a kprobe on the execve syscall function; here syscall "
                         "tracepoints. ppid comes from sched_process_fork seen during the capture "
                         "(else /proc when the process still lives, else 0), not task_struct.",
    ),
]


def plan() -> Route:
    return _base.choose("execsnoop", ROUTES)


def execsnoop(duration: float = 5, *, ppid: int | None = None, failed: bool = False,
              name: str | None = None, line: str | None = None, max_args: int = 20,
              on_attach=None):
    """Trace exec() calls.

    Options (bcc's execsnoop): ppid (only children of this parent), failed
    (-x: only failed execs), name (-n: regex on comm), line (-l: regex on the
    command line), max_args (--max-args, at most 32).

    Returns a Trace with events "execs": ts, time, pid, tid, ppid, comm (after
    the exec), filename (as passed to execve), argv (list of str), args (argv
    joined with spaces), argc, truncated (True when there were more than
    max_args arguments), ret (0 or -errno).
    """
    route = plan()
    if not 1 <= int(max_args) <= 32:
        raise _base.ToolError(f"max_args={max_args}: use 1..32")
    source = SOURCE + (EXECVEAT if _base.have(route.optional[0]) else "")
    defines = {"MAX_ARGS": int(max_args), "ARG_LEN": ARG_LEN, "FILTER_PPID": int(ppid or 0)}
    raw = _base.run("execsnoop", source, route, duration=duration, defines=defines,
                    on_attach=on_attach, options=dict(ppid=ppid, failed=failed, name=name,
                                                      line=line, max_args=max_args))
    frame = raw.events("execs")
    argv = [_base.strings(cells.reshape(-1, ARG_LEN))[: int(n)] for cells, n in zip(frame["argv"], frame["argc"])]
    frame = frame.assign(argv=argv, args=[" ".join(a) for a in argv], truncated=frame["truncated"].astype(bool))
    frame["ppid"] = _fill_ppid(frame["ppid"].to_numpy(), frame["pid"].to_numpy())
    if failed:
        frame = frame[frame["ret"] != 0]
    if name:
        frame = frame[frame["comm"].str.contains(name, regex=True)]
    if line:
        frame = frame[frame["args"].map(lambda s: re.search(line, s) is not None)]
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "tid", "ppid", "comm", "ret", "filename", "args", "argv", "argc",
                           "truncated"])
    return _base.result(raw, {("events", "execs"): frame},
                        note_if_empty="no exec() happened during the capture (or none matched the filters)")


def _fill_ppid(ppid: np.ndarray, pid: np.ndarray) -> np.ndarray:
    """ppid 0 (fork not seen): take it from /proc while the process lives."""
    out = ppid.copy()
    for i in np.flatnonzero(out == 0):
        try:
            with open(f"/proc/{int(pid[i])}/status") as f:
                for text in f:
                    if text.startswith("PPid:"):
                        out[i] = int(text.split()[1])
                        break
        except OSError:
            pass
    return out
