"""tcpconnect: active TCP connections (connect()), with their latency and result."""

from __future__ import annotations

from . import _base, _net
from ._base import Route
from ._net import TCP_DEFINES  # noqa: F401  (its old home: tcpconnect.TCP_DEFINES)

SOURCE = _net.ADDR_COPY_C + r"""
struct start_t { u64 ts; u32 pid; u32 tid; char comm[16]; };
struct conn_t {
    u64 ts;
    u64 start_ns;
    u32 pid;
    u32 tid;
    u16 family;
    u16 sport;
    u16 dport;
    u16 newstate;
    u8 saddr[16];
    u8 daddr[16];
    char comm[16];
};
BPF_HASH(connecting, u64, struct start_t, 8192);
BPF_PERF_OUTPUT(connects);

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (args->protocol != IPPROTO_TCP) return 0;
    u64 sk = (u64)args->skaddr;
    if (args->newstate == TCP_SYN_SENT) {      /* in connect(), in the caller's context */
        u64 id = bpf_get_current_pid_tgid();
        if (BPFNB_SKIP_TGID(id >> 32)) return 0;
        if (FILTER_PORT && args->dport != FILTER_PORT) return 0;
        struct start_t s = {.ts = bpf_ktime_get_ns(), .pid = id >> 32, .tid = (u32)id};
        bpf_get_current_comm(&s.comm, sizeof(s.comm));
        connecting.update(&sk, &s);
        return 0;
    }
    if (args->oldstate != TCP_SYN_SENT) return 0;
    struct start_t *s = connecting.lookup(&sk);   /* established or failed: ports known now */
    if (!s) return 0;
    struct conn_t e = {};
    e.ts = bpf_ktime_get_ns();
    e.start_ns = s->ts;
    e.pid = s->pid;
    e.tid = s->tid;
    e.family = args->family;
    e.sport = args->sport;
    e.dport = args->dport;
    e.newstate = args->newstate;
    BPFNB_COPY_ADDRS(&e, args);
    __builtin_memcpy(&e.comm, s->comm, sizeof(e.comm));
    connects.perf_submit(args, &e, sizeof(e));
    connecting.delete(&sk);
    return 0;
}
"""

ROUTES = [
    Route(
        "sock:inet_sock_set_state",
        needs=("tracepoint:sock:inet_sock_set_state",),
        measures="TCP sockets moving to SYN_SENT (connect(), in the caller's context) and then to "
                 "ESTABLISHED or CLOSE: who connected, addresses, ports, handshake latency, result",
        differs_from_bcc="bcc 0.26 uses kprobes on tcp_v4_connect/tcp_v6_connect and prints at "
                         "connect()'s return; here a row appears when the handshake ends, so it "
                         "also carries the latency (bcc's tcpconnlat) and failed connections "
                         "(result 'failed').",
    ),
]


def plan() -> Route:
    return _base.choose("tcpconnect", ROUTES)


def tcpconnect(duration: float = 5, *, pid: int | None = None, port: int | None = None,
               failed: bool = False, on_attach=None):
    """Trace active TCP connections.

    Options (bcc's tcpconnect): pid (-p), port (-P: destination port),
    failed (only connections that did not establish).

    Returns a Trace with events "connects": ts (handshake end), time, pid,
    tid, comm, ip (4 or 6), saddr, sport, daddr, dport, lat_ms (SYN sent to
    established/failed), result ("established" or "failed").
    """
    route = plan()
    defines = _net.tcp_defines(port, pid=pid)
    raw = _base.run("tcpconnect", SOURCE, route, duration=duration, defines=defines, on_attach=on_attach,
                    options=dict(pid=pid, port=port, failed=failed))
    frame = _net.family_text(_net.address_columns(raw.events("connects"), {"saddr": "saddr", "daddr": "daddr"}))
    frame = frame.assign(
        lat_ms=(frame["ts"].astype("int64") - frame["start_ns"].astype("int64")) / 1e6,
        result=frame["newstate"].map(lambda s: "established" if s == 1 else "failed"),
    ).drop(columns=["start_ns", "newstate", "family"])
    if failed:
        frame = frame[frame["result"] == "failed"]
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "tid", "comm", "ip", "saddr", "sport", "daddr", "dport",
                           "lat_ms", "result"])
    return _base.result(raw, {("events", "connects"): frame},
                        note_if_empty="no TCP connect() finished during the capture (or none matched)")
