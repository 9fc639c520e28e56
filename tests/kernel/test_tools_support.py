"""Helpers for the tool tests (no tests here): workloads that wait until the
tool has attached, and a directory on the root file system."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest


class Released:
    """A Python snippet in a child process, blocked until release() (called
    as the tool's on_attach), so its pid is known before anything happens."""

    def __init__(self, code: str, *, prefix=(), cwd=None):
        program = "import sys\nsys.stdin.read(1)\n" + code
        self.proc = subprocess.Popen([*prefix, sys.executable, "-c", program], stdin=subprocess.PIPE,
                                     cwd=cwd)
        self.pid = self.proc.pid

    def release(self) -> None:
        self.proc.stdin.write(b"x")
        self.proc.stdin.close()

    def wait(self, timeout: float = 30) -> None:
        assert self.proc.wait(timeout=timeout) == 0, f"workload exited with {self.proc.returncode}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def rootfs_dir():
    """A fresh directory on the root file system (block and ext4 tests need real disk I/O)."""
    with tempfile.TemporaryDirectory(prefix="bpfnb-tools-", dir="/var/tmp") as path:
        if os.stat(path).st_dev != os.stat("/").st_dev:
            pytest.skip("/var/tmp is not on the root file system")
        yield path
