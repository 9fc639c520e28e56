"""tcpaccept: passive TCP connections, as accept() returns them."""

from __future__ import annotations

import pandas as pd

from . import _base, _net
from ._base import Route

SOURCE = _net.ADDR_COPY_C + r"""
struct est_t {              /* a passive connection became ESTABLISHED (softirq) */
    u64 ts;
    u16 family;
    u16 lport;
    u16 rport;
    u16 pad;
    u8 saddr[16];
    u8 daddr[16];
};
struct acc_t {              /* accept()/accept4() returned, in the process */
    u64 ts;
    u32 pid;
    u32 tid;
    s32 fd;
    u16 family;
    u16 rport;
    u8 raddr[16];
    char comm[16];
};
BPF_HASH(accepting, u32, u64, 8192);   /* tid -> user sockaddr pointer */
BPF_PERF_OUTPUT(established);
BPF_PERF_OUTPUT(accepts);

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (args->protocol != IPPROTO_TCP) return 0;
    if (args->oldstate != TCP_SYN_RECV || args->newstate != TCP_ESTABLISHED) return 0;
    if (FILTER_PORT && args->sport != FILTER_PORT) return 0;
    struct est_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.family = args->family;
    e.lport = args->sport;
    e.rport = args->dport;
    BPFNB_COPY_ADDRS(&e, args);
    established.perf_submit(args, &e, sizeof(e));
    return 0;
}

static __always_inline int accept_enter(void *addr) {
    u64 id = bpf_get_current_pid_tgid();
    if (BPFNB_SKIP_TGID(id >> 32)) return 0;
    u32 tid = (u32)id;
    u64 ptr = (u64)addr;
    accepting.update(&tid, &ptr);
    return 0;
}
static __always_inline int accept_exit(void *ctx, long ret) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u64 *ptr = accepting.lookup(&tid);
    if (!ptr) return 0;
    u64 addr = *ptr;
    accepting.delete(&tid);
    if (ret < 0) return 0;
    struct acc_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.pid = id >> 32;
    e.tid = tid;
    e.fd = ret;
    if (addr) {                     /* struct sockaddr_in / sockaddr_in6 */
        u16 fam = 0, port = 0;
        bpf_probe_read_user(&fam, 2, (void *)addr);
        bpf_probe_read_user(&port, 2, (void *)(addr + 2));
        e.family = fam;
        e.rport = (port >> 8) | ((port & 0xff) << 8);
        if (fam == AF_INET6) bpf_probe_read_user(&e.raddr, 16, (void *)(addr + 8));
        else bpf_probe_read_user(&e.raddr, 4, (void *)(addr + 4));
    }
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    accepts.perf_submit(ctx, &e, sizeof(e));
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_enter_accept4) { return accept_enter(args->upeer_sockaddr); }
TRACEPOINT_PROBE(syscalls, sys_exit_accept4) { return accept_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_accept) { return accept_enter(args->upeer_sockaddr); }
TRACEPOINT_PROBE(syscalls, sys_exit_accept) { return accept_exit(args, args->ret); }
"""

ROUTES = [
    Route(
        "sock:inet_sock_set_state + accept syscalls",
        needs=("tracepoint:sock:inet_sock_set_state",
               "tracepoint:syscalls:sys_enter_accept4", "tracepoint:syscalls:sys_exit_accept4",
               "tracepoint:syscalls:sys_enter_accept", "tracepoint:syscalls:sys_exit_accept"),
        measures="passive TCP connections reaching ESTABLISHED (SYN_RECV -> ESTABLISHED, with local "
                 "port and addresses), joined on the peer address and port with the accept()/accept4() "
                 "call that returned them (pid, comm, fd)",
        differs_from_bcc="bcc 0.26 uses a kretprobe on inet_csk_accept and reads struct sock. Here the "
                         "peer address comes from the sockaddr the caller passed to accept(); a caller "
                         "that passes NULL gets a row without local port/address. Connections "
                         "established but not accepted during the capture are listed with "
                         "accepted=False; wait_ms is the time spent in the accept queue.",
    ),
]


def plan() -> Route:
    return _base.choose("tcpaccept", ROUTES)


def tcpaccept(duration: float = 5, *, pid: int | None = None, port: int | None = None, on_attach=None):
    """Trace accepted TCP connections.

    Options (bcc's tcpaccept): pid (-p: the accepting process), port (-P: local port).

    Returns a Trace with events "accepts": ts (accept() return), time, pid,
    tid, comm, fd, ip, raddr, rport, laddr, lport, wait_ms (ESTABLISHED to
    accept()), accepted (False for connections established but not accepted
    during the capture; they have no pid).
    """
    route = plan()
    defines = _net.tcp_defines(port, pid=pid)
    raw = _base.run("tcpaccept", SOURCE, route, duration=duration, defines=defines, on_attach=on_attach,
                    options=dict(pid=pid, port=port))
    frame = join(raw.events("established"), raw.events("accepts"), port=port, pid=pid)
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "tid", "comm", "fd", "ip", "raddr", "rport", "laddr",
                           "lport", "wait_ms", "accepted"])
    return _base.result(raw, {("events", "accepts"): frame},
                        note_if_empty="no TCP connection was accepted during the capture (or none matched)")


def join(established: pd.DataFrame, accepts: pd.DataFrame, *, port=None, pid=None) -> pd.DataFrame:
    """Match accept() returns with passive connections on (family, peer address, peer port)."""
    est = _net.address_columns(established, {"saddr": "laddr", "daddr": "raddr"})
    est = est.rename(columns={"ts": "est_ns"}).drop(columns=["pad"])
    acc = _net.address_columns(accepts, {"raddr": "raddr"})
    acc = acc.assign(accepted=True)
    key = ["family", "raddr", "rport"]
    # the newest established connection before each accept with the same peer
    merged = acc.merge(est, on=key, how="outer" if pid is None else "left")
    merged = merged[merged["est_ns"].isna() | merged["ts"].isna()
                    | (merged["est_ns"].astype("float64") <= merged["ts"].astype("float64"))]
    merged = merged.sort_values("est_ns").drop_duplicates(subset=key + ["ts"], keep="last")
    if port:
        merged = merged[merged["lport"] == port]
    merged["accepted"] = merged["accepted"].fillna(False).astype(bool)
    merged["ts"] = merged["ts"].fillna(merged["est_ns"]).astype("uint64")
    merged["wait_ms"] = (merged["ts"].astype("float64") - merged["est_ns"].astype("float64")) / 1e6
    for col in ("pid", "tid", "fd", "lport"):
        if col in merged.columns:
            merged[col] = merged[col].astype("Int64")
    merged = _net.family_text(merged)
    return merged.drop(columns=["family", "est_ns"])
