"""offcputime: where threads block, and for how long, from sched:sched_switch.

    t = bpfnb.tools.offcputime(duration=5, pid=1234)
    t.stacks()                          # [comm, pid, stack, value]: microseconds off CPU
    bpfnb.flamegraph(t, kind="offcpu")
"""

from __future__ import annotations

from . import _stacks
from ._base import Route, ToolError, choose, pid_defines

# The blocked thread's stacks are taken at switch-out (_stacks.BLOCKED_C);
# the time off CPU is charged to them when it is switched in again.
SOURCE = _stacks.BLOCKED_C + r"""
struct key_t {
    u32 pid;
    s32 user_stack_id;
    s32 kernel_stack_id;
    char comm[16];
};
BPF_HASH(counts, struct key_t, u64, MAX_ENTRIES);

TRACEPOINT_PROBE(sched, sched_switch) {
    u32 prev = args->prev_pid, next = args->next_pid;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;       /* prev's process */
    if (prev && !BPFNB_SKIP_TGID(tgid) && (STATE < 0 || (args->prev_state & 0xff) == STATE))
        block_start(args, prev, tgid);
    struct blocked_t b;
    u64 us;
    if (!block_end(next, &b, &us)) return 0;
    struct key_t key = {};
    key.pid = b.pid;
    key.user_stack_id = b.user_stack_id;
    key.kernel_stack_id = b.kernel_stack_id;
    __builtin_memcpy(&key.comm, b.comm, sizeof(key.comm));
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
        "sched_switch tracepoint",
        needs=("tracepoint:sched:sched_switch", _stacks.EXEC_NEED),
        measures="time threads spend off CPU (blocked, sleeping or preempted), in microseconds, by the "
                 "user and kernel stacks they left the CPU in",
        differs_from_bcc="bcc's offcputime uses a kprobe on finish_task_switch and takes the stacks at "
                         "switch-in; here both ends are the sched_switch tracepoint (stacks taken at "
                         "switch-out, when the blocked thread is still current). Idle (pid 0) is left "
                         "out; time is keyed by process and name, not by thread.",
    ),
]

WHY = ("tracepoint sched:sched_switch: a stable scheduler tracepoint present on every kernel with "
       "tracing, with prev/next pids as arguments; no kprobe (finish_task_switch) or fentry needed"
       + _stacks.EXEC_WHY)

U64_MAX = _stacks.U64_MAX


def plan() -> Route:
    return choose("offcputime", ROUTES)


def offcputime(duration: float | None = 5, *, pid: int | None = None, min_us: int = 1,
               max_us: int | None = None, user: bool = True, kernel: bool = True,
               state: int | None = None, stack_storage: int = _stacks.DEFAULT_STACK_STORAGE,
               on_attach=None):
    """Total time off CPU per blocked stack, for `duration` seconds.

    Options (bcc's offcputime): pid (-p: only this process's threads),
    min_us / max_us (-m / -M: count only blocks of that many microseconds),
    user=False (-K: kernel stacks only), kernel=False (-U: user stacks
    only), state (--state: only threads leaving the CPU in this state, as
    sched_switch's prev_state reports it: 0 runnable (preempted or
    yielding), 1 interruptible sleep (S), 2 uninterruptible (D)),
    stack_storage (--stack-storage-size). on_attach() runs once the
    tracepoint is live.

    Returns a Trace with stacks "counts": [comm, pid, stack, value], value =
    microseconds off CPU; `stack` is user frames root first, then kernel
    frames down to __schedule. A block still in progress when the capture
    ends is not counted. bpfnb.flamegraph(t, kind="offcpu") draws it.
    """
    _stacks.check_options(user=user, kernel=kernel, stack_storage=stack_storage, duration=duration)
    min_us, max_us = _stacks.bounds_us(min_us, max_us)
    if state is not None and not 0 <= int(state) <= 255:
        raise ToolError(f"state={state}: give a task state as sched_switch reports it "
                        "(0 runnable, 1 sleeping S, 2 uninterruptible D), or None for all")
    route = plan()
    defines = {**pid_defines(pid), **_stacks.stack_defines(user, kernel, stack_storage),
               "MIN_US": f"{min_us}ULL", "MAX_US": f"{max_us}ULL",
               "STATE": -1 if state is None else int(state)}
    return _stacks.capture(
        "offcputime", SOURCE, route, duration=duration, defines=defines, pid=pid, on_attach=on_attach,
        fold=_stacks.by_process(user, kernel), why=WHY, user_stacks=user,
        options=dict(pid=pid, min_us=min_us, max_us=None if max_us == U64_MAX else max_us, user=user,
                     kernel=kernel, state=state, stack_storage=stack_storage),
    )
