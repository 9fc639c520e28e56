"""offwaketime: where threads block, who woke them, and how long they waited.

    t = bpfnb.tools.offwaketime(duration=5, pid=1234)
    t.stacks()                          # [comm, pid, stack, value]: microseconds
    bpfnb.flamegraph(t, kind="offwake")

Each `stack` is laid out as bcc's `offwaketime -f` prints it: the blocked
thread's stack root to leaf, "--", the waker's stack leaf to root, then the
waker's name.
"""

from __future__ import annotations

import numpy as np

from ..symbols import offwake_stack
from . import _stacks
from ._base import Route, choose, pid_defines

# sched_waking runs in the waker's context: its stacks are the waker's, kept
# by the wakee's thread id until the wakee is switched in. Only threads that
# left the CPU asleep (prev_state not runnable) are timed: a preempted thread
# has no waker.
SOURCE = _stacks.BLOCKED_C + r"""
struct waker_t {
    u32 pid;
    s32 user_stack_id;
    s32 kernel_stack_id;
    char comm[16];
};
struct key_t {
    u32 pid;
    u32 waker_pid;
    s32 user_stack_id;
    s32 kernel_stack_id;
    s32 waker_user_stack_id;
    s32 waker_kernel_stack_id;
    char comm[16];
    char waker_comm[16];
};
BPF_HASH(wakers, u32, struct waker_t, MAX_ENTRIES);
BPF_HASH(counts, struct key_t, u64, MAX_ENTRIES);
BPF_PERCPU_ARRAY(unwoken, u64, 1);       /* blocks that ended with no waker seen */

TRACEPOINT_PROBE(sched, sched_waking) {
    u32 wakee = args->pid;
    if (!blocked.lookup(&wakee)) return 0;   /* not a thread being timed */
    struct waker_t w = {};
    w.pid = bpf_get_current_pid_tgid() >> 32;
    w.user_stack_id = user_stack_id(args);
    w.kernel_stack_id = kernel_stack_id(args);
    bpf_get_current_comm(&w.comm, sizeof(w.comm));
    if (wakers.update(&wakee, &w)) count_drop(2);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_switch) {
    u32 prev = args->prev_pid, next = args->next_pid;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;       /* prev's process */
    if (prev && !BPFNB_SKIP_TGID(tgid) && (args->prev_state & 0xff) != 0)
        block_start(args, prev, tgid);
    struct blocked_t b;
    u64 us;
    if (!block_end(next, &b, &us)) return 0;
    struct key_t key = {};
    key.pid = b.pid;
    key.user_stack_id = b.user_stack_id;
    key.kernel_stack_id = b.kernel_stack_id;
    __builtin_memcpy(&key.comm, b.comm, sizeof(key.comm));
    struct waker_t *w = wakers.lookup(&next);
    if (!w) {
        int zero_slot = 0;
        u64 *n = unwoken.lookup(&zero_slot);
        if (n) (*n)++;
        return 0;
    }
    key.waker_pid = w->pid;
    key.waker_user_stack_id = w->user_stack_id;
    key.waker_kernel_stack_id = w->kernel_stack_id;
    __builtin_memcpy(&key.waker_comm, w->comm, sizeof(key.waker_comm));
    wakers.delete(&next);
    if (us < MIN_US || us > MAX_US) return 0;
    u64 zero = 0;
    u64 *total = counts.lookup_or_try_init(&key, &zero);
    if (total) __sync_fetch_and_add(total, us);
    else count_drop(0);
    return 0;
}
"""

ROUTES = [
    Route(
        "sched_waking + sched_switch tracepoints",
        needs=("tracepoint:sched:sched_waking", "tracepoint:sched:sched_switch", _stacks.EXEC_NEED),
        measures="time threads spend asleep off CPU, in microseconds, by the stacks they blocked in "
                 "and the stacks (and name) of the thread that woke them",
        differs_from_bcc="bcc's offwaketime uses kprobes on try_to_wake_up and finish_task_switch; "
                         "here the waker's stacks come from the sched_waking tracepoint (in the "
                         "waker's context) and the blocked thread's from sched_switch at switch-out. "
                         "Preempted threads (no waker) are left out; blocks that end with no waker "
                         "seen are counted in meta['tool']['unwoken'].",
    ),
]

WHY = ("tracepoints sched:sched_waking (runs in the waker's context, so its stacks are the waker's) "
       "and sched:sched_switch (blocked thread's stacks at switch-out, time charged at switch-in); "
       "no kprobes or fentry needed" + _stacks.EXEC_WHY)


def plan() -> Route:
    return choose("offwaketime", ROUTES)


def offwaketime(duration: float | None = 5, *, pid: int | None = None, min_us: int = 1,
                max_us: int | None = None, user: bool = True, kernel: bool = True,
                stack_storage: int = _stacks.DEFAULT_STACK_STORAGE, on_attach=None):
    """Time asleep per (blocked stack, waker stack), for `duration` seconds.

    Options (bcc's offwaketime): pid (-p: only blocks of this process's
    threads; their wakers may be anyone), min_us / max_us (-m / -M),
    user=False (-K: kernel stacks only), kernel=False (-U: user stacks
    only), stack_storage (--stack-storage-size). on_attach() runs once the
    tracepoints are live.

    Returns a Trace with stacks "counts": [comm, pid, stack, value], value =
    microseconds asleep; comm and pid are the blocked thread's, and
    `stack` is "blocked root;...;blocked leaf;--;waker leaf;...;waker
    root;waker name" (bcc's `offwaketime -f`). bpfnb.flamegraph(t,
    kind="offwake") draws it with the blocked part in blue and the waker
    above in aqua.
    """
    _stacks.check_options(user=user, kernel=kernel, stack_storage=stack_storage, duration=duration)
    min_us, max_us = _stacks.bounds_us(min_us, max_us)
    route = plan()
    defines = {**pid_defines(pid), **_stacks.stack_defines(user, kernel, stack_storage),
               "MIN_US": f"{min_us}ULL", "MAX_US": f"{max_us}ULL"}

    def fold(rows, read_stack, usyms):
        return fold_offwake(rows, read_stack, usyms, user, kernel)

    return _stacks.capture(
        "offwaketime", SOURCE, route, duration=duration, defines=defines, pid=pid,
        pid_fields=("pid", "waker_pid"), on_attach=on_attach, fold=fold, why=WHY,
        user_stacks=user, counters=("unwoken",),
        options=dict(pid=pid, min_us=min_us, max_us=None if max_us == _stacks.U64_MAX else max_us, user=user,
                     kernel=kernel, stack_storage=stack_storage),
    )


def fold_offwake(rows, read_stack, usyms, user: bool, kernel: bool):
    """[comm, pid, stack, value] in bcc's offwaketime -f layout."""
    if not len(rows):
        return _stacks.empty_stacks(["comm", "pid"])
    frame = rows.assign(comm=_stacks.comm_column(rows),
                        waker_comm=_stacks.comm_column(rows, "waker_comm"))

    def fold(prefix: str, pid: str) -> list[str]:
        return _stacks.fold_rows(frame, read_stack, usyms, pid=pid,
                                 kernel=f"{prefix}kernel_stack_id" if kernel else None,
                                 user=f"{prefix}user_stack_id" if user else None)

    stacks = [offwake_stack(target, waker, waker_comm or "[unknown]")
              for target, waker, waker_comm in zip(fold("", "pid"), fold("waker_", "waker_pid"),
                                                   frame["waker_comm"].tolist())]
    out = frame[["comm", "pid"]].assign(stack=np.array(stacks, dtype=object),
                                        value=frame["value"].to_numpy())
    return _stacks.summed(out, ["comm", "pid"])
