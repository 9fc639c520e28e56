"""Socket helpers shared by the TCP tools: addresses, families, states."""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

from ._base import pid_defines

AF_INET, AF_INET6 = 2, 10
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "NEW_SYN_RECV",
}
# C: the protocol and the states the tools' inet_sock_set_state probes compare with
TCP_DEFINES = {"IPPROTO_TCP": 6, "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_CLOSE": 7}


def tcp_defines(port: int | None, *, pid: int | None = None) -> dict:
    """A TCP tool's defines: TCP_DEFINES, FILTER_PORT (0: any port), FILTER_PID when pid is given."""
    return {**pid_defines(pid), **TCP_DEFINES, "FILTER_PORT": int(port or 0)}

# C: copy a tracepoint's saddr/daddr (v4 or v6) into u8[16] event fields.
ADDR_COPY_C = r"""
#define BPFNB_COPY_ADDRS(e, a) do {                                       \
    if ((a)->family == AF_INET6) {                                        \
        bpf_probe_read_kernel(&(e)->saddr, 16, (a)->saddr_v6);            \
        bpf_probe_read_kernel(&(e)->daddr, 16, (a)->daddr_v6);            \
    } else {                                                              \
        bpf_probe_read_kernel(&(e)->saddr, 4, (a)->saddr);                \
        bpf_probe_read_kernel(&(e)->daddr, 4, (a)->daddr);                \
    }                                                                     \
} while (0)
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
"""


def ip_text(family: int, raw) -> str:
    """u8[16] address (v4 in the first 4 bytes) -> '127.0.0.1' / '::1'."""
    data = bytes(np.asarray(raw, dtype=np.uint8))
    if int(family) == AF_INET6:
        addr = ipaddress.IPv6Address(data[:16])
        return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)
    return str(ipaddress.IPv4Address(data[:4]))


def address_columns(frame: pd.DataFrame, pairs: dict[str, str], family: str = "family") -> pd.DataFrame:
    """Replace raw address columns: pairs {raw column: text column}."""
    frame = frame.copy()
    fam = frame[family].to_numpy() if len(frame) else []
    for raw, text in pairs.items():
        if raw not in frame.columns:
            continue
        values = pd.Series([ip_text(f, a) for f, a in zip(fam, frame[raw])], index=frame.index, dtype=object)
        if text == raw:
            frame[raw] = values
        else:
            frame.insert(frame.columns.get_loc(raw), text, values)
            frame = frame.drop(columns=[raw])
    return frame


def family_text(frame: pd.DataFrame, column: str = "family") -> pd.DataFrame:
    frame = frame.copy()
    frame["ip"] = frame[column].map({AF_INET: 4, AF_INET6: 6}).astype("Int8")
    return frame
