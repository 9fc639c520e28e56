"""argdist: the distribution of a value at a probe, as a histogram or as counts.

    bpfnb.tools.argdist('t:syscalls:sys_enter_read():u64:args->count', histogram=True)
    bpfnb.tools.argdist('p:c:malloc(size_t size):size_t:size', histogram=False)
    bpfnb.tools.argdist('r:c:getaddrinfo():u64:$latency')

See bpfnb.tools.oneliner for the probe syntax.
"""

from __future__ import annotations

from ..errors import CompileError
from . import _base, _probegen
from ._base import Route
from .oneliner import INT_TYPES, ArgdistSpec, column_name, parse_argdist, translate

ROUTES = [
    Route(
        "the probe named in the spec",
        needs=(),
        measures="the values of the given expressions each time the probe fires and the filter "
                 "passes: a log2 histogram of one value, or counts per distinct tuple of values",
        differs_from_bcc="same spec syntax as bcc's argdist for t:, p:, r: with $retval, $latency, "
                         "$pid/$tid/$comm; $entry(), USDT (u:) and STRCMP are not supported. One spec "
                         "per call. Histograms are log2 (bcc -H); counts are totals over the capture "
                         "(bcc -C prints them per interval).",
    ),
]


def plan() -> Route:
    return ROUTES[0]


def argdist(spec: str, *, histogram: bool = True, duration: float = 5, pid: int | None = None,
            on_attach=None):
    """Collect a value's distribution at a probe (bcc's argdist -H / -C).

    Options: histogram (True: -H, a log2 histogram of one numeric value;
    False: -C, counts per distinct value tuple), pid (-p).

    Returns a Trace with hist "dist" (low, high, count; attrs "label" and
    "expression") when histogram=True, else map "counts": one column per
    expression (named after it: args->count -> count) and `count`, most
    frequent first.
    """
    parsed = parse_argdist(spec)
    if histogram:
        if len(parsed.exprs) != 1 or parsed.types[0] == "char*":
            raise _base.ToolError(
                f"argdist {spec!r}: a histogram needs exactly one numeric value, e.g. "
                "'t:syscalls:sys_enter_read():u64:args->count'; use histogram=False to count strings "
                "or several values")
    source, attach, names = build(parsed, histogram)
    try:
        raw = _base.run("argdist", source, ROUTES[0], duration=duration, defines=_base.pid_defines(pid),
                        attach=attach, uprobe_pid=pid, on_attach=on_attach,
                        hist_types={"dist": "log2"} if histogram else None,
                        options=dict(spec=spec, histogram=histogram, pid=pid))
    except CompileError as exc:
        raise _probegen.explain(exc, [parsed.probe], [spec]) from None
    raw.meta["tool"]["attach"] = [a.rsplit("=", 1)[0] for a in attach]
    label = parsed.label or spec
    if histogram:
        hist = raw.hist("dist").reset_index(drop=True)
        hist.attrs.update(label=label, expression=parsed.exprs[0])
        return _base.result(raw, {("hist", "dist"): hist},
                            note_if_empty="the probe did not fire (or nothing passed the filter) during the capture")
    counts = raw.map("counts")
    counts = counts.rename(columns={f"f{j}": n for j, n in enumerate(names)}).rename(columns={"value": "count"})
    if not names:
        counts = counts.drop(columns=[c for c in counts.columns if c != "count"])
    counts = counts.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
    counts.attrs.update(label=label)
    return _base.result(raw, {("map", "counts"): counts},
                        note_if_empty="the probe did not fire (or nothing passed the filter) during the capture")


def build(spec: ArgdistSpec, histogram: bool) -> tuple[str, list[str], list[str]]:
    """C source, attach specs, and the column name of each expression."""
    probe, fn, params = spec.probe, "probe0", spec.params
    used: set = set()
    names = [column_name(e, used, f"value{j + 1}", reserved=("count",)) for j, e in enumerate(spec.exprs)]
    head, attach = _probegen.header(probe, fn)
    uses_latency = "$latency" in " ".join(spec.exprs) + (spec.filter or "")
    before, latency_body, extra = (_probegen.latency_parts(probe, fn, uses_latency) if probe.is_return
                                   else ("", "", []))
    body = [latency_body, "    if (BPFNB_SKIP_TGID(bpf_get_current_pid_tgid() >> 32)) return 0;\n"]
    if spec.filter:
        body.append(f"    if (!({translate(spec.filter, probe, params, spec.text)})) return 0;\n")
    if histogram:
        value = translate(spec.exprs[0], probe, params, spec.text)
        decl = "BPF_HISTOGRAM(dist, u64, 65);\n"
        body.append(f"    dist.atomic_increment(bpf_log2l((u64)({INT_TYPES[spec.types[0]]})({value})));\n")
    else:
        fields = []
        for j, (ctype, expr) in enumerate(zip(spec.types, spec.exprs)):
            if ctype == "char*":
                fields.append(f"    char f{j}[{_probegen.STR_LEN}];\n")
                body.append(f"    {_probegen.read_string(f'key.f{j}', expr, probe, params, spec.text)}\n")
            else:
                fields.append(f"    {INT_TYPES[ctype]} f{j};\n")
                body.append(f"    key.f{j} = ({INT_TYPES[ctype]})({translate(expr, probe, params, spec.text)});\n")
        if not fields:
            fields.append("    u32 calls;\n")
        decl = f"struct key_t {{\n{''.join(fields)}}};\nBPF_HASH(counts, struct key_t, u64, 10240);\n"
        body.insert(len(body) - len(spec.exprs), "    struct key_t key;\n    __builtin_memset(&key, 0, sizeof(key));\n")
        body.append("    counts.atomic_increment(key);\n")
    body.append("    return 0;\n}\n")
    source = "#include <uapi/linux/ptrace.h>\n" + decl + before + head + "".join(body)
    return source, extra + attach, names
