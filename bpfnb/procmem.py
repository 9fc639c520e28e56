"""Remember the memory maps of traced processes while they live.

User stacks are addresses in a process's memory; once the process exits
its /proc/PID/maps is gone. A capture therefore records the maps of each
process that shows up in a stack-keyed map as soon as it shows up, and
symbolizes at the end.
"""

from __future__ import annotations

import os

import numpy as np

from .symbols import UserSymbols


class ProcessMemory:
    """Remembers the memory maps of the processes a capture sees, while they live.

    Reading a process's maps is quick, but loading the symbols of a big
    program (a browser, anything with LLVM mapped) takes a second or more:
    processes are remembered by a few worker threads, so one slow process
    does not hold up the others, which may exit meanwhile.
    """

    WORKERS = 4

    def __init__(self, usyms: UserSymbols, pid_fields=("pid",)):
        from concurrent.futures import ThreadPoolExecutor

        self.usyms = usyms
        self.pid_fields = pid_fields
        self.seen: set[int] = set()
        self.pending: dict[int, object] = {}
        self.remembered = 0
        self.pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="bpfnb-symbols")
        # this process (bcc and LLVM mapped) waits for the last look
        self.deferred = {os.getpid()}

    def look(self, counts, execs=None, final: bool = False) -> None:
        """Remember the processes new in `counts` (and re-read those in `execs`,
        a map of pids that exec()ed, when the program keeps one).

        final: also this process, and wait until every process is remembered.
        """
        from .maps import read_table

        for pid in self._execs(execs) if execs is not None else ():
            if pid in self.seen:  # a new program in that process: read its maps again
                self._wait(pid)
                self.usyms.forget(pid)
                self.seen.discard(pid)
        keys, values = read_table(counts)
        if len(keys):
            # busiest processes first
            pids = np.concatenate([keys[f].astype(np.int64) for f in self.pid_fields])
            weight = np.tile(np.asarray(values, dtype=np.float64).reshape(len(keys), -1).sum(axis=1),
                             len(self.pid_fields))
            unique, inverse = np.unique(pids, return_inverse=True)
            totals = np.bincount(inverse, weights=weight)
            for pid in unique[np.argsort(-totals, kind="stable")].tolist():
                if final or pid not in self.deferred:
                    self.add(pid)
        if final:
            self.close()

    def add(self, pid: int) -> None:
        if pid > 0 and pid not in self.seen:
            self.seen.add(pid)
            self.pending[pid] = self.pool.submit(self.usyms.remember, pid)

    def _wait(self, pid: int) -> None:
        future = self.pending.pop(pid, None)
        if future is not None and future.exception() is None and future.result():
            self.remembered += 1  # (a process that vanished is simply not remembered)

    def close(self) -> None:
        """Wait for the processes being remembered; stop the workers (idempotent)."""
        for pid in list(self.pending):
            self._wait(pid)
        self.pool.shutdown(wait=True)

    @staticmethod
    def _execs(execs) -> list[int]:
        pids = [int(k.value) for k in list(execs.keys())]
        for pid in pids:
            try:
                del execs[execs.Key(pid)]
            except KeyError:
                pass
        return pids


# -- running ----------------------------------------------------------------------
