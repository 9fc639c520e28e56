"""tcpretrans: TCP retransmissions, with the flow and its state."""

from __future__ import annotations

from . import _base, _net
from ._base import Route

SOURCE = _net.ADDR_COPY_C + r"""
struct retrans_t {
    u64 ts;
    u32 pid;
    s32 state;
    u16 family;
    u16 lport;
    u16 rport;
    u16 kind;            /* 1 data segment, 2 SYN-ACK */
    u8 saddr[16];
    u8 daddr[16];
};
BPF_PERF_OUTPUT(retransmits);

static __always_inline int emit(void *ctx, struct retrans_t *e) {
    if (FILTER_PORT && e->lport != FILTER_PORT && e->rport != FILTER_PORT) return 0;
    e->ts = bpf_ktime_get_ns();
    e->pid = bpf_get_current_pid_tgid() >> 32;   /* often a timer (softirq): informative only */
    retransmits.perf_submit(ctx, e, sizeof(*e));
    return 0;
}
TRACEPOINT_PROBE(tcp, tcp_retransmit_skb) {
    struct retrans_t e = {};
    e.state = args->state;
    e.family = args->family;
    e.lport = args->sport;
    e.rport = args->dport;
    e.kind = 1;
    BPFNB_COPY_ADDRS(&e, args);
    return emit(args, &e);
}
"""
SYNACK = r"""
TRACEPOINT_PROBE(tcp, tcp_retransmit_synack) {
    struct retrans_t e = {};
    e.state = TCP_SYN_RECV;
    e.family = args->family;
    e.lport = args->sport;
    e.rport = args->dport;
    e.kind = 2;
    BPFNB_COPY_ADDRS(&e, args);
    return emit(args, &e);
}
"""

ROUTES = [
    Route(
        "tcp:tcp_retransmit_skb",
        needs=("tracepoint:tcp:tcp_retransmit_skb",),
        optional=("tracepoint:tcp:tcp_retransmit_synack",),
        measures="every TCP segment retransmission (tcp_retransmit_skb) and, where present, SYN-ACK "
                 "retransmission (tcp_retransmit_synack), with addresses, ports and TCP state",
        differs_from_bcc="the same tracepoint bcc 0.26 prefers. Tail loss probes (bcc's -l, a kprobe) "
                         "are not traced. pid is whoever was on the CPU (usually a timer), as in bcc.",
    ),
]


def plan() -> Route:
    return _base.choose("tcpretrans", ROUTES)


def tcpretrans(duration: float = 5, *, port: int | None = None, count: bool = False, on_attach=None):
    """Trace TCP retransmits.

    Options (bcc's tcpretrans): port (local or remote port), count (-c: one
    row per flow with the number of retransmits).

    Returns a Trace with events "retransmits": ts, time, pid, ip, laddr,
    lport, raddr, rport, state ("ESTABLISHED", ...), kind ("segment" or
    "synack"); with count=True a map "counts": ip, laddr, lport, raddr,
    rport, retransmits.
    """
    route = plan()
    source = SOURCE + (SYNACK if _base.have("tracepoint:tcp:tcp_retransmit_synack") else "")
    defines = _net.tcp_defines(port)  # no pid filter: pid is whoever was on the CPU
    raw = _base.run("tcpretrans", source, route, duration=duration, defines=defines, on_attach=on_attach,
                    options=dict(port=port, count=count))
    frame = _net.family_text(_net.address_columns(raw.events("retransmits"), {"saddr": "laddr", "daddr": "raddr"}))
    frame = frame.assign(state=frame["state"].map(lambda s: _net.TCP_STATES.get(int(s), str(s))),
                         kind=frame["kind"].map({1: "segment", 2: "synack"})).drop(columns=["family"])
    frame = _base.ordered(_base.with_time(raw, frame),
                          ["ts", "time", "pid", "ip", "laddr", "lport", "raddr", "rport", "state", "kind"])
    frames = {("events", "retransmits"): frame}
    if count:
        flow = ["ip", "laddr", "lport", "raddr", "rport"]
        frames[("map", "counts")] = frame.groupby(flow).size().rename("retransmits").reset_index()
    return _base.result(raw, frames, note_if_empty="no TCP retransmit happened during the capture")
