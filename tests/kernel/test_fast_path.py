"""The bulk paths agree with bcc's own decoding and lose nothing silently."""

from __future__ import annotations

import ctypes as ct

import numpy as np
import pytest

import bpfnb
from bpfnb.maps import sum_per_cpu
from bpfnb.snapshot import map_frame
from tests.workloads.runner import Workload

pytestmark = pytest.mark.kernel

WIDE = r"""
struct wide_t {
    u8 u8v; s8 s8v; u16 u16v; s16 s16v; u32 u32v; s32 s32v; u64 u64v; s64 s64v;
    char name[13];          /* odd size: padding follows */
    u32 arr[3];
    u64 last;
};
BPF_RINGBUF_OUTPUT(ring, 16);
BPF_PERF_OUTPUT(perf);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u64 id = bpf_get_current_pid_tgid();
    if ((id >> 32) != TARGET) return 0;
    struct wide_t w = {};
    u64 t = bpf_ktime_get_ns();
    w.u8v = t; w.s8v = -(s8)(t & 0x7f); w.u16v = t; w.s16v = -(s16)(t & 0x7fff);
    w.u32v = t; w.s32v = -(s32)(t & 0x7fffffff); w.u64v = t; w.s64v = -(s64)t;
    bpf_get_current_comm(&w.name, sizeof(w.name));
    w.arr[0] = 1; w.arr[1] = t; w.arr[2] = 0xffffffff;
    w.last = ~t;
    ring.ringbuf_output(&w, sizeof(w), 0);
    perf.perf_submit(args, &w, sizeof(w));
    return 0;
}
"""
def drive(run, workload):
    """Release the workload and consume while it runs, as a capture loop does."""
    workload.release()
    while workload.proc.poll() is None:
        run.poll(10)
    workload.wait()


FIELDS = ["u8v", "s8v", "u16v", "s16v", "u32v", "s32v", "u64v", "s64v", "last"]


def _bcc_value(value):
    """bcc maps s8 to c_char (a 1-byte bytes object); read it as the signed int it is."""
    if isinstance(value, bytes):
        return int(np.frombuffer(value.ljust(1, b"\0"), dtype=np.int8)[0])
    return value


def test_bulk_decoder_matches_bcc_event(kernel, workload_bin):
    with Workload(workload_bin, n_getppid=500) as w:
        with bpfnb.Program(WIDE, defines={"TARGET": w.pid}) as prog:
            with prog.run() as run:
                w.release()
                w.wait()
            t = run.snapshot()
            raw = run.sinks["ring"].records()
            table = prog.bpf["perf"]   # bcc's decoder for the same struct
            decoded = []
            for record in raw:
                buf = ct.create_string_buffer(bytes(record.tobytes()), raw.dtype.itemsize)
                event = table.event(buf)  # a view into buf: copy the fields while buf lives
                decoded.append({name: _bcc_value(getattr(event, name)) for name in FIELDS}
                               | {"name": event.name.decode(), "arr": list(event.arr)})
    ring, perf = t.events("ring"), t.events("perf")
    assert len(ring) == len(perf) == 500
    assert t.lost == {"ring": 0, "perf": 0}
    for i, event in enumerate(decoded):
        for name in FIELDS:
            assert ring[name].iloc[i] == event[name], (i, name)
        assert ring["name"].iloc[i] == event["name"]
        assert list(ring["arr"].iloc[i]) == event["arr"]
    # the ring-buffer path and the perf path decode to the same frame
    for name in FIELDS + ["name"]:
        assert ring[name].tolist() == perf[name].tolist()
        assert ring[name].dtype == perf[name].dtype
    assert ring["s8v"].dtype == np.int8 and ring["u16v"].dtype == np.uint16


def test_wraparound_keeps_order_and_accounts_for_every_event(kernel, workload_bin):
    n = 200_000  # 24-byte records through a 64 KiB ring: about 75 times around
    source = r"""
    struct ev_t { u64 seq; u32 pid; };
    BPF_RINGBUF_OUTPUT(ring, 16);
    BPF_ARRAY(next_seq, u64, 1);
    TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
        if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
        int zero = 0;
        u64 *seq = next_seq.lookup(&zero);
        if (!seq) return 0;
        struct ev_t e = {.seq = __sync_fetch_and_add(seq, 1), .pid = TARGET};
        ring.ringbuf_output(&e, sizeof(e), 0);
        return 0;
    }
    """
    with Workload(workload_bin, n_getppid=n) as w:
        with bpfnb.Program(source, defines={"TARGET": w.pid}) as prog:
            with prog.run() as run:
                drive(run, w)
            t = run.snapshot()
    seqs = t.events("ring")["seq"].to_numpy()
    assert (np.diff(seqs.astype(np.int64)) > 0).all(), "no duplicates, arrival order kept"
    assert seqs.max(initial=0) < n
    missing = n - len(seqs)
    assert missing == t.lost["ring"], (missing, t.lost)
    assert len(seqs) > 65536 // 24 * 10, "many laps of the ring were read"


def test_variable_size_records_take_the_slow_path(kernel, workload_bin):
    source = r"""
    struct big_t { u64 seq; u64 pad[6]; };
    BPF_RINGBUF_OUTPUT(ring, 256);         /* 1 MiB: room for the whole burst */
    BPF_ARRAY(count, u64, 1);
    TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
        if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
        int zero = 0;
        u64 *c = count.lookup(&zero);
        if (!c) return 0;
        u64 seq = __sync_fetch_and_add(c, 1);
        struct big_t b = {.seq = seq};
        b.pad[5] = 77;
        if (seq % 3 == 0)
            ring.ringbuf_output(&b, 8, 0);             /* only the seq: a short record */
        else if (seq % 3 == 1) {
            struct big_t *r = ring.ringbuf_reserve(sizeof(struct big_t));
            if (!r) return 0;
            r->seq = seq; r->pad[5] = 77;
            ring.ringbuf_discard(r, 0);               /* discarded: never an event */
        } else
            ring.ringbuf_output(&b, sizeof(b), 0);
        return 0;
    }
    """
    with Workload(workload_bin, n_getppid=3000) as w:
        with bpfnb.Program(source, defines={"TARGET": w.pid}) as prog:
            with prog.run() as run:
                drive(run, w)
            t = run.snapshot()
    events = t.events("ring")
    assert t.lost["ring"] == 0
    assert sorted(events["seq"] % 3) == [0] * 1000 + [2] * 1000
    short = events[events["seq"] % 3 == 0]
    full = events[events["seq"] % 3 == 2]
    assert all(arr[5] == 0 for arr in short["pad"]) and all(arr[5] == 77 for arr in full["pad"])



PERF_SEQ = r"""
struct ev_t { u64 seq; u32 cpu; u32 pid; u64 pad[5]; };
BPF_PERF_OUTPUT(events);
BPF_ARRAY(next_seq, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
    int zero = 0;
    u64 *seq = next_seq.lookup(&zero);
    if (!seq) return 0;
    struct ev_t e = {.seq = __sync_fetch_and_add(seq, 1), .cpu = bpf_get_smp_processor_id(), .pid = TARGET};
    e.pad[4] = 77;
    if (e.seq % 5 == 4)
        events.perf_submit(args, &e, 8);            /* only the seq: a short sample */
    else
        events.perf_submit(args, &e, sizeof(e));
    return 0;
}
"""


def test_perf_buffers_wrap_many_times_without_duplicates(kernel, workload_bin):
    n = 200_000  # 72-byte samples through 4-page buffers: dozens of laps per CPU
    with Workload(workload_bin, n_getppid=n) as w:
        with bpfnb.Program(PERF_SEQ, defines={"TARGET": w.pid}) as prog:
            with prog.run(buffer_pages=4) as run:
                drive(run, w)
                from_lost_records = run.sinks["events"].lost
            t = run.snapshot()
    events = t.events("events")
    seqs = events["seq"].to_numpy()
    assert len(np.unique(seqs)) == len(seqs), "no sample read twice"
    assert seqs.max(initial=0) < n
    assert len(seqs) + t.lost["events"] == n, (len(seqs), t.lost)
    assert from_lost_records <= t.lost["events"]  # the kernel's LOST records never exceed the count
    assert len(seqs) > 4 * 4096 // 80 * 20, "many laps of the buffers were read"
    full = events[events["seq"] % 5 != 4]
    assert (full["pid"] == w.pid).all() and (full["pad"].map(lambda a: a[4]) == 77).all()
    for _, run_of_cpu in full.groupby("cpu"):      # each CPU's samples arrive in order
        assert (np.diff(run_of_cpu["seq"].to_numpy().astype(np.int64)) > 0).all()
    # short samples: the seq is there, the rest of the struct zero
    short = events[events["seq"] % 5 == 4]
    assert len(short) > 0
    assert (short["pid"] == 0).all() and (short["pad"].map(lambda a: a[4]) == 0).all()


def test_a_quiet_perf_buffer_is_read_at_the_poll_timeout(kernel, workload_bin):
    """Fewer samples than the wake-up count still arrive, within one poll."""
    with Workload(workload_bin, n_getppid=3) as w:
        with bpfnb.Program(PERF_SEQ, defines={"TARGET": w.pid}) as prog:
            with prog.run() as run:
                w.release()
                w.wait()
                run.poll(50)
                assert run.sinks["events"].count == 3


MAPS = r"""
struct key_t { u32 pid; u16 cpu; u64 slot; };
struct val_t { u64 count; s32 last; };
BPF_HASH(hash, struct key_t, struct val_t, 4096);
BPF_ARRAY(array, u64, 64);
BPF_PERCPU_HASH(pchash, u32, u64, 1024);
BPF_PERCPU_ARRAY(parray, struct val_t, 8);
"""


def _fill(prog):
    hash_t, array_t = prog.bpf["hash"], prog.bpf["array"]
    for i in range(3000):
        key = hash_t.Key(pid=i, cpu=i % 7, slot=i * 3)
        hash_t[key] = hash_t.Leaf(count=i * 10, last=-i)
    for i in range(64):
        array_t[ct.c_int(i)] = ct.c_ulong(i * i)
    pchash, parray = prog.bpf["pchash"], prog.bpf["parray"]
    ncpu = pchash.total_cpu
    for i in range(500):
        pchash[pchash.Key(i)] = pchash.Leaf(*[pchash.sLeaf(i + cpu) for cpu in range(ncpu)])
    for i in range(8):
        parray[ct.c_int(i)] = parray.Leaf(*[parray.sLeaf(count=i * 100 + cpu, last=-cpu) for cpu in range(ncpu)])
    return ncpu


def test_batch_snapshot_equals_items(kernel):
    with bpfnb.Program(MAPS) as prog:
        ncpu = _fill(prog)
        hash_frame = map_frame(prog.bpf["hash"]).sort_values("pid").reset_index(drop=True)
        expected = sorted((k.pid, k.cpu, k.slot, v.count, v.last) for k, v in prog.bpf["hash"].items())
        assert list(hash_frame.itertuples(index=False, name=None)) == expected
        assert list(hash_frame.columns) == ["pid", "cpu", "slot", "count", "last"]
        array_frame = map_frame(prog.bpf["array"])
        assert array_frame["value"].tolist() == [v.value for _, v in prog.bpf["array"].items()]
        pc = map_frame(prog.bpf["pchash"]).sort_values("key")
        expected_pc = sorted((k.value, sum(x.value if hasattr(x, "value") else x for x in v))
                             for k, v in prog.bpf["pchash"].items())
        assert list(pc.itertuples(index=False, name=None)) == expected_pc
        pa = map_frame(prog.bpf["parray"])
        assert pa["count"].tolist() == [sum(i * 100 + c for c in range(ncpu)) for i in range(8)]
        assert pa["last"].tolist() == [sum(-c for c in range(ncpu))] * 8
        per_cpu = map_frame(prog.bpf["parray"], per_cpu=True)
        assert len(per_cpu) == 8 * ncpu and list(per_cpu.columns) == ["key", "cpu", "count", "last"]
        row = per_cpu[(per_cpu["key"] == 3) & (per_cpu["cpu"] == ncpu - 1)]
        assert row["count"].tolist() == [300 + ncpu - 1]


def test_iteration_fallback_equals_batch(kernel):
    from bpfnb import maps as kmaps

    with bpfnb.Program(MAPS) as prog:
        _fill(prog)
        for name in ("hash", "array", "pchash", "parray"):
            table = prog.bpf[name]
            kd, vd = kmaps.key_dtype(table), kmaps.value_dtype(table)
            ncpu = kmaps.possible_cpus() if kmaps.table_type(table) in kmaps.PER_CPU else 0
            k1, v1 = kmaps._read_batch(table, kd, vd, ncpu)
            k2, v2 = kmaps._read_iter(table, kd, vd, ncpu)
            b1 = sorted(zip(k1.tolist(), sum_per_cpu(v1).tolist()))
            b2 = sorted(zip(k2.tolist(), sum_per_cpu(v2).tolist()))
            assert b1 == b2, name


def test_two_thread_read_of_a_large_hash_equals_one_walk(kernel):
    from bpfnb import maps as kmaps

    n = 200_000
    source = "struct k_t { u32 a; u32 b; u64 c; };\nBPF_HASH(big, struct k_t, u64, 262144);"
    with bpfnb.Program(source) as prog:
        table = prog.bpf["big"]
        keys = (table.Key * n)()
        values = (table.Leaf * n)()
        raw = np.frombuffer(keys, dtype=[("a", "u4"), ("b", "u4"), ("c", "u8")])
        raw["a"], raw["b"], raw["c"] = np.arange(n), np.arange(n) % 13, np.arange(n) * 7
        np.frombuffer(values, dtype="u8")[:] = np.arange(n)
        table.items_update_batch(keys, values)
        kd, vd = kmaps.key_dtype(table), kmaps.value_dtype(table)
        row = kmaps._value_row_dtype(vd, 0)
        k_seq, v_seq = kmaps._read_range(table.map_fd, kd, row, int(table.max_entries))
        k_par, v_par = kmaps._read_hash_halves(table.map_fd, kd, row, int(table.max_entries))
        frame = map_frame(table)
    assert len(k_par) == len(k_seq) == n
    assert sorted(zip(k_par["a"].tolist(), v_par.tolist())) == sorted(zip(k_seq["a"].tolist(), v_seq.tolist()))
    assert sorted(frame["a"].tolist()) == list(range(n))
    assert (frame.sort_values("a")["value"].to_numpy() == np.arange(n)).all()


def test_every_ring_buffer_is_read_not_just_the_first(kernel, workload_bin):
    source = r"""
    struct ev_t { u64 seq; };
    BPF_RINGBUF_OUTPUT(quiet, 16);
    BPF_RINGBUF_OUTPUT(busy, 16);
    BPF_ARRAY(count, u64, 1);
    TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
        if ((bpf_get_current_pid_tgid() >> 32) != TARGET) return 0;
        int zero = 0;
        u64 *c = count.lookup(&zero);
        if (!c) return 0;
        struct ev_t e = {.seq = __sync_fetch_and_add(c, 1)};
        busy.ringbuf_output(&e, sizeof(e), 0);   /* nothing ever goes to `quiet` */
        return 0;
    }
    """
    n = 50_000  # 16-byte records through a 64 KiB ring: only a reader that keeps up gets them all
    with Workload(workload_bin, n_getppid=n) as w:
        with bpfnb.Program(source, defines={"TARGET": w.pid}) as prog:
            with prog.run() as run:
                drive(run, w)
            t = run.snapshot()
    assert len(t.events("quiet")) == 0
    assert len(t.events("busy")) + t.lost["busy"] == n
    assert len(t.events("busy")) > 65536 // 16 * 2
