"""Start the controlled workload blocked, release it once probes are attached."""

from __future__ import annotations

import subprocess


class Workload:
    def __init__(self, binary, n_getppid=0, k_reads=0, read_size=4096, m_marker=0, spin_ms=0):
        self.proc = subprocess.Popen(
            [str(binary), str(n_getppid), str(k_reads), str(read_size), str(m_marker), str(spin_ms)],
            stdin=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.proc.stdin.write(b"x")
            self.proc.stdin.close()

    def wait(self, timeout=60) -> int:
        code = self.proc.wait(timeout=timeout)
        assert code == 0, f"workload exited with {code}"
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
