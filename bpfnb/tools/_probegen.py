"""C for one-liner probes (trace, argdist): function headers, attach specs,
entry timestamps for $latency, and reading string values."""

from __future__ import annotations

import re

from . import _tpformat
from .oneliner import Probe, translate

STR_LEN = 80   # bytes kept of each string value (bcc's trace keeps 80 too)


def header(probe: Probe, fn: str) -> tuple[str, list[str]]:
    """The C function opening for a probe (with `ctx` usable in the body) and
    the attach specs that bind it."""
    if probe.kind == "tracepoint":
        cat, ev = probe.target
        # bcc builds `struct tracepoint__CAT__EVENT` from the live format file
        return (f"int {fn}(struct tracepoint__{cat}__{ev} *args) {{\n    void *ctx = args;\n",
                [f"tracepoint:{cat}:{ev}={fn}"])
    where = ":".join(probe.target)
    return f"int {fn}(struct pt_regs *ctx) {{\n", [f"{probe.kind}:{where}={fn}"]


def latency_parts(probe: Probe, fn: str, used: bool) -> tuple[str, str, list[str]]:
    """For $latency in a return probe: (C before the function, C at the start of
    its body, extra attach specs). Empty when not used."""
    if not used:
        return "", "", []
    entry_kind = {"uretprobe": "uprobe", "kretprobe": "kprobe"}[probe.kind]
    before = (f"BPF_HASH({fn}_start, u32, u64, 16384);\n"
              f"int {fn}_entry(struct pt_regs *ctx) {{\n"
              f"    u32 tid = (u32)bpf_get_current_pid_tgid();\n"
              f"    u64 now = bpf_ktime_get_ns();\n"
              f"    {fn}_start.update(&tid, &now);\n    return 0;\n}}\n")
    body = (f"    u32 entry_tid = (u32)bpf_get_current_pid_tgid();\n"
            f"    u64 *entry_tsp = {fn}_start.lookup(&entry_tid);\n"
            f"    if (!entry_tsp) return 0;\n"
            f"    u64 entry_ts = *entry_tsp;\n"
            f"    {fn}_start.delete(&entry_tid);\n")
    return before, body, [f"{entry_kind}:{':'.join(probe.target)}={fn}_entry"]


def read_string(dst: str, expr: str, probe: Probe, params=(), spec: str = "") -> str:
    """C that copies the string `expr` points at into the char array `dst`."""
    e = expr.strip()
    if e == "$comm":
        return f"bpf_get_current_comm({dst}, sizeof({dst}));"
    m = re.fullmatch(r"args\s*->\s*([A-Za-z_]\w*)", e)
    if probe.kind == "tracepoint" and m:
        cat, ev = probe.target
        ctype = _tpformat.fields(cat, ev).get(m.group(1), "")
        kind = _tpformat.string_kind(ctype, cat) if ctype else ("user" if cat == "syscalls" else "kernel")
        if kind == "data_loc":
            return f"TP_DATA_LOC_READ_STR({dst}, {m.group(1)}, sizeof({dst}));"
        if kind == "array":
            return f"bpf_probe_read_kernel_str({dst}, sizeof({dst}), args->{m.group(1)});"
    c = translate(e, probe, params, spec)
    user = probe.kind in ("uprobe", "uretprobe") or (probe.kind == "tracepoint" and probe.target[0] == "syscalls")
    reader = "bpf_probe_read_user_str" if user else "bpf_probe_read_kernel_str"
    return f"{reader}({dst}, sizeof({dst}), (const void *)(u64)({c}));"


def explain(error, probes, texts) -> Exception:
    """A CompileError of generated one-liner C, restated for the specs the user wrote."""
    from ..errors import CompileError, did_you_mean

    message = str(error)
    lines = [f"the one-liner did not compile: {' | '.join(texts)}"]
    detail = [ln for ln in message.splitlines() if "error:" in ln]
    lines += [ln.split("error:", 1)[1].strip() for ln in detail[:3]]
    for probe in probes:
        if probe.kind != "tracepoint":
            continue
        fields = [f for f in _tpformat.fields(*probe.target) if not f.startswith("__")]
        for m in re.finditer(r"no member named '(\w+)'", message):
            lines.append(f"{probe.text} has no field {m.group(1)!r}." + did_you_mean(m.group(1), fields))
        lines.append(f"{probe.text} fields: {', '.join(fields) or '(none)'} (use args->FIELD)")
    return CompileError("\n".join(dict.fromkeys(lines)))
