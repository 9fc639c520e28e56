"""tcplife: one row per TCP session when it closes: who, where, bytes, lifespan."""

from __future__ import annotations

from . import _base, _net
from ._base import Route

SOURCE = _net.ADDR_COPY_C + r"""
struct life_t { u64 start_ns; u64 tx; u64 rx; u32 pid; u32 active; char comm[16]; };
struct end_t {
    u64 ts;
    u64 start_ns;
    u64 tx;
    u64 rx;
    u32 pid;
    u16 family;
    u16 lport;
    u16 rport;
    u16 active;
    u8 saddr[16];
    u8 daddr[16];
    char comm[16];
};
BPF_HASH(sessions, u64, struct life_t, 65536);
BPF_PERF_OUTPUT(closed);

static __always_inline void who(struct life_t *l) {
    u64 id = bpf_get_current_pid_tgid();
    if (l->pid || !(id >> 32)) return;
    l->pid = id >> 32;
    bpf_get_current_comm(&l->comm, sizeof(l->comm));
}

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (args->protocol != IPPROTO_TCP) return 0;
    u64 sk = (u64)args->skaddr;
    if (args->newstate == TCP_SYN_SENT ||
        (args->oldstate == TCP_SYN_RECV && args->newstate == TCP_ESTABLISHED)) {
        struct life_t l = {.start_ns = bpf_ktime_get_ns(), .active = args->newstate == TCP_SYN_SENT};
        if (l.active) who(&l);          /* connect() runs in the caller; accepts are softirq */
        sessions.update(&sk, &l);
        return 0;
    }
    if (args->newstate != TCP_CLOSE) return 0;
    struct life_t *l = sessions.lookup(&sk);
    if (!l) return 0;                   /* born before the capture: lifespan unknown */
    if (BPFNB_SKIP_TGID(l->pid) || (FILTER_PORT && args->sport != FILTER_PORT && args->dport != FILTER_PORT)) {
        sessions.delete(&sk);
        return 0;
    }
    struct end_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.start_ns = l->start_ns;
    e.tx = l->tx;
    e.rx = l->rx;
    e.pid = l->pid;
    e.family = args->family;
    e.lport = args->sport;
    e.rport = args->dport;
    e.active = l->active;
    BPFNB_COPY_ADDRS(&e, args);
    __builtin_memcpy(&e.comm, l->comm, sizeof(e.comm));
    closed.perf_submit(args, &e, sizeof(e));
    sessions.delete(&sk);
    return 0;
}

/* bytes moved through the socket API, in the process's context */
TRACEPOINT_PROBE(sock, sock_send_length) {
    if (args->protocol != IPPROTO_TCP || args->ret <= 0) return 0;
    u64 sk = (u64)args->sk;
    struct life_t *l = sessions.lookup(&sk);
    if (!l) return 0;
    __sync_fetch_and_add(&l->tx, args->ret);
    who(l);
    return 0;
}
TRACEPOINT_PROBE(sock, sock_recv_length) {
    if (args->protocol != IPPROTO_TCP || args->ret <= 0) return 0;
    u64 sk = (u64)args->sk;
    struct life_t *l = sessions.lookup(&sk);
    if (!l) return 0;
    __sync_fetch_and_add(&l->rx, args->ret);
    who(l);
    return 0;
}
"""

ROUTES = [
    Route(
        "sock tracepoints",
        needs=("tracepoint:sock:inet_sock_set_state", "tracepoint:sock:sock_send_length",
               "tracepoint:sock:sock_recv_length"),
        measures="TCP sessions from SYN_SENT (active) or SYN_RECV->ESTABLISHED (passive) to CLOSE; "
                 "bytes sent/received through send/recv/read/write (sock_send_length, "
                 "sock_recv_length); the owning process from connect() or its first send/receive",
        differs_from_bcc="bcc reads tcp_sock bytes_acked/bytes_received (struct layouts; not safe "
                         "with stand-in headers). Here tx/rx count bytes the application passed "
                         "through the socket API, so sendfile()/splice() bytes are not counted. "
                         "Sessions born before the capture are skipped, as in bcc.",
    ),
]


def plan() -> Route:
    return _base.choose("tcplife", ROUTES)


def tcplife(duration: float = 5, *, pid: int | None = None, port: int | None = None, on_attach=None):
    """Trace TCP session lifespans.

    Options (bcc's tcplife): pid (-p), port (local or remote port, like
    -L/-D together).

    Returns a Trace with events "sessions": ts (close), time, pid, comm, ip,
    laddr, lport, raddr, rport, tx_bytes, rx_bytes, tx_kb, rx_kb, ms
    (lifespan), active (True for connect(), False for accepted).
    """
    route = plan()
    defines = _net.tcp_defines(port, pid=pid)
    raw = _base.run("tcplife", SOURCE, route, duration=duration, defines=defines, on_attach=on_attach,
                    options=dict(pid=pid, port=port))
    frame = _net.address_columns(raw.events("closed"), {"saddr": "laddr", "daddr": "raddr"})
    frame = _net.family_text(frame).rename(columns={"tx": "tx_bytes", "rx": "rx_bytes"})
    frame = frame.assign(
        tx_kb=frame["tx_bytes"] / 1024, rx_kb=frame["rx_bytes"] / 1024,
        ms=(frame["ts"].astype("int64") - frame["start_ns"].astype("int64")) / 1e6,
        active=frame["active"].astype(bool),
    ).drop(columns=["start_ns", "family"])
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "comm", "ip", "laddr", "lport", "raddr", "rport",
                           "tx_bytes", "rx_bytes", "tx_kb", "rx_kb", "ms", "active"])
    return _base.result(raw, {("events", "sessions"): frame},
                        note_if_empty="no TCP session that began during the capture closed before its end")
