"""What this machine can do: bcc, privileges, tracefs, headers, probe types.

Every check is cheap and cached, except the fentry probe (it loads a tiny
program once). `doctor()` puts them on one screen with what to do about
each failure; the command line runs it as `bpfnb doctor`.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import PrivilegeError, SetupError

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
FIX_SETUP = "run `make setup` in the bpfnb checkout (or `apt-get install python3-bpfcc`)"


def import_bcc():
    """The bcc module, or a SetupError that says how to get it."""
    try:
        import bcc  # noqa: F401  (the distribution's python3-bpfcc)
    except ImportError as exc:
        raise SetupError(
            f"bcc is not importable from {sys.executable} ({exc}). Tracing needs the "
            f"distribution's bcc: {FIX_SETUP}. Note: the PyPI package named 'bcc' is an "
            "unrelated project; do not pip-install it. Analysis of saved traces works without bcc."
        ) from None
    if not hasattr(bcc, "BPF"):
        raise SetupError(
            f"the 'bcc' module at {getattr(bcc, '__file__', '?')} is not BPF Compiler "
            "Collection (perhaps the unrelated PyPI package 'bcc'): `pip uninstall bcc`, then "
            + FIX_SETUP
        )
    return bcc


def bcc_version() -> str | None:
    try:
        return import_bcc().__version__
    except (SetupError, AttributeError):
        return None


def _effective_caps() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def privileged() -> bool:
    """Root, or CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) in the effective set."""
    if os.geteuid() == 0:
        return True
    caps = _effective_caps()
    has = lambda cap: bool(caps & (1 << cap))  # noqa: E731
    return has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))


def require_privileges() -> None:
    if not privileged():
        raise PrivilegeError(
            "loading BPF programs needs root or the capabilities CAP_BPF and CAP_PERFMON. "
            "Run Jupyter as root (e.g. `sudo .venv/bin/jupyter lab --allow-root`), or grant the "
            "capabilities: `sudo setcap cap_bpf,cap_perfmon,cap_sys_resource+ep $(readlink -f "
            ".venv/bin/python)`. Analysis of saved traces (bpfnb.load) needs neither."
        )


@functools.lru_cache(maxsize=None)
def tracefs() -> str | None:
    """The mounted tracefs directory, or None."""
    for path in TRACEFS_CANDIDATES:
        if os.path.isdir(os.path.join(path, "events")):
            return path
    return None


def require_tracefs() -> str:
    path = tracefs()
    if path is None:
        raise SetupError(
            "tracefs is not mounted, so tracepoints cannot be found. Mount it: "
            "`mount -t tracefs tracefs /sys/kernel/tracing` (or run `make setup`)."
        )
    return path


@dataclass(frozen=True)
class Headers:
    state: str  # "matching" | "stand-in" | "kheaders" | "missing"
    detail: str


@functools.lru_cache(maxsize=None)
def kernel_headers() -> Headers:
    release = platform.release()
    build = Path(f"/lib/modules/{release}/build")
    if build.exists():
        target = os.path.realpath(build)
        if release in target:
            return Headers("matching", target)
        return Headers(
            "stand-in",
            f"{target} (not {release}): kernel struct layouts may differ from the running "
            "kernel; tracepoint arguments are unaffected",
        )
    if os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return Headers("kheaders", "/sys/kernel/kheaders.tar.xz (built into the kernel)")
    return Headers("missing", f"no {build}; install linux-headers-{release} or run `make setup`")


def btf_available() -> bool:
    return os.path.exists("/sys/kernel/btf/vmlinux")


@functools.lru_cache(maxsize=None)
def kprobes_available() -> bool:
    """kprobes through the perf PMU or tracefs's kprobe_events."""
    if os.path.isdir("/sys/bus/event_source/devices/kprobe"):
        return True
    tfs = tracefs()
    return bool(tfs and os.path.exists(os.path.join(tfs, "kprobe_events")))


@functools.lru_cache(maxsize=None)
def uprobes_available() -> bool:
    if os.path.isdir("/sys/bus/event_source/devices/uprobe"):
        return True
    tfs = tracefs()
    return bool(tfs and os.path.exists(os.path.join(tfs, "uprobe_events")))


def perf_events_available() -> bool:
    return os.path.exists("/proc/sys/kernel/perf_event_paranoid")


def tracepoint_exists(category: str, event: str) -> bool:
    tfs = tracefs()
    return bool(tfs and os.path.isdir(os.path.join(tfs, "events", category, event)))


def kernel_version() -> tuple[int, int]:
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def map_walk_available() -> bool:
    """Whether large maps are read by bpfnb.mapdump's in-kernel walk (needs privileges)."""
    from . import mapdump

    return privileged() and mapdump.available()


def ringbuf_available() -> bool:
    """BPF ring buffers arrived in Linux 5.8."""
    return kernel_version() >= (5, 8)


@functools.lru_cache(maxsize=None)
def fentry_available() -> bool:
    """Whether fentry/KFUNC_PROBE programs attach here (tried once, for real)."""
    if not (btf_available() and privileged()):
        return False
    try:
        bcc = import_bcc()
        if not bcc.BPF.support_kfunc():
            return False
        from .cerrors import quiet_stderr

        with quiet_stderr():
            b = bcc.BPF(text="KFUNC_PROBE(vfs_read) { return 0; }")
        b.cleanup()
        return True
    except Exception:  # any failure to compile, load or attach means "no"
        return False


# -- raw system calls (what bcc does not wrap) ----------------------------------
SYSCALL_NUMBERS = {"x86_64": {"bpf": 321, "perf_event_open": 298},
                   "aarch64": {"bpf": 280, "perf_event_open": 241}}.get(platform.machine(), {})


@functools.lru_cache(maxsize=None)
def libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(None, use_errno=True)
    lib.syscall.restype = ctypes.c_long
    return lib


def bpf_syscall(cmd: int, attr) -> int:
    """bpf(2) with a ctypes attr: the result, or OSError with the errno."""
    number = SYSCALL_NUMBERS.get("bpf")
    if number is None:
        raise OSError(38, f"the bpf() system call is not known on {platform.machine()}")  # ENOSYS
    result = libc().syscall(number, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(result)


# -- loaded BPF programs (for lifecycle checks) --------------------------------
_BPF_PROG_GET_NEXT_ID = 11


def loaded_program_ids() -> list[int]:
    """IDs of every BPF program loaded in the kernel (needs privileges)."""
    if "bpf" not in SYSCALL_NUMBERS:
        raise SetupError(f"listing BPF programs is not supported on {platform.machine()}")
    attr = (ctypes.c_uint32 * 4)()  # start_id, next_id, open_flags, pad
    ids, start = [], 0
    while True:
        attr[0], attr[1] = start, 0
        try:
            bpf_syscall(_BPF_PROG_GET_NEXT_ID, attr)
        except OSError:   # ENOENT after the last one
            return ids
        start = attr[1]
        ids.append(start)


def own_bpf_objects() -> dict[str, int]:
    """BPF programs, maps and links this process holds open, by kind.

    Counted from /proc/self/fd, so other processes' programs (another
    tracer, a parallel test) do not disturb lifecycle checks.
    """
    counts = {"bpf-prog": 0, "bpf-map": 0, "bpf_link": 0, "perf_event": 0}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("anon_inode:"):
            kind = target[len("anon_inode:"):].strip("[]")
            if kind in counts:
                counts[kind] += 1
    return counts


# -- doctor -------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # works, with a caveat worth reading


def checks() -> list[Check]:
    version = bcc_version()
    headers = kernel_headers()
    tfs = tracefs()
    priv = privileged()
    result = [
        Check("bcc", version is not None, f"version {version}" if version else "not importable", FIX_SETUP),
        Check(
            "privileges",
            priv,
            "root" if os.geteuid() == 0 else ("CAP_BPF+CAP_PERFMON" if priv else f"uid {os.geteuid()}"),
            "run as root or grant cap_bpf,cap_perfmon to the venv's python (see README)",
        ),
        Check("tracefs", tfs is not None, tfs or "not mounted", "mount -t tracefs tracefs /sys/kernel/tracing"),
        Check(
            "kernel headers",
            headers.state in ("matching", "kheaders", "stand-in"),
            f"{headers.state}: {headers.detail}",
            "" if headers.state != "missing" else "run `make setup`",
            warn=headers.state == "stand-in",
        ),
        Check("BTF", btf_available(), "/sys/kernel/btf/vmlinux" if btf_available() else "absent", "needs a kernel built with CONFIG_DEBUG_INFO_BTF"),
        Check("tracepoints", tfs is not None, "stable kernel events (sched, block, syscalls, tcp, ...)", "mount tracefs"),
        Check("kprobes", kprobes_available(), "dynamic kernel probes" if kprobes_available() else "not in this kernel (CONFIG_KPROBES off)",
              "bpfnb's tools use tracepoints instead; kprobe__/kprobe: specs will not attach"),
        Check("fentry (KFUNC_PROBE)", fentry_available(), "BPF trampolines" if fentry_available() else "cannot attach here",
              "use tracepoints or raw tracepoints"),
        Check("uprobes", uprobes_available(), "user-level dynamic probes", "needs CONFIG_UPROBE_EVENTS"),
        Check("ring buffer", ringbuf_available(), f"Linux {'.'.join(map(str, kernel_version()))}", "needs Linux 5.8+; BPF_PERF_OUTPUT works"),
        Check("perf events", perf_events_available(), "sampling (profile) and PMU events", "needs CONFIG_PERF_EVENTS"),
        Check("map walk in the kernel", map_walk_available(),
              "large map snapshots by bpf_for_each_map_elem" if map_walk_available() else "not here",
              "snapshots use BPF_MAP_LOOKUP_BATCH instead: the same answer, about twice as slow (Linux 5.13+)"),
    ]
    return result


def doctor_text() -> str:
    lines = [f"bpfnb doctor — {platform.node()}, Linux {platform.release()}, Python {platform.python_version()}"]
    for check in checks():
        mark = ("ok!" if check.warn else "ok ") if check.ok else "NO "
        line = f"  [{mark}] {check.name:<22} {check.detail}"
        if not check.ok and check.fix:
            line += f"\n  {'':<29}-> {check.fix}"
        lines.append(line)
    return "\n".join(lines)
