"""profile: on-CPU stacks by timed sampling (perf cpu-clock), for flame graphs.

    t = bpfnb.tools.profile(duration=5, hz=49)
    t.stacks()                      # [comm, pid, stack, value]: samples per stack
    bpfnb.flamegraph(t)             # on-CPU flame graph
"""

from __future__ import annotations

from . import _stacks
from ._base import ToolError, choose, pid_defines
from ._stacks import PerfRoute

SOURCE = r"""
#include <uapi/linux/bpf_perf_event.h>

struct key_t {
    u32 pid;
    s32 user_stack_id;
    s32 kernel_stack_id;
    char comm[16];
};
BPF_HASH(counts, struct key_t, u64, MAX_ENTRIES);

int on_sample(struct bpf_perf_event_data *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = id;
    if (tid == 0 && !INCLUDE_IDLE) return 0;     /* the idle task: no work there */
    if (BPFNB_SKIP_TGID(tgid)) return 0;
    struct key_t key = {};
    key.pid = tgid;
    key.user_stack_id = user_stack_id(&ctx->regs);
    key.kernel_stack_id = kernel_stack_id(&ctx->regs);
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    u64 zero = 0;
    u64 *n = counts.lookup_or_try_init(&key, &zero);
    if (n) __sync_fetch_and_add(n, 1);
    else count_drop(0);
    return 0;
}
"""

ROUTES = [
    PerfRoute(
        "perf cpu-clock sampling",
        needs=("perf:cpu-clock", _stacks.EXEC_NEED),
        measures="on-CPU stacks (user and kernel) of whatever runs on each CPU, sampled HZ times a "
                 "second by a software timer; value = samples",
        differs_from_bcc="the same perf-event sampling as bcc's profile; samples are keyed by process "
                         "(pid column) as well as name, and user stacks are symbolized from the "
                         "processes' memory maps recorded while they ran.",
    ),
]

WHY = ("perf_event cpu-clock: a software timer that fires on every CPU at the requested rate; it needs "
       "no hardware PMU (works in VMs) and no kprobes or fentry" + _stacks.EXEC_WHY)


def plan():
    return choose("profile", ROUTES)


def profile(duration: float | None = 5, *, hz: int = 49, pid: int | None = None, user: bool = True,
            kernel: bool = True, include_idle: bool = False,
            stack_storage: int = _stacks.DEFAULT_STACK_STORAGE, on_attach=None):
    """Sample on-CPU stacks `hz` times a second per CPU for `duration` seconds.

    Options (bcc's profile): hz (-F), pid (-p: only this process),
    user=False (-K: kernel stacks only), kernel=False (-U: user stacks
    only), include_idle (-I: keep the idle task's samples, pid 0),
    stack_storage (--stack-storage-size). on_attach() runs once the
    sampling is live (start a workload there).

    Returns a Trace with stacks "counts": [comm, pid, stack, value], value =
    samples; `stack` is user frames root first then kernel frames, as
    bcc's `profile -f` folds them. bpfnb.flamegraph(trace) draws it; pass
    keys=["comm"] to merge the processes of one program.
    """
    hz = int(hz)
    if not 1 <= hz <= 100_000:
        raise ToolError(f"hz={hz}: sample between 1 and 100000 times a second (49 or 99 are usual)")
    _stacks.check_options(user=user, kernel=kernel, stack_storage=stack_storage, duration=duration)
    route = plan()
    defines = {**pid_defines(pid), **_stacks.stack_defines(user, kernel, stack_storage),
               "INCLUDE_IDLE": int(bool(include_idle))}
    return _stacks.capture(
        "profile", SOURCE, route, duration=duration, defines=defines, pid=pid,
        fold=_stacks.by_process(user, kernel), attach=[f"perf:cpu-clock:{hz}=on_sample"],
        on_attach=on_attach, why=WHY, user_stacks=user,
        options=dict(hz=hz, pid=pid, user=user, kernel=kernel, include_idle=include_idle,
                     stack_storage=stack_storage),
    )
