"""Kernel device numbers -> disk names and file-system mounts.

Tracepoints record a kernel `dev_t` (major << 20 | minor), not the user-space
encoding that stat() returns; these helpers translate both ways.
"""

from __future__ import annotations

import functools
import os

MINORBITS = 20


def kdev(major: int, minor: int) -> int:
    """The kernel's dev_t for major:minor (as block and ext4 tracepoints give it)."""
    return (int(major) << MINORBITS) | int(minor)


def kdev_of_stat(st_dev: int) -> int:
    """stat().st_dev -> the kernel dev_t tracepoints use."""
    return kdev(os.major(st_dev), os.minor(st_dev))


def split_kdev(dev: int) -> tuple[int, int]:
    dev = int(dev)
    return dev >> MINORBITS, dev & ((1 << MINORBITS) - 1)


@functools.lru_cache(maxsize=256)
def disk_name(dev: int) -> str:
    """'vda' for a block device's kernel dev_t; 'MAJ:MIN' when /sys does not know it."""
    major, minor = split_kdev(dev)
    try:
        with open(f"/sys/dev/block/{major}:{minor}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        pass
    return f"{major}:{minor}"


def mounts(fstype: str | None = None) -> list[dict]:
    """Mounted file systems from /proc/self/mountinfo: mountpoint, fstype, source, kdev."""
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) < 5 or len(rparts) < 2:
            continue
        major, _, minor = parts[2].partition(":")
        entry = {"mountpoint": parts[4], "fstype": rparts[0], "source": rparts[1],
                 "kdev": kdev(int(major), int(minor))}
        if fstype is None or entry["fstype"] == fstype:
            found.append(entry)
    return found
