"""Storage tools against I/O the test makes on the root file system:
ext4slower, biosnoop, biolatency, cachestat."""

from __future__ import annotations

import os
import sys

import pytest

import bpfnb
from bpfnb.tools._devices import disk_name, kdev_of_stat, mounts
from tests.kernel.test_tools_support import Released, rootfs_dir  # noqa: F401 (fixture)

pytestmark = pytest.mark.kernel

MIB = 1 << 20
DIRECT_WRITE = """
import mmap, os
fd = os.open(PATH, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
buf = mmap.mmap(-1, SIZE)            # page-aligned, as O_DIRECT needs
buf.write(b"d" * SIZE)
assert os.write(fd, buf) == SIZE
os.fsync(fd)
os.close(fd)
"""


def _root_disk(path) -> str:
    return disk_name(kdev_of_stat(os.stat(path).st_dev))


def test_ext4slower_sees_write_and_fsync(kernel, rootfs_dir):
    if os.stat(rootfs_dir).st_dev not in {os.stat(m["mountpoint"]).st_dev for m in mounts("ext4")}:
        pytest.skip("the root file system is not ext4")
    path = os.path.join(rootfs_dir, "ext4slower.bin")
    size = 300_000
    code = (f"import os\nfd = os.open({path!r}, os.O_WRONLY | os.O_CREAT, 0o600)\n"
            f"assert os.write(fd, b'e' * {size}) == {size}\nos.fsync(fd)\nos.close(fd)\n"
            f"fd = os.open({path!r}, os.O_RDONLY)\nassert len(os.read(fd, 65536)) == 65536\nos.close(fd)\n")
    with Released(code) as w:
        t = bpfnb.tools.ext4slower(duration=1.2, min_ms=0, pid=w.pid, on_attach=w.release)
        w.wait()
    rows = t.events("slow")
    assert set(rows["pid"]) == {w.pid}
    assert set(rows["file"]) == {path}
    writes, syncs, reads = (rows[rows["op"] == op] for op in "WSR")
    assert writes["bytes"].sum() == size
    assert len(syncs) == 1 and syncs.iloc[0]["lat_ms"] > 0
    assert reads["bytes"].tolist() == [65536]
    assert (rows["lat_ms"] > 0).all()
    assert set(rows["disk"]) == {_root_disk(rootfs_dir)}
    assert "syscall" in t.meta["tool"]["measures"]


def test_ext4slower_threshold_filters_fast_calls(kernel, rootfs_dir):
    path = os.path.join(rootfs_dir, "fast.bin")
    code = f"import os\nfd = os.open({path!r}, os.O_WRONLY | os.O_CREAT, 0o600)\nos.write(fd, b'x' * 4096)\nos.close(fd)\n"
    with Released(code) as w:
        t = bpfnb.tools.ext4slower(duration=1, min_ms=1000, pid=w.pid, on_attach=w.release)
        w.wait()
    assert len(t.events()) == 0
    assert "1000" in t.meta["tool"]["note"]     # empty, and it says so


def test_biosnoop_sees_direct_write(kernel, rootfs_dir):
    path = os.path.join(rootfs_dir, "direct.bin")
    code = f"PATH, SIZE = {path!r}, {MIB}\n" + DIRECT_WRITE
    with Released(code) as w:
        t = bpfnb.tools.biosnoop(duration=1.2, pid=w.pid, on_attach=w.release)
        w.wait()
    rows = t.events("ios")
    assert set(rows["pid"]) == {w.pid}
    writes = rows[rows["rwbs"].str.startswith("W")]
    assert writes["bytes"].sum() >= MIB          # the data (plus any metadata/journal writes)
    assert (writes["lat_us"] > 0).all()
    assert set(rows["disk"]) == {_root_disk(rootfs_dir)}
    assert set(rows["comm"]) == {os.path.basename(sys.executable)[:15]}


def test_biolatency_per_disk_histogram(kernel, rootfs_dir):
    path = os.path.join(rootfs_dir, "direct.bin")
    code = f"PATH, SIZE = {path!r}, {MIB}\n" + DIRECT_WRITE
    with Released(code) as w:
        t = bpfnb.tools.biolatency(duration=1.2, pid=w.pid, disks=True, flags=True, on_attach=w.release)
        w.wait()
    hist = t.hist("latency")
    assert list(hist.columns) == ["disk", "flags", "low", "high", "count"]
    assert set(hist["disk"]) == {_root_disk(rootfs_dir)}
    assert hist.loc[hist["flags"].str.startswith("W"), "count"].sum() >= 1
    assert hist["high"].max() > 0 and hist.attrs["unit"] == "usecs"


def test_cachestat_misses_then_hits_reading_a_file_twice(kernel, rootfs_dir):
    path = os.path.join(rootfs_dir, "cached.bin")
    pages = 1024                                 # 4 MiB
    with open(path, "wb") as f:
        f.write(os.urandom(pages * 4096))
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)   # start uncached
    os.close(fd)
    code = (f"import os\nfor _ in range(2):\n    fd = os.open({path!r}, os.O_RDONLY)\n"
            "    while os.read(fd, 131072):\n        pass\n    os.close(fd)\n")
    with Released(code) as w:
        t = bpfnb.tools.cachestat(duration=1.5, interval=0.5, pid=w.pid, on_attach=w.release)
        w.wait()
    stats = t.map("cachestat")
    assert stats["reads"].sum() == 2 * pages     # two full reads, counted from the bytes returned
    assert pages * 0.9 <= stats["misses"].sum() <= pages   # the first read fills the cache
    assert stats["hits"].sum() >= pages          # the second is served from it
    assert (stats["start_s"] == stats["interval"] * 0.5).all()
    assert stats["cached_mb"].notna().any()


def test_biolatency_interval_histograms(kernel, rootfs_dir):
    path = os.path.join(rootfs_dir, "direct.bin")
    code = f"PATH, SIZE = {path!r}, {MIB}\n" + DIRECT_WRITE
    with Released(code) as w:
        t = bpfnb.tools.biolatency(duration=1.3, interval=0.5, pid=w.pid, on_attach=w.release)
        w.wait()
    hist = t.hist()
    assert list(hist.columns) == ["time", "low", "high", "count"]
    assert hist["count"].sum() >= 1 and hist["time"].min() > 0
    assert hist.attrs["interval"] == 0.5
