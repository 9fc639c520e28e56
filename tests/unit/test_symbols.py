"""Symbolization: kallsyms in bulk, ELF + /proc/PID/maps, BPF frame stripping, folding."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from bpfnb.symbols import (
    UNKNOWN,
    KernelSymbols,
    UserSymbols,
    fold_stacks,
    kernel_symbols,
    offwake_stack,
    read_elf_symbols,
    strip_bpf_frames,
)

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81001000 T entry_SYSCALL_64_after_hwframe
ffffffff81002000 t do_syscall_64
ffffffff81003000 T __x64_sys_read
ffffffff81004000 D some_data
ffffffff81005000 t perf_syscall_enter
ffffffff81006000 t bpf_prog_0123456789abcdef_on_read	[bpf]
ffffffff81007000 T bpf_prog_realloc
ffffffffc0001000 t nvme_irq	[nvme]
"""


@pytest.fixture
def ksyms(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    return KernelSymbols(str(path))


def addr(name, ksyms, off=4):
    return int(ksyms.addresses[list(ksyms.names).index(name)]) + off


def test_kernel_resolve_vectorized_with_unknown(ksyms):
    got = ksyms.resolve(np.array([0xFFFFFFFF81002010, 0xFFFFFFFF81003FFF, 0x10, 0xFFFFFFFFC0001004], dtype=np.uint64))
    assert got.tolist() == ["do_syscall_64", "__x64_sys_read", UNKNOWN, "nvme_irq"]
    assert "some_data" not in ksyms.names  # data symbols are not code
    assert len(ksyms) == 8


def test_real_kallsyms_resolves_a_known_function():
    if not os.access("/proc/kallsyms", os.R_OK):
        pytest.skip("/proc/kallsyms is not readable here")
    ks = kernel_symbols()
    if not ks.addresses.any():
        pytest.skip("kallsyms addresses are hidden (kptr_restrict)")
    for name in ("do_syscall_64", "schedule", "vfs_read"):
        where = int(ks.addresses[list(ks.names).index(name)])
        assert ks.resolve([where + 1])[0] == name
    assert kernel_symbols() is ks  # loaded once per process


def test_strip_only_the_leaf_side_tracing_frames():
    leaf_first = ["bpf_prog_0123456789abcdef_on_read", "bpf_trace_run2", "__bpf_trace_sched_switch",
                  "__traceiter_sched_switch", "__schedule", "schedule", "bpf_prog_realloc"]
    assert strip_bpf_frames(leaf_first) == ["__schedule", "schedule", "bpf_prog_realloc"]
    # a syscalls:sys_enter_getppid stack as captured on Linux 6.18
    assert strip_bpf_frames(["perf_syscall_enter", "syscall_trace_enter", "do_syscall_64",
                             "entry_SYSCALL_64_after_hwframe"]) == [
        "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    assert strip_bpf_frames(["vfs_read", "perf_trace_sched_switch"]) == ["vfs_read", "perf_trace_sched_switch"]


def test_fold_kernel_stacks_root_first_and_stripped(ksyms):
    a = lambda n: addr(n, ksyms)  # noqa: E731
    kernel = [
        np.array([a("bpf_prog_0123456789abcdef_on_read"), a("perf_syscall_enter"), a("__x64_sys_read"),
                  a("do_syscall_64"), a("entry_SYSCALL_64_after_hwframe")], dtype=np.uint64),
        None,
        np.array([a("bpf_prog_realloc"), 0x10], dtype=np.uint64),
        np.array([a("perf_syscall_enter")], dtype=np.uint64),
    ]
    got = fold_stacks(kernel, ksyms=ksyms)
    assert got == [
        "entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_read",
        "",
        f"{UNKNOWN};bpf_prog_realloc",
        "",
    ]
    assert fold_stacks(kernel[:1], ksyms=ksyms, strip_bpf=False)[0].endswith(
        "__x64_sys_read;perf_syscall_enter;bpf_prog_0123456789abcdef_on_read")
    assert fold_stacks(kernel[:1], ksyms=ksyms, kernel_suffix="_[k]")[0] == (
        "entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];__x64_sys_read_[k]")


class FakeUser(UserSymbols):
    def resolve(self, pid, addresses):
        return [f"u{pid}_{int(x)}" for x in addresses]


def test_fold_puts_user_frames_first_then_kernel(ksyms):
    k = [np.array([addr("__x64_sys_read", ksyms), addr("do_syscall_64", ksyms)], dtype=np.uint64), None]
    u = [np.array([3, 2, 1], dtype=np.uint64), np.array([9], dtype=np.uint64)]
    got = fold_stacks(k, u, pids=[7, 8], ksyms=ksyms, usyms=FakeUser())
    assert got == ["u7_1;u7_2;u7_3;do_syscall_64;__x64_sys_read", "u8_9"]
    got = fold_stacks(k, u, pids=[7, 8], ksyms=ksyms, usyms=FakeUser(), delimiter="-")
    assert got[0] == "u7_1;u7_2;u7_3;-;do_syscall_64;__x64_sys_read"
    assert fold_stacks(None, u, pids=[7, 8], usyms=FakeUser()) == ["u7_1;u7_2;u7_3", "u8_9"]


def test_offwake_layout_like_bcc():
    assert offwake_stack("main;read;schedule", "start;write;pipe_write;try_to_wake_up", "writer") == (
        "main;read;schedule;--;try_to_wake_up;pipe_write;write;start;writer")


PROGRAM = textwrap.dedent(
    """
    #include <stdio.h>
    #include <unistd.h>
    __attribute__((noinline)) int bpfnb_spin_here(int n) { return n * 3 + 1; }
    int main(void) {
        printf("%p %p\\n", (void *)bpfnb_spin_here, (void *)getppid);
        fflush(stdout);
        char c; (void)read(0, &c, 1);
        return bpfnb_spin_here(1) == 4 ? 0 : 1;
    }
    """
)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (apt-get install gcc)")
    d = tmp_path_factory.mktemp("usym")
    (d / "p.c").write_text(PROGRAM)
    out = d / "p"
    subprocess.run([cc, "-O1", "-fPIE", "-pie", "-o", str(out), str(d / "p.c")], check=True)
    return out


def test_elf_symbols_of_a_built_program(program):
    syms = read_elf_symbols(str(program))
    names = [syms.name(i) for i in range(len(syms.start))]
    assert "bpfnb_spin_here" in names and "main" in names
    i = names.index("bpfnb_spin_here")
    assert syms.size[i] > 0
    assert syms.lookup(np.array([syms.start[i] + 1], dtype=np.uint64)) == ["bpfnb_spin_here"]
    assert read_elf_symbols("/proc/self/status") is None


def test_user_symbols_survive_the_process_exit(program):
    proc = subprocess.Popen([str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        fn, libc_fn = (int(x, 16) for x in proc.stdout.readline().split())
        usyms = UserSymbols()
        assert usyms.remember(proc.pid)
    finally:
        proc.communicate("x")
    assert proc.returncode == 0
    assert not os.path.exists(f"/proc/{proc.pid}/maps")  # gone
    got = usyms.resolve(proc.pid, np.array([fn + 2, libc_fn + 1, 8], dtype=np.uint64))
    assert got[0] == "bpfnb_spin_here"
    assert got[1].lstrip("_") in ("getppid", "libc_getppid")
    assert got[2] == UNKNOWN


def test_files_of_a_process_gone_between_maps_and_files_still_resolve(program, monkeypatch):
    from bpfnb import symbols

    proc = subprocess.Popen([str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        fn, _ = (int(x, 16) for x in proc.stdout.readline().split())
        mapping = symbols._read_maps(proc.pid)      # its maps were read while it lived ...
    finally:
        proc.communicate("x")
    assert not os.path.exists(f"/proc/{proc.pid}/root")   # ... its files only after it exited
    monkeypatch.setattr(symbols, "_read_maps", lambda pid: mapping)
    usyms = UserSymbols()
    assert usyms.remember(proc.pid)
    assert usyms.resolve(proc.pid, np.array([fn + 2], dtype=np.uint64)) == ["bpfnb_spin_here"]


def test_unknown_pid_resolves_to_unknown():
    usyms = UserSymbols()
    assert usyms.remember(2**22 + 12345) is False
    assert usyms.resolve(2**22 + 12345, [0x401000]) == [UNKNOWN]


def test_stacks_frame_from_stack_ids(ksyms):
    import pandas as pd

    from bpfnb.symbols import MISSING_USER, stacks_frame

    a = lambda n: addr(n, ksyms)  # noqa: E731
    table = {
        1: [a("perf_syscall_enter"), a("__x64_sys_read"), a("do_syscall_64")],
        2: [a("do_syscall_64")],
        7: [30, 20],
    }
    reads = []

    def read_stack(i):
        reads.append(i)
        return table[i]

    rows = pd.DataFrame(
        {
            "comm": ["app", "app", "kthread", "app", "app"],
            "pid": [5, 5, 9, 5, 5],
            "kernel_stack_id": [1, 1, 2, -17, 2],
            "user_stack_id": [7, 7, -14, 7, -17],
            "value": [3, 4, 10, 1, 2],
        }
    )
    got = stacks_frame(rows, read_stack, ksyms=ksyms, usyms=FakeUser())
    assert got.to_dict("records") == [
        {"comm": "app", "pid": 5, "stack": "u5_20;u5_30;do_syscall_64;__x64_sys_read", "value": 7},
        {"comm": "kthread", "pid": 9, "stack": "do_syscall_64", "value": 10},
        {"comm": "app", "pid": 5, "stack": "u5_20;u5_30;[Missing Kernel Stack]", "value": 1},
        {"comm": "app", "pid": 5, "stack": f"{MISSING_USER};do_syscall_64", "value": 2},  # where bcc puts it
    ]
    assert sorted(reads) == [1, 2, 7]  # each stack read once
    by_comm = stacks_frame(rows, read_stack, ksyms=ksyms, usyms=FakeUser(), keys=["comm"], user=None)
    assert by_comm.to_dict("records")[0] == {"comm": "app", "stack": "do_syscall_64;__x64_sys_read", "value": 7}


def test_far_addresses_are_unknown_and_new_code_triggers_a_reread(tmp_path, monkeypatch):
    from bpfnb import symbols

    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    monkeypatch.setattr(symbols, "KALLSYMS", str(path))
    monkeypatch.setattr(symbols, "_kernel_cache", {})
    ks = symbols.kernel_symbols()
    prog = 0xFFFFFFFFC0401010  # 4 MiB past nvme_irq: not covered by any symbol yet
    assert ks.resolve([prog]).tolist() == [UNKNOWN]
    stack = [np.array([prog, addr("do_syscall_64", ks)], dtype=np.uint64)]
    assert fold_stacks(stack) == [f"do_syscall_64;{UNKNOWN}"]  # loaded just now: no re-read
    # a BPF program is loaded: kallsyms gains its symbol; a second later fold re-reads
    path.write_text(KALLSYMS + "ffffffffc0401000 t bpf_prog_00112233445566aa_handler\t[bpf]\n")
    ks.loaded_at -= 2
    assert fold_stacks(stack) == ["do_syscall_64"]  # resolved, then stripped as BPF glue
    assert symbols.kernel_symbols() is not ks


def test_cpp_user_symbols_are_demangled(tmp_path):
    cxx = shutil.which("g++")
    if cxx is None or shutil.which("c++filt") is None:
        pytest.skip("needs g++ and c++filt (binutils)")
    from bpfnb.symbols import demangle

    assert demangle(["_ZN3foo3barEv", "main", "_Znotmangled!"]) == ["foo::bar()", "main", "_Znotmangled!"]
    src = tmp_path / "k.cc"
    src.write_text("namespace ns { __attribute__((noinline)) int work(int x) { return x + 1; } }\n"
                   "int main() { return ns::work(1) == 2 ? 0 : 1; }\n")
    out = tmp_path / "k"
    subprocess.run([cxx, "-O1", "-o", str(out), str(src)], check=True)
    syms = read_elf_symbols(str(out))
    raw = [syms.name(i) for i in range(len(syms.start))]
    i = raw.index("_ZN2ns4workEi")
    assert syms.lookup(np.array([syms.start[i]], dtype=np.uint64)).tolist() == ["ns::work(int)"]


def test_symbol_versions_are_dropped_like_bcc():
    from bpfnb.symbols import unversioned

    assert unversioned("clock_nanosleep@@GLIBC_2.17") == "clock_nanosleep"
    assert unversioned("memcpy@GLIBC_2.2.5") == "memcpy"
    assert unversioned("main") == "main"
    assert unversioned("@weird") == "@weird"
