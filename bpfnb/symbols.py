"""Kernel and user symbolization in bulk, and folding of captured stacks.

For the capture code (profile, offcputime, offwaketime, any BPF_STACK_TRACE):

    from bpfnb.symbols import fold_stacks, UserSymbols
    usyms = UserSymbols()
    usyms.remember(pid)                  # while the process lives (cheap, cached)
    stacks = fold_stacks(kernel, user, pids, usyms=usyms)
    # kernel[i], user[i]: np.ndarray of addresses, leaf first, as bcc's
    # StackTrace walk() yields them (None or empty: no stack of that kind)
    # -> stacks[i] == "user_root;...;user_leaf;kernel_root;...;kernel_leaf"

    # or, from a map of stack ids straight to a Trace "stacks" frame:
    df = stacks_frame(counts_df, lambda i: np.fromiter(b["stack_traces"].walk(i), np.uint64),
                      keys=["comm", "pid"])   # -> [comm, pid, stack, value]

KernelSymbols reads /proc/kallsyms once per process into sorted arrays and
resolves whole arrays of addresses with one np.searchsorted. UserSymbols
maps an address of a process to (file, file offset) through the process's
/proc/PID/maps, recorded by remember(pid) so processes that exit before the
capture ends still resolve, and looks it up in the file's ELF symbol tables
(.symtab, else .dynsym, plus a separate debug file found by build id),
parsed here with numpy and cached per (path, device, inode, size, mtime).
Perf maps (/tmp/perf-PID.map, written by JITs) are read too. "[unknown]"
stands for whatever does not resolve, as in bcc.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

UNKNOWN = "[unknown]"
KALLSYMS = "/proc/kallsyms"

# Frames the tracing machinery itself puts on the leaf side of a captured
# kernel stack: the BPF program, trampolines, and the tracepoint/perf glue
# (a syscalls:sys_enter_* stack on Linux 6.18 starts perf_syscall_enter,
# syscall_trace_enter, do_syscall_64: the first two exist only because of
# the tracepoint).
_BPF_FRAME = re.compile(
    r"bpf_prog_[0-9a-f]{16}(_.*)?$|bpf_trampoline_\d+|bpf_dispatcher_"
    r"|__bpf_prog_run|bpf_trace_run\d*$|__bpf_trace_|__traceiter_|perf_trace_"
    r"|trace_call_bpf$|perf_trace_run_bpf_submit$|perf_syscall_(enter|exit)$"
    r"|syscall_trace_enter(\.\w+)*$|syscall_exit_work$|trace_sys_(enter|exit)$"
    r"|kprobe_(perf_func|dispatcher|ftrace_handler)$|kretprobe_(perf_func|dispatcher)$"
    r"|pre_handler_kretprobe$|aggr_pre_handler$|arch_ftrace_ops_list_func$"
    r"|ftrace_(regs_)?call$|ftrace_trampoline$|bpf_get_stack(id)?(_raw_tp|_tp|_pe)?$"
)


def is_bpf_frame(name: str) -> bool:
    """True for a frame added by BPF/tracing glue rather than the traced code."""
    return bool(_BPF_FRAME.match(name))


def strip_bpf_frames(frames: Sequence[str]) -> list[str]:
    """Drop the BPF and tracepoint frames on the leaf side of a kernel stack.

    frames: names leaf first (as bcc walks a stack). Only the leading run of
    tracing frames goes: a bpf_prog_* deeper in the stack is real and stays.
    """
    frames = list(frames)
    i = 0
    while i < len(frames) and is_bpf_frame(frames[i]):
        i += 1
    return frames[i:]


# -- kernel ---------------------------------------------------------------------
class KernelSymbols:
    """/proc/kallsyms as sorted arrays; resolve() many addresses at once."""

    def __init__(self, path: str = KALLSYMS):
        self.path = path
        self.addresses, self.names = _read_kallsyms(path)
        self.loaded_at = time.monotonic()
        self._bpf = None

    def __len__(self) -> int:
        return len(self.names)

    def index(self, addresses) -> np.ndarray:
        """Symbol index of each address (-1 where none covers it).

        kallsyms has no sizes: an address further than _MAX_SYMBOL_SPAN past
        the nearest symbol below is taken as not covered (it is in a gap, or
        in code loaded after kallsyms was read, such as a new BPF program).
        """
        addresses = np.asarray(addresses, dtype=np.uint64)
        idx = np.searchsorted(self.addresses, addresses, side="right").astype(np.int64) - 1
        far = (idx >= 0) & (addresses - self.addresses[np.maximum(idx, 0)] > _MAX_SYMBOL_SPAN)
        idx[far] = -1
        return idx

    def resolve(self, addresses) -> np.ndarray:
        """Names (object array) of the symbols holding each address."""
        idx = self.index(addresses)
        out = self.names[np.maximum(idx, 0)]
        out[idx < 0] = UNKNOWN
        return out

    def is_bpf(self) -> np.ndarray:
        """Per symbol: is it BPF/tracing glue (see is_bpf_frame)? Cached."""
        if self._bpf is None:
            self._bpf = np.fromiter(
                (is_bpf_frame(n) for n in self.names), dtype=bool, count=len(self.names)
            )
        return self._bpf


_kernel_cache: dict[str, KernelSymbols] = {}
_MAX_SYMBOL_SPAN = np.uint64(1 << 20)  # no kernel function is near 1 MiB long
_KERNEL_HALF = np.uint64(0xFFFF800000000000)  # x86-64/arm64 kernel addresses
_REFRESH_AFTER = 1.0  # seconds: re-read kallsyms for unknown kernel addresses


def kernel_symbols(refresh: bool = False) -> KernelSymbols:
    """The process-wide KernelSymbols (kallsyms read once; refresh re-reads it,
    e.g. after loading a module or BPF program whose frames you need).

    fold_stacks re-reads it by itself, at most once a second, when kernel
    addresses do not resolve (a BPF program loaded after the first read).
    """
    if refresh or KALLSYMS not in _kernel_cache:
        _kernel_cache[KALLSYMS] = KernelSymbols(KALLSYMS)
    return _kernel_cache[KALLSYMS]


_KALLSYMS_LINE = re.compile(r"^([0-9a-fA-F]+) [tTwW] (\S+)", re.M)


def _read_kallsyms(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    # text symbols only: data symbols would swallow code addresses
    found = _KALLSYMS_LINE.findall(text)
    address = np.array([int(a, 16) for a, _ in found], dtype=np.uint64)
    if len(address) and not address.any():
        from .errors import PrivilegeError

        raise PrivilegeError(
            f"{path} shows every address as 0, so kernel stacks cannot be symbolized; "
            "run as root or set kernel.kptr_restrict=0 (sysctl) with CAP_SYSLOG"
        )
    order = np.argsort(address, kind="stable")
    return address[order], np.array([n for _, n in found], dtype=object)[order]


# -- ELF -----------------------------------------------------------------------
@dataclass
class ElfSymbols:
    """Function symbols of one ELF file, sorted by address, names decoded lazily."""

    start: np.ndarray  # uint64, sorted
    size: np.ndarray  # uint64
    name_offset: np.ndarray  # offsets into strtab
    strtab: bytes
    segments: np.ndarray  # (offset, vaddr, filesz) of PT_LOAD segments
    build_id: str | None = None
    full: bool = False  # from .symtab (all functions), not only .dynsym (exported)

    def __post_init__(self):
        self._names: dict[int, str] = {}  # raw (mangled) names
        self._shown: dict[int, str] = {}  # as lookup() returns them: demangled

    def name(self, i: int) -> str:
        name = self._names.get(i)
        if name is None:
            off = int(self.name_offset[i])
            end = self.strtab.find(b"\0", off)
            name = self.strtab[off : end if end >= 0 else None].decode("utf-8", "replace")
            self._names[i] = name
        return name

    def file_to_vaddr(self, offsets: np.ndarray) -> np.ndarray:
        """Virtual addresses (as linked) of file offsets (via PT_LOAD segments)."""
        offsets = np.asarray(offsets, dtype=np.uint64)
        vaddr = offsets.copy()
        for off, va, filesz in self.segments:
            inside = (offsets >= off) & (offsets < off + max(filesz, 1))
            vaddr[inside] = offsets[inside] - np.uint64(off) + np.uint64(va)
        return vaddr

    def lookup(self, vaddrs: np.ndarray) -> np.ndarray:
        """Names (object array) of the functions holding each virtual address."""
        vaddrs = np.asarray(vaddrs, dtype=np.uint64)
        out = np.full(len(vaddrs), UNKNOWN, dtype=object)
        if not len(self.start) or not len(vaddrs):
            return out
        idx = np.searchsorted(self.start, vaddrs, side="right").astype(np.int64) - 1
        safe = np.maximum(idx, 0)
        # inside the symbol (a zero-size symbol covers up to the next one)
        ok = (idx >= 0) & (vaddrs < self.start[safe] + np.maximum(self.size[safe], np.uint64(1)))
        ok |= (idx >= 0) & (self.size[safe] == 0)
        unique, inverse = np.unique(idx[ok], return_inverse=True)
        fresh = [i for i in unique.tolist() if i not in self._shown]
        for i, name in zip(fresh, demangle([self.name(i) for i in fresh])):
            self._shown[i] = unversioned(name)
        names = np.array([self._shown[i] for i in unique.tolist()] + [""], dtype=object)[:-1]
        out[ok] = names[inverse]
        return out


def unversioned(name: str) -> str:
    """Drop an ELF symbol version, as bcc shows names: "clock_nanosleep@@GLIBC_2.17" -> "clock_nanosleep"."""
    base = name.partition("@")[0]
    return base or name


_EMPTY = np.zeros(0, dtype=np.uint64)
_demangled: dict[str, str] = {}


def demangle(names: list[str]) -> list[str]:
    """C++ names demangled as bcc shows them ("_ZN3foo3barEv" -> "foo::bar()"),
    all in one c++filt call; names stay as they are without c++filt."""
    todo = sorted({n for n in names if n.startswith("_Z") and n not in _demangled})
    if todo:
        import shutil
        import subprocess

        tool = shutil.which("c++filt")
        out = None
        if tool:
            try:
                out = subprocess.run([tool], input="\n".join(todo) + "\n", capture_output=True,
                                     text=True, timeout=30, check=True).stdout.splitlines()
            except (OSError, subprocess.SubprocessError):
                out = None
        if out is None or len(out) != len(todo):
            out = todo
        _demangled.update(zip(todo, out))
    return [_demangled.get(n, n) for n in names]


def read_elf_symbols(path: str) -> ElfSymbols | None:
    """Function symbols of an ELF file; None if it is not ELF or unreadable."""
    try:
        with open(path, "rb") as f:
            # mapped, not read: only the headers and symbol tables are touched
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # ValueError: an empty file
        return None
    if len(data) < 64 or data[:4] != b"\x7fELF":
        return None
    is64, little = data[4] == 2, data[5] == 1
    e = "<" if little else ">"
    if is64:
        phoff, shoff = struct.unpack_from(e + "QQ", data, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", data, 54)
        sym_dtype = np.dtype([("name", e + "u4"), ("info", "u1"), ("other", "u1"),
                              ("shndx", e + "u2"), ("value", e + "u8"), ("size", e + "u8")])
    else:
        phoff, shoff = struct.unpack_from(e + "II", data, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", data, 42)
        sym_dtype = np.dtype([("name", e + "u4"), ("value", e + "u4"), ("size", e + "u4"),
                              ("info", "u1"), ("other", "u1"), ("shndx", e + "u2")])
    segments = []
    for i in range(phnum):
        base = phoff + i * phentsize
        if is64:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
                e + "IIQQQQ", data, base
            )
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(e + "IIIII", data, base)
        if p_type == 1:  # PT_LOAD
            segments.append((p_offset, p_vaddr, p_filesz))
    sections = []
    for i in range(shnum):
        base = shoff + i * shentsize
        if is64:
            _n, sh_type, _fl, _addr, sh_offset, sh_size, sh_link = struct.unpack_from(
                e + "IIQQQQI", data, base
            )
        else:
            _n, sh_type, _fl, _addr, sh_offset, sh_size, sh_link = struct.unpack_from(
                e + "IIIIIII", data, base
            )
        sections.append((sh_type, sh_offset, sh_size, sh_link))
    starts, sizes, name_offs, strtab = [], [], [], b""
    full = False
    # .symtab (type 2) when present (not stripped), else .dynsym (type 11)
    for wanted in (2, 11):
        tables = [s for s in sections if s[0] == wanted]
        if not tables:
            continue
        for _t, off, size, link in tables:
            syms = np.frombuffer(data, dtype=sym_dtype, count=size // sym_dtype.itemsize, offset=off)
            kind = syms["info"] & 0xF
            keep = ((kind == 2) | (kind == 10)) & (syms["value"] != 0)  # FUNC, GNU_IFUNC
            s_type, s_off, s_size, _l = sections[link]
            base_len = len(strtab)
            strtab += data[s_off : s_off + s_size]
            starts.append(syms["value"][keep].astype(np.uint64))
            sizes.append(syms["size"][keep].astype(np.uint64))
            name_offs.append(syms["name"][keep].astype(np.int64) + base_len)
        full = wanted == 2
        break
    start = np.concatenate(starts) if starts else _EMPTY
    order = np.argsort(start, kind="stable")
    return ElfSymbols(
        start=start[order],
        size=(np.concatenate(sizes) if sizes else _EMPTY)[order],
        name_offset=(np.concatenate(name_offs) if name_offs else np.zeros(0, np.int64))[order],
        strtab=strtab,
        segments=np.array(segments, dtype=np.uint64).reshape(-1, 3),
        build_id=_build_id(data, sections, e),
        full=full,
    )


def _build_id(data: bytes, sections, e: str) -> str | None:
    for sh_type, off, size, _link in sections:
        if sh_type != 7:  # SHT_NOTE
            continue
        pos, end = off, off + size
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from(e + "III", data, pos)
            name_end = pos + 12 + ((namesz + 3) & ~3)
            if ntype == 3 and data[pos + 12 : pos + 12 + namesz].rstrip(b"\0") == b"GNU":
                return data[name_end : name_end + descsz].hex()
            pos = name_end + ((descsz + 3) & ~3)
    return None


@lru_cache(maxsize=256)
def _elf_cached(path: str, key: tuple) -> ElfSymbols | None:
    """ELF symbols of path; key (dev, inode, size, mtime) invalidates on change.

    A stripped file (only .dynsym) is completed by its separate debug file,
    /usr/lib/debug/.build-id/xx/rest.debug, when one is installed.
    """
    syms = read_elf_symbols(path)
    if syms is not None and not syms.full and syms.build_id:
        bid = syms.build_id
        debug = read_elf_symbols(f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug")
        if debug is not None and debug.full:
            debug.segments = syms.segments  # the debug file's offsets are not the code's
            return debug
    return syms


def _file_key(path: str) -> tuple | None:
    """A file's identity (device, inode, size, mtime): changes when the file does."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def elf_symbols(path: str) -> ElfSymbols | None:
    """Cached ELF symbols for a file path (cache keyed by its identity)."""
    key = _file_key(path)
    return None if key is None else _elf_cached(path, key)


# -- user ------------------------------------------------------------------------
@dataclass
class _Mapping:
    start: np.ndarray  # uint64 per executable mapping, sorted
    end: np.ndarray
    offset: np.ndarray
    files: list  # (path, key) per mapping
    perf_map: tuple[np.ndarray, np.ndarray, list[str]] | None = None


class UserSymbols:
    """User-space symbols of processes: remember(pid) while it lives, resolve later."""

    def __init__(self, *, bcc_fallback: bool = False):
        self._maps: dict[int, _Mapping] = {}
        self._elf: dict[tuple, ElfSymbols | None] = {}
        self.bcc_fallback = bcc_fallback

    def remember(self, pid: int) -> bool:
        """Record pid's executable mappings (and load their symbols) now.

        Returns False when the process is already gone. Call it when a pid
        is first seen (e.g. on each new pid in a perf buffer callback or when
        reading a map) so the stacks of short-lived processes still resolve.
        """
        pid = int(pid)
        if pid in self._maps:
            return True
        mapping = _read_maps(pid)
        if mapping is None:
            return False
        for path, key in mapping.files:
            if self._elf.get(key) is None:
                self._elf[key] = _elf_cached(path, key) or _elf_on_host(pid, path, key)
        self._maps[pid] = mapping
        return True

    def forget(self, pid: int) -> None:
        self._maps.pop(int(pid), None)

    def resolve(self, pid: int, addresses) -> list[str]:
        """Function names of user addresses of pid ("[unknown]" if unresolved)."""
        addresses = np.asarray(addresses, dtype=np.uint64)
        if not len(addresses):
            return []
        if not self.remember(pid):
            return self._fallback(pid, addresses)
        m = self._maps[int(pid)]
        out = np.full(len(addresses), UNKNOWN, dtype=object)
        idx = np.searchsorted(m.start, addresses, side="right").astype(np.int64) - 1
        hit = (idx >= 0) & (addresses < m.end[np.maximum(idx, 0)]) if len(m.start) else idx < -1
        for map_i in np.unique(idx[hit]).tolist():
            rows = np.flatnonzero(hit & (idx == map_i))
            path, key = m.files[map_i]
            syms = self._elf.get(key)
            if syms is None:
                continue
            file_off = addresses[rows] - m.start[map_i] + m.offset[map_i]
            out[rows] = syms.lookup(syms.file_to_vaddr(file_off))
        out = out.tolist()
        if m.perf_map is not None:
            _apply_perf_map(m.perf_map, addresses, out)
        if self.bcc_fallback and UNKNOWN in out:
            missing = [i for i, n in enumerate(out) if n == UNKNOWN]
            for i, name in zip(missing, self._fallback(pid, addresses[missing])):
                out[i] = name
        return out

    def _fallback(self, pid: int, addresses: np.ndarray) -> list[str]:
        if not self.bcc_fallback:
            return [UNKNOWN] * len(addresses)
        try:
            from bcc import BPF
        except ImportError:
            return [UNKNOWN] * len(addresses)
        return [BPF.sym(int(a), int(pid)).decode("utf-8", "replace") for a in addresses]


def _elf_on_host(pid: int, path: str, key: tuple) -> ElfSymbols | None:
    """The same file by its own path, when /proc/PID/root went away with the process.

    A process can exit between the reading of its maps and of its files;
    outside containers its files are where its maps say, and the file
    identity (device, inode, size, mtime) tells whether it is the same one.
    """
    prefix = f"/proc/{pid}/root"
    if not path.startswith(prefix):
        return None
    host_path = path[len(prefix):]
    return _elf_cached(host_path, key) if _file_key(host_path) == key else None


def _read_maps(pid: int) -> _Mapping | None:
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    starts, ends, offs, files = [], [], [], []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
            continue
        path = parts[5]
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        # /proc/PID/root reaches the file as the process sees it (containers)
        full = f"/proc/{pid}/root{path}"
        key = _file_key(full)
        if key is None:
            continue
        lo, hi = parts[0].split("-")
        starts.append(int(lo, 16))
        ends.append(int(hi, 16))
        offs.append(int(parts[2], 16))
        files.append((full, key))
    order = np.argsort(np.array(starts, dtype=np.uint64), kind="stable")
    return _Mapping(
        start=np.array(starts, dtype=np.uint64)[order],
        end=np.array(ends, dtype=np.uint64)[order],
        offset=np.array(offs, dtype=np.uint64)[order],
        files=[files[i] for i in order.tolist()],
        perf_map=_read_perf_map(pid),
    )


def _read_perf_map(pid: int):
    """/tmp/perf-PID.map (START SIZE NAME per line, hex), written by JITs."""
    try:
        with open(f"/tmp/perf-{pid}.map") as f:
            rows = [line.rstrip("\n").split(" ", 2) for line in f]
    except OSError:
        return None
    rows = [r for r in rows if len(r) == 3]
    start = np.array([int(r[0], 16) for r in rows], dtype=np.uint64)
    size = np.array([int(r[1], 16) for r in rows], dtype=np.uint64)
    order = np.argsort(start, kind="stable")
    return start[order], (start + size)[order], [rows[i][2] for i in order.tolist()]


def _apply_perf_map(perf_map, addresses: np.ndarray, out: list[str]) -> None:
    start, end, names = perf_map
    idx = np.searchsorted(start, addresses, side="right").astype(np.int64) - 1
    for r, i in enumerate(idx.tolist()):
        if out[r] == UNKNOWN and i >= 0 and addresses[r] < end[i]:
            out[r] = names[i]


# -- folding -----------------------------------------------------------------------
def fold_stacks(
    kernel: Sequence[np.ndarray | Sequence[int] | None] | None,
    user: Sequence[np.ndarray | Sequence[int] | None] | None = None,
    pids: Sequence[int] | None = None,
    *,
    ksyms: KernelSymbols | None = None,
    usyms: UserSymbols | None = None,
    strip_bpf: bool = True,
    delimiter: str | None = None,
    kernel_suffix: str = "",
) -> list[str]:
    """Folded stacks (root first, ';'-joined) of captured kernel+user stacks.

    kernel[i], user[i]: addresses of row i's stacks, leaf first (bcc's
    StackTrace walk order); None or empty when the row has no such stack.
    Either list may be None. pids[i]: the process of row i, needed for user
    symbols (resolved through usyms, a UserSymbols that remembered the pid).
    The result puts the user frames first (root = the program's entry),
    then the kernel frames, like bcc's `profile -f`. strip_bpf drops the
    tracing glue on the leaf side of kernel stacks; delimiter (e.g. "-")
    goes between the user and kernel parts when both exist; kernel_suffix
    (e.g. "_[k]") marks kernel frames.
    """
    n = len(kernel) if kernel is not None else len(user or [])
    kernel_parts = [""] * n
    if kernel is not None:
        kernel_parts = _fold_kernel(kernel, ksyms, strip_bpf, kernel_suffix)
    if user is None:
        return kernel_parts
    user_parts = _fold_user(user, pids, usyms or UserSymbols())
    out = []
    for up, kp in zip(user_parts, kernel_parts):
        if up and kp:
            out.append(f"{up};{delimiter};{kp}" if delimiter is not None else f"{up};{kp}")
        else:
            out.append(up or kp)
    return out


def _fold_user(user, pids, usyms: UserSymbols) -> list[str]:
    """Per row, the user frames root first; one resolve() per process."""
    out = [""] * len(user)
    if pids is None:
        return out
    rows_by_pid: dict[int, list[int]] = {}
    for i, addrs in enumerate(user):
        if addrs is not None and len(addrs):
            rows_by_pid.setdefault(int(pids[i]), []).append(i)
    for pid, rows in rows_by_pid.items():
        arrays = [np.asarray(user[i], dtype=np.uint64) for i in rows]
        names = usyms.resolve(pid, np.concatenate(arrays))
        pos = 0
        for i, arr in zip(rows, arrays):
            out[i] = ";".join(names[pos : pos + len(arr)][::-1])
            pos += len(arr)
    return out


def _fold_kernel(kernel, ksyms: KernelSymbols | None, strip_bpf: bool, suffix: str) -> list[str]:
    """Per row, the kernel frames root first and ';'-joined; one lookup for all rows."""
    lengths = np.array([0 if k is None else len(k) for k in kernel], dtype=np.int64)
    if not lengths.sum():
        return [""] * len(lengths)
    flat = np.concatenate([np.asarray(k, dtype=np.uint64) for k in kernel if k is not None and len(k)])
    row_start = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=row_start[1:])
    pos = np.arange(len(flat)) - np.repeat(row_start[:-1], lengths)
    shared = ksyms is None
    ksyms = ksyms or kernel_symbols()
    idx = ksyms.index(flat)
    if shared and time.monotonic() - ksyms.loaded_at > _REFRESH_AFTER:
        if ((idx < 0) & (flat >= _KERNEL_HALF)).any():  # code loaded since: re-read
            ksyms = kernel_symbols(refresh=True)
            idx = ksyms.index(flat)
    keep = np.ones(len(flat), dtype=bool)
    if strip_bpf:
        # length of the leading (leaf-side) run of tracing frames in each row
        bpf = np.where(idx >= 0, ksyms.is_bpf()[np.maximum(idx, 0)], False)
        not_bpf_pos = np.where(bpf, np.iinfo(np.int64).max, pos)
        nonempty = lengths > 0
        lead = np.zeros(len(lengths), dtype=np.int64)
        lead[nonempty] = np.minimum.reduceat(not_bpf_pos, row_start[:-1][nonempty])
        keep = pos >= np.repeat(np.minimum(lead, lengths), lengths)
    # reverse every row (leaf first -> root first), then drop the stripped frames
    rev = np.repeat(row_start[1:] - 1, lengths) - pos
    rev = rev[keep[rev]]
    kept = np.bincount(np.repeat(np.arange(len(lengths)), lengths)[keep], minlength=len(lengths))
    names = ksyms.names[np.maximum(idx[rev], 0)]
    names[idx[rev] < 0] = UNKNOWN
    names = names.tolist()
    if suffix:
        names = [name + suffix for name in names]
    bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(kept, out=bounds[1:])
    b = bounds.tolist()
    return [";".join(names[b[i] : b[i + 1]]) for i in range(len(lengths))]


MISSING_KERNEL = "[Missing Kernel Stack]"
MISSING_USER = "[Missing User Stack]"
_EFAULT = -14  # bpf_get_stackid: no stack of that kind here (a kernel thread's user stack)


def fold_stack_ids(kernel_ids, user_ids, pids, read_stack, usyms=None, *,
                   ksyms: KernelSymbols | None = None, strip_bpf: bool = True) -> list[str]:
    """One folded stack per row (root first, ";"-joined, "" if none) from stack ids.

    kernel_ids, user_ids: int arrays of bpf_get_stackid results (None: that
    kind was not captured); pids: the process of each row (for user
    symbols, through usyms, a bpfnb.symbols.UserSymbols; -1: unknown; None:
    no process known, so no user frames). read_stack(id) -> addresses leaf
    first; each id is read once. -EFAULT (no stack of that kind) leaves the
    part out; other errors (-EEXIST: a hash collision in the stack table,
    -ENOMEM) put bcc's "[Missing User Stack]" / "[Missing Kernel Stack]"
    where those frames would be, as bcc's tools do.
    """
    cache: dict[int, np.ndarray] = {}

    def stack_of(stack_id: int):
        if stack_id < 0:
            return None
        if stack_id not in cache:
            cache[stack_id] = np.asarray(read_stack(stack_id), dtype=np.uint64)
        return cache[stack_id]

    if pids is not None:
        pids = np.asarray(pids, dtype=np.int64)
    n = next((len(a) for a in (pids, user_ids, kernel_ids) if a is not None), 0)
    user = kernel = [""] * n
    user_missing = kernel_missing = [False] * n
    if user_ids is not None:
        user_ids = np.asarray(user_ids, dtype=np.int64)
        usyms = usyms if usyms is not None else UserSymbols()
        if pids is not None:
            for pid in np.unique(pids[user_ids >= 0]).tolist():
                if pid > 0:
                    usyms.remember(pid)
        user = fold_stacks(None, [stack_of(i) for i in user_ids.tolist()], pids, usyms=usyms)
        user_missing = _missing(user_ids)
    if kernel_ids is not None:
        kernel_ids = np.asarray(kernel_ids, dtype=np.int64)
        kernel = fold_stacks([stack_of(i) for i in kernel_ids.tolist()], ksyms=ksyms, strip_bpf=strip_bpf)
        kernel_missing = _missing(kernel_ids)
    out = []
    for u, k, no_u, no_k in zip(user, kernel, user_missing, kernel_missing):
        parts = (MISSING_USER if no_u else u, MISSING_KERNEL if no_k else k)
        out.append(";".join(p for p in parts if p))
    return out


def _missing(ids: np.ndarray) -> list[bool]:
    """Per stack id, whether it is an error that bcc prints as a missing stack."""
    return ((ids < 0) & (ids != _EFAULT)).tolist()


def stacks_frame(
    rows,
    read_stack,
    *,
    kernel: str | None = "kernel_stack_id",
    user: str | None = "user_stack_id",
    pid: str | None = "pid",
    value: str = "value",
    keys: Sequence[str] | None = None,
    ksyms: KernelSymbols | None = None,
    usyms: UserSymbols | None = None,
    strip_bpf: bool = True,
):
    """A Trace "stacks" frame [keys..., stack, value] from rows of stack ids.

    rows: a DataFrame with one row per (keys, stack ids), e.g. a BPF_HASH
    keyed by {pid, comm, kernel_stack_id, user_stack_id} read as a frame.
    read_stack(stack_id) -> addresses leaf first (e.g. lambda i:
    np.fromiter(bpf["stack_traces"].walk(i), np.uint64)); each id is read
    once. Negative ids: -EFAULT (-14, no such stack, as for a kernel
    thread's user stack) is left out; other errors (-EEXIST: hash bucket
    collision, -ENOMEM: table full) show as "[Missing Kernel Stack]" /
    "[Missing User Stack]" (bcc's words), after the frames there are
    (bcc, and fold_stack_ids, put them where the frames would be). Rows
    that fold to the same keys and stack are summed. keys default to every
    column that is not a stack id or the value (pid included: pass
    keys=["comm"] to merge processes). kernel/user None: that kind is not
    captured.
    """
    import pandas as pd

    ids = [c for c in (kernel, user) if c is not None]
    keys = [c for c in rows.columns if c not in (*ids, value)] if keys is None else list(keys)
    folded = fold_stack_ids(
        rows[kernel].to_numpy(dtype=np.int64) if kernel is not None else None,
        rows[user].to_numpy(dtype=np.int64) if user is not None else None,
        rows[pid].to_numpy() if (pid is not None and pid in rows) else None,
        read_stack, usyms, ksyms=ksyms, strip_bpf=strip_bpf)
    out = rows[keys].copy() if keys else pd.DataFrame(index=rows.index)
    out["stack"] = pd.Series(folded, index=rows.index, dtype=object)
    out["value"] = rows[value].to_numpy()
    out = out[out["stack"] != ""]
    if keys:
        return out.groupby([*keys, "stack"], sort=False, as_index=False)["value"].sum()
    return out.groupby("stack", sort=False, as_index=False)["value"].sum()


def offwake_stack(target: str, waker: str, waker_comm: str, separator: str = "--") -> str:
    """bcc offwaketime -f layout from two folded (root-first) stacks:
    target root..leaf, "--", waker leaf..root, waker name."""
    parts = [p for p in (target,) if p]
    parts.append(separator)
    if waker:
        parts.append(";".join(waker.split(";")[::-1]))
    parts.append(waker_comm)
    return ";".join(parts)


__all__ = [
    "UNKNOWN",
    "KernelSymbols",
    "kernel_symbols",
    "UserSymbols",
    "ElfSymbols",
    "read_elf_symbols",
    "demangle",
    "elf_symbols",
    "strip_bpf_frames",
    "is_bpf_frame",
    "fold_stacks",
    "fold_stack_ids",
    "stacks_frame",
    "offwake_stack",
]

