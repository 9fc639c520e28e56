"""gethostlatency: latency of name lookups in libc (getaddrinfo, gethostbyname*)."""

from __future__ import annotations

from . import _base
from ._base import Route

FUNCTIONS = ("getaddrinfo", "gethostbyname", "gethostbyname2")
HOST_LEN = 80

SOURCE = r"""
#include <uapi/linux/ptrace.h>
struct start_t { u64 ts; u32 func; u32 pad; char host[HOST_LEN]; };
struct lookup_t {
    u64 ts;
    u64 lat_ns;
    u32 pid;
    u32 tid;
    s32 ret;
    u32 func;
    char comm[16];
    char host[HOST_LEN];
};
BPF_HASH(starts, u32, struct start_t, 8192);
BPF_PERF_OUTPUT(lookups);

static __always_inline int lookup_enter(struct pt_regs *ctx, u32 func) {
    u64 id = bpf_get_current_pid_tgid();
    if (BPFNB_SKIP_TGID(id >> 32)) return 0;
    u32 tid = (u32)id;
    struct start_t s = {.ts = bpf_ktime_get_ns(), .func = func};
    const char *host = (const char *)PT_REGS_PARM1(ctx);
    if (host) bpf_probe_read_user_str(&s.host, sizeof(s.host), host);
    starts.update(&tid, &s);
    return 0;
}
int on_getaddrinfo(struct pt_regs *ctx) { return lookup_enter(ctx, 0); }
int on_gethostbyname(struct pt_regs *ctx) { return lookup_enter(ctx, 1); }
int on_gethostbyname2(struct pt_regs *ctx) { return lookup_enter(ctx, 2); }

int on_return(struct pt_regs *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct start_t *s = starts.lookup(&tid);
    if (!s) return 0;
    struct lookup_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.lat_ns = e.ts - s->ts;
    e.pid = id >> 32;
    e.tid = tid;
    e.ret = (s32)PT_REGS_RC(ctx);
    e.func = s->func;
    __builtin_memcpy(&e.host, s->host, sizeof(e.host));
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    lookups.perf_submit(ctx, &e, sizeof(e));
    starts.delete(&tid);
    return 0;
}
"""


def routes(lib: str = "c") -> list[Route]:
    return [
        Route(
            "libc uprobes",
            needs=(f"uprobe:{lib}:{'|'.join(FUNCTIONS)}",),
            measures="time from entry to return of getaddrinfo(), gethostbyname() and "
                     "gethostbyname2() in libc (uprobe + uretprobe), with the host name asked for",
            differs_from_bcc="the same probes as bcc's gethostlatency; additionally the result code "
                             "(ret: 0 or an EAI_* / NULL pointer value) and the function name. Programs "
                             "that resolve names without libc (Go, static binaries, c-ares) are not seen.",
        ),
    ]


def plan(lib: str = "c") -> Route:
    return _base.choose("gethostlatency", routes(lib))


def gethostlatency(duration: float = 5, *, pid: int | None = None, lib: str = "c", on_attach=None):
    """Trace host name lookups through libc.

    Options (bcc's gethostlatency): pid (-p), lib (the C library: "c" or a
    path, e.g. a container's libc).

    Returns a Trace with events "lookups": ts (return), time, pid, tid, comm,
    func ("getaddrinfo", ...), host, lat_ms, ret (getaddrinfo: 0 on success;
    gethostbyname*: non-zero pointer on success).
    """
    route = plan(lib)
    present = [f for f in FUNCTIONS if _base.user_symbol(lib, f)]
    attach = []
    for func in present:
        attach += [f"uprobe:{lib}:{func}=on_{func}", f"uretprobe:{lib}:{func}=on_return"]
    defines = {**_base.pid_defines(pid), "HOST_LEN": HOST_LEN}
    raw = _base.run("gethostlatency", SOURCE, route, duration=duration, defines=defines, attach=attach,
                    uprobe_pid=pid, on_attach=on_attach, options=dict(pid=pid, lib=lib))
    raw.meta["tool"]["attach"] = [a.rsplit("=", 1)[0] for a in attach]
    frame = raw.events("lookups")
    frame = frame.assign(func=frame["func"].map(dict(enumerate(FUNCTIONS))),
                         lat_ms=frame["lat_ns"].astype("float64") / 1e6).drop(columns=["lat_ns"])
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "tid", "comm", "func", "host", "lat_ms", "ret"])
    return _base.result(raw, {("events", "lookups"): frame},
                        note_if_empty="no getaddrinfo()/gethostbyname() call returned during the capture")
