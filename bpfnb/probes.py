"""Attach specs: parsing, the probes that bcc's naming conventions imply,
and whether a probe exists on this kernel (with the closest names if not).

Spec strings, one per probe (DESIGN.md):

    tracepoint:CAT:NAME=fn          raw_tracepoint:NAME=fn
    kprobe:SYM=fn                   kretprobe:SYM=fn
    uprobe:LIB_OR_PATH:SYM=fn       uretprobe:LIB_OR_PATH:SYM=fn
    usdt:PATH_OR_PID:PROBE=fn       perf:EVENT:HZ=fn   (EVENT: cpu-clock, ...)

Short forms t:, rt:, k:, kr:, u:, ur: are accepted too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from . import system
from .errors import AttachError, AttachSpecError, did_you_mean

KINDS = {
    "tracepoint": "tracepoint", "t": "tracepoint",
    "raw_tracepoint": "raw_tracepoint", "rt": "raw_tracepoint",
    "kprobe": "kprobe", "k": "kprobe", "p": "kprobe",
    "kretprobe": "kretprobe", "kr": "kretprobe", "r": "kretprobe",
    "uprobe": "uprobe", "u": "uprobe",
    "uretprobe": "uretprobe", "ur": "uretprobe",
    "usdt": "usdt",
    "perf": "perf",
}
# how many ':'-separated target parts each kind takes
TARGET_PARTS = {
    "tracepoint": 2, "raw_tracepoint": 1, "kprobe": 1, "kretprobe": 1,
    "uprobe": 2, "uretprobe": 2, "usdt": 2, "perf": 2,
}
EXAMPLES = {
    "tracepoint": "tracepoint:sched:sched_switch=on_switch",
    "raw_tracepoint": "raw_tracepoint:sched_switch=on_switch",
    "kprobe": "kprobe:vfs_read=on_read",
    "kretprobe": "kretprobe:vfs_read=on_read_return",
    "uprobe": "uprobe:c:malloc=on_malloc",
    "uretprobe": "uretprobe:c:malloc=on_malloc_return",
    "usdt": "usdt:/usr/bin/python3:function__entry=on_call",
    "perf": "perf:cpu-clock:49=on_sample",
}
# perf event names -> (perf type, config). Software events work in VMs.
PERF_EVENTS = {
    "cpu-clock": (1, 0), "task-clock": (1, 1), "page-faults": (1, 2),
    "context-switches": (1, 3), "cpu-migrations": (1, 4),
    "minor-faults": (1, 5), "major-faults": (1, 6),
    "cpu-cycles": (0, 0), "cycles": (0, 0), "instructions": (0, 1),
    "cache-references": (0, 2), "cache-misses": (0, 3),
    "branch-instructions": (0, 4), "branch-misses": (0, 5),
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class AttachSpec:
    kind: str                    # one of TARGET_PARTS
    target: tuple[str, ...]      # e.g. ("sched", "sched_switch") or ("c", "malloc")
    fn: str                      # the C function to run
    text: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """The spec in canonical form, as recorded in trace.meta."""
        return f"{self.kind}:{':'.join(self.target)}={self.fn}"


def parse_spec(text: str) -> AttachSpec:
    """Parse one attach spec string (see the module docstring)."""
    original = text
    text = text.strip()
    if "=" not in text:
        raise AttachSpecError(
            f"attach spec {original!r} names no function: add '=FUNCTION', e.g. "
            f"{EXAMPLES['tracepoint']!r}"
        )
    probe, fn = text.rsplit("=", 1)
    fn = fn.strip()
    if not _IDENT.match(fn):
        raise AttachSpecError(f"attach spec {original!r}: {fn!r} is not a C function name")
    head, sep, rest = probe.partition(":")
    kind = KINDS.get(head.strip().lower())
    if kind is None or not sep:
        raise AttachSpecError(
            f"attach spec {original!r}: unknown probe type {head!r}; use one of "
            + ", ".join(EXAMPLES[k] for k in ("tracepoint", "raw_tracepoint", "uprobe", "perf"))
            + did_you_mean(head, [k for k in KINDS if len(k) > 2])
        )
    nparts = TARGET_PARTS[kind]
    # paths may hold ':' only in the last part's predecessor for uprobes: split from the right
    parts = rest.rsplit(":", nparts - 1) if nparts > 1 else [rest]
    parts = [p.strip() for p in parts]
    if len(parts) != nparts or not all(parts):
        raise AttachSpecError(
            f"attach spec {original!r}: a {kind} spec has the form {EXAMPLES[kind]!r}"
        )
    if kind == "perf":
        event, hz = parts
        if event not in PERF_EVENTS:
            raise AttachSpecError(
                f"attach spec {original!r}: unknown perf event {event!r}; known: "
                + ", ".join(PERF_EVENTS) + did_you_mean(event, PERF_EVENTS)
            )
        if not hz.isdigit() or int(hz) <= 0:
            raise AttachSpecError(
                f"attach spec {original!r}: {hz!r} is not a sampling frequency in Hz, e.g. 49"
            )
    return AttachSpec(kind, tuple(parts), fn, original)


def parse_specs(specs) -> list[AttachSpec]:
    if specs is None:
        return []
    if isinstance(specs, (str, AttachSpec)):
        specs = [specs]
    return [s if isinstance(s, AttachSpec) else parse_spec(s) for s in specs]


# -- probes implied by bcc's naming conventions ---------------------------------
_CONVENTIONS = [
    (re.compile(r"\bTRACEPOINT_PROBE\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)"), "tracepoint"),
    (re.compile(r"\bRAW_TRACEPOINT_PROBE\s*\(\s*(\w+)\s*\)"), "raw_tracepoint"),
    (re.compile(r"\b(?:KFUNC_PROBE|KRETFUNC_PROBE)\s*\(\s*(\w+)"), "fentry"),
    (re.compile(r"\bint\s+kprobe__(\w+)\s*\("), "kprobe"),
    (re.compile(r"\bint\s+kretprobe__(\w+)\s*\("), "kretprobe"),
]


def convention_probes(source: str) -> list[AttachSpec]:
    """The probes bcc attaches by itself because of function names."""
    found = []
    for pattern, kind in _CONVENTIONS:
        for m in pattern.finditer(source):
            groups = m.groups()
            if kind == "tracepoint":
                fn = f"tracepoint__{groups[0]}__{groups[1]}"
            elif kind == "raw_tracepoint":
                fn = f"raw_tracepoint__{groups[0]}"
            elif kind == "fentry":
                fn = f"kfunc__{groups[0]}"
            else:
                fn = f"{kind}__{groups[0]}"
            found.append(AttachSpec(kind, tuple(groups), fn, m.group(0)))
    return found


# -- availability ------------------------------------------------------------------
def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def check_available(spec: AttachSpec) -> None:
    """Raise AttachError naming the probe and the closest existing ones."""
    kind = spec.kind
    if kind in ("tracepoint", "raw_tracepoint"):
        tfs = system.require_tracefs()
        events = os.path.join(tfs, "events")
        if kind == "tracepoint":
            category, name = spec.target
            if not os.path.isdir(os.path.join(events, category)):
                raise AttachError(
                    f"unknown tracepoint category {category!r} in {spec.text or spec.label}."
                    + did_you_mean(category, _listdir(events))
                    + f" The categories are the folders of {events}."
                )
            if not os.path.isdir(os.path.join(events, category, name)):
                raise AttachError(
                    f"unknown tracepoint {category}:{name}."
                    + did_you_mean(name, _listdir(os.path.join(events, category)))
                    + f" List them with `ls {events}/{category}`."
                )
        else:
            (name,) = spec.target
            all_events = [e for c in _listdir(events) for e in _listdir(os.path.join(events, c))]
            if name not in all_events:
                raise AttachError(
                    f"unknown raw tracepoint {name!r}." + did_you_mean(name, all_events)
                    + " Raw tracepoints share the names of tracepoints (without the category)."
                )
    elif kind in ("kprobe", "kretprobe"):
        if not system.kprobes_available():
            raise AttachError(
                f"{spec.text or spec.label}: this kernel has no kprobes (CONFIG_KPROBES is off). "
                "Use a tracepoint (`ls /sys/kernel/tracing/events`) or a raw tracepoint instead; "
                "`bpfnb doctor` lists what works here."
            )
    elif kind == "fentry":
        if not system.fentry_available():
            raise AttachError(
                f"{spec.text or spec.label}: fentry/KFUNC_PROBE programs cannot attach on this kernel. "
                "Use a tracepoint or raw tracepoint instead; `bpfnb doctor` lists what works here."
            )
    elif kind in ("uprobe", "uretprobe") and not system.uprobes_available():
        raise AttachError(f"{spec.label}: this kernel has no uprobes (CONFIG_UPROBE_EVENTS is off).")
