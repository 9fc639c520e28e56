"""The in-kernel map walk returns exactly what bcc's items() sees."""

from __future__ import annotations

import ctypes as ct
import errno
import platform

import numpy as np
import pytest

import bpfnb
from bpfnb import mapdump
from bpfnb import maps as kmaps
from bpfnb.snapshot import map_frame

pytestmark = pytest.mark.kernel

MAPS = r"""
struct key_t { u32 pid; u32 cpu; u64 addr; };
struct odd_key_t { char name[13]; u8 tag; };      /* 14 bytes: copied 8 + 4 + 2 */
struct odd_val_t { char code[3]; };               /* 3 bytes: copied 2 + 1 */
BPF_HASH(hash, struct key_t, u64, 4096);
BPF_TABLE("lru_hash", struct odd_key_t, struct odd_val_t, lru, 1000);
BPF_ARRAY(array, u64, 777);
BPF_PERCPU_HASH(pchash, u32, u64, 1 << 16);
"""


@pytest.fixture(scope="module")
def walkable(kernel):
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    if (major, minor) < (5, 13):
        pytest.skip(f"kernel {platform.release()} has no bpf_for_each_map_elem (5.13+)")
    return True


def _fill(prog):
    hash_t, lru, array = prog.bpf["hash"], prog.bpf["lru"], prog.bpf["array"]
    for i in range(3000):
        hash_t[hash_t.Key(pid=i, cpu=i % 7, addr=i << 40)] = ct.c_ulong(i * 3)
    for i in range(600):
        key = lru.Key(name=f"proc-{i}".encode(), tag=i % 251)
        lru[key] = lru.Leaf(code=bytes([65 + i % 26, 66, 67 + i % 3]))
    for i in range(777):
        array[ct.c_int(i)] = ct.c_ulong(i * i + 1)


def _dump(table):
    return mapdump.dump(table.map_fd, kmaps.key_dtype(table), kmaps.value_dtype(table), int(table.max_entries))


def test_walk_equals_items_for_hash_lru_and_array(walkable):
    with bpfnb.Program(MAPS) as prog:
        _fill(prog)
        keys, values = _dump(prog.bpf["hash"])
        got = sorted(zip(keys["pid"].tolist(), keys["cpu"].tolist(), keys["addr"].tolist(), values.tolist()))
        assert got == sorted((k.pid, k.cpu, k.addr, v.value) for k, v in prog.bpf["hash"].items())
        assert len(got) == 3000

        keys, values = _dump(prog.bpf["lru"])
        got = sorted(zip(keys["name"].tolist(), keys["tag"].tolist(), values["code"].tolist()))
        assert got == sorted((k.name, k.tag, bytes(v.code)) for k, v in prog.bpf["lru"].items())
        assert len(got) == 600

        keys, values = _dump(prog.bpf["array"])
        assert keys.tolist() == list(range(777))
        assert values.tolist() == [v.value for _, v in prog.bpf["array"].items()]


def test_an_empty_map_gives_no_rows(walkable):
    with bpfnb.Program(MAPS) as prog:
        keys, values = _dump(prog.bpf["hash"])
        assert len(keys) == len(values) == 0


def test_a_destination_without_room_is_an_error_not_a_short_answer(walkable):
    with bpfnb.Program(MAPS) as prog:
        _fill(prog)
        table = prog.bpf["hash"]
        with pytest.raises(OSError) as info:
            mapdump.dump(table.map_fd, kmaps.key_dtype(table), kmaps.value_dtype(table), 2999)
        assert info.value.errno == errno.EOVERFLOW


def _mapped_bpf_maps() -> int:
    with open("/proc/self/maps") as maps:
        return sum("bpf-map" in line for line in maps)


def test_large_maps_take_the_walk_and_leave_no_mapping(walkable, monkeypatch):
    calls = []
    real = mapdump.dump
    monkeypatch.setattr(mapdump, "dump", lambda *a: calls.append(a[3]) or real(*a))
    monkeypatch.setattr(mapdump, "DUMP_MIN_ENTRIES", 1000)
    with bpfnb.Program(MAPS) as prog:
        _fill(prog)
        before = _mapped_bpf_maps()
        frame = map_frame(prog.bpf["hash"]).sort_values("pid").reset_index(drop=True)
        assert calls == [4096]
        assert _mapped_bpf_maps() == before   # the frame owns copies; the mapping is gone
        assert frame["pid"].tolist() == list(range(3000))
        assert (frame["value"].to_numpy() == np.arange(3000) * 3).all()
        lru = map_frame(prog.bpf["lru"])
        assert sorted(lru["name"]) == sorted(f"proc-{i}" for i in range(600))
        # per-CPU maps are read in batches: a walk would see one CPU's values
        pchash = prog.bpf["pchash"]
        pchash[pchash.Key(7)] = pchash.Leaf(*[pchash.sLeaf(1) for _ in range(pchash.total_cpu)])
        assert map_frame(pchash)["value"].tolist() == [pchash.total_cpu]
        assert calls == [4096, 1000]


def test_a_failed_walk_falls_back_to_the_batch_read(walkable, monkeypatch):
    def refuse(*args):
        raise OSError(errno.EINVAL, "loading the map walk: Invalid argument")

    monkeypatch.setattr(mapdump, "dump", refuse)
    monkeypatch.setattr(mapdump, "DUMP_MIN_ENTRIES", 1000)
    with bpfnb.Program(MAPS) as prog:
        _fill(prog)
        frame = map_frame(prog.bpf["hash"])
        assert sorted(frame["pid"].tolist()) == list(range(3000))


def test_hash_maps_are_walked_only_while_no_probe_can_write_them(walkable, monkeypatch):
    calls = []
    real = mapdump.dump
    monkeypatch.setattr(mapdump, "dump", lambda *a: calls.append(a[3]) or real(*a))
    monkeypatch.setattr(mapdump, "DUMP_MIN_ENTRIES", 500)
    source = MAPS + r"""
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    struct key_t key = {.pid = bpf_get_current_pid_tgid() >> 32};
    u64 zero = 0;
    hash.update(&key, &zero);
    return 0;
}
"""
    with bpfnb.Program(source) as prog:
        _fill(prog)
        prog.attach()
        # attached: the hash is read in batches (bucket locks), the array still walked
        assert len(map_frame(prog.bpf["hash"])) >= 3000
        assert len(map_frame(prog.bpf["array"])) == 777
        assert calls == [777]
        prog.detach()
        assert len(map_frame(prog.bpf["hash"])) >= 3000
        assert calls == [777, 4096]
