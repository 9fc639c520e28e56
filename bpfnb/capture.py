"""The capture loop: attach, poll buffers until the end, detach, return a Trace.

A capture ends when its duration passes, when it is interrupted (Ctrl-C,
the notebook's interrupt, a live view's Stop button) or when an output
reaches the event limit. In every case the probes are detached, the
buffers drained, and what was captured comes back: an interrupt is not an
error. `trace.meta["stopped_by"]` says which of these ended it.
"""

from __future__ import annotations

import contextlib
import platform
import select
import signal
import socket
import threading
import time

import pandas as pd

from . import system
from .outputs import perf_pages_for, sink_for
from .perfbuf import PerfOutputReader
from .ringbuf import RingBufferReader
from .snapshot import build_trace, hist_frame
from .trace import Trace

DEFAULT_EVENT_LIMIT = 10_000_000
POLL_MS = 100
REMEMBER_EVERY_S = 0.25       # how often to look for new processes in stack maps
BATCH_TARGET = 4096          # records per buffer read worth a syscall-free copy
BATCH_PAUSE_S = 0.002        # pause after a smaller read, so the next one is larger
# bcc wakes the reader for every perf sample; in a VM each wake-up costs the
# traced process an interrupt (getppid() traced at 0.14 M calls/s instead of
# 1.2 M here). Perf buffers wake us every PERF_WAKEUP_EVENTS samples instead,
# and every poll reads them all, so a quiet buffer waits at most one timeout.
PERF_WAKEUP_EVENTS = 256


class Run:
    """An attached program; use as a context manager (detaches on exit, always)."""

    def __init__(self, program, duration=None, *, buffer_pages: int | None = None,
                 event_limit: int | None = DEFAULT_EVENT_LIMIT, per_cpu: bool = False,
                 interval: float | None = None, hist_interval: bool = False,
                 on_interval=None, should_stop=None):
        self.program = program
        self.duration = duration
        self.buffer_pages = buffer_pages
        self.event_limit = event_limit
        self.per_cpu = per_cpu
        self.interval = interval
        self.hist_interval = hist_interval and interval is not None
        self.on_interval = on_interval        # callable(run, elapsed_s)
        self.should_stop = should_stop        # callable() -> bool (Stop buttons)
        self.sinks: dict = {}
        self.readers: dict = {}           # name -> RingBufferReader or PerfOutputReader (bulk numpy)
        self._wakeups = select.epoll()    # every ring's map fd and perf buffer's fd, to wait on all at once
        self.stopped_by: str | None = None
        self._hist_parts: dict[str, list[pd.DataFrame]] = {}
        self._hist_last: dict[str, pd.DataFrame] = {}
        self._process_memory: dict = {}   # stack map name -> ProcessMemory
        self._last_look = 0.0
        self.usyms = None                 # UserSymbols shared by those, when the program has stacks
        self._attached = False
        self.start_wall = self.end_wall = None
        self.start_mono = None

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> "Run":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        b = self.program.bpf
        try:
            for name, kind in self.program.outputs.events.items():
                sink = sink_for(b, name, limit=self.event_limit)
                table = b[name]
                self.sinks[name] = sink
                if kind == "perf":
                    pages = self.buffer_pages or perf_pages_for(sink.itemsize)
                    reader = PerfOutputReader(table, sink.dtype, pages, wakeup_events=PERF_WAKEUP_EVENTS,
                                              lost_callback=sink.lost_callback)
                    self.readers[name] = reader
                    for fd in reader.fds:
                        self._wakeups.register(fd, select.EPOLLIN)
                else:
                    self.readers[name] = RingBufferReader(table.map_fd, int(table.max_entries), sink.dtype)
                    self._wakeups.register(table.map_fd, select.EPOLLIN)
            self.start_wall = time.time()
            self.start_mono = time.monotonic()
            self._mono_to_wall_ns = time.time_ns() - time.monotonic_ns()
            self._watch_processes()
            self.program.attach()
            self._attached = True
        except BaseException:
            self.program.detach()
            for reader in self.readers.values():
                reader.close()
            self.readers.clear()
            raise

    def close(self) -> None:
        """Detach probes and drain what is still buffered (idempotent)."""
        if not self._attached:
            return
        with _sigint_deferred():
            self.program.detach()
            self._attached = False
            self.end_wall = time.time()
            self._drain()
            self._remember_processes(final=True)

    # -- user stacks: remember processes while they live ----------------------------
    def _watch_processes(self) -> None:
        """For maps keyed by user stack ids and a pid, remember each new process's maps."""
        from .maps import key_dtype
        from .procmem import ProcessMemory
        from .snapshot import stack_columns
        from .symbols import UserSymbols

        b, outputs = self.program.bpf, self.program.outputs
        if not outputs.stack_tables:
            return
        self.usyms = UserSymbols()
        for name in outputs.maps:
            fields = key_dtype(b[name]).names or ()
            user_col, _ = stack_columns(fields)
            pid_fields = [f for f in ("tgid", "pid") if f in fields][:1]
            if user_col and pid_fields:
                self._process_memory[name] = ProcessMemory(self.usyms, tuple(pid_fields))
        if self.program.pid is not None and self._process_memory:
            next(iter(self._process_memory.values())).add(int(self.program.pid))

    def _remember_processes(self, final: bool = False) -> None:
        now = time.monotonic()
        if not self._process_memory or (not final and now - self._last_look < REMEMBER_EVERY_S):
            return
        self._last_look = now
        for name, memory in self._process_memory.items():
            memory.look(self.program.bpf[name], final=final)

    # -- polling ---------------------------------------------------------------------
    def poll(self, timeout_ms: int = POLL_MS) -> None:
        if self.readers:
            # wake on any buffer's data (or the timeout): a perf buffer wakes us only
            # every PERF_WAKEUP_EVENTS samples, so every buffer is read either way
            if not any(reader.pending_bytes() for reader in self.readers.values()):
                self._wakeups.poll(timeout_ms / 1000)
            self._read_buffers()
        else:
            time.sleep(timeout_ms / 1000)
        self._remember_processes()

    def _read_buffers(self) -> int:
        got = 0
        for name, reader in self.readers.items():
            sink = self.sinks[name]
            for block in reader.read():
                sink.add_batch(block)
                got += len(block)
        if 0 < got < BATCH_TARGET:
            time.sleep(BATCH_PAUSE_S)  # let records accumulate: fewer, larger copies
        return got

    def _drain(self) -> None:
        for name, reader in self.readers.items():
            for block in reader.read():
                self.sinks[name].add_batch(block)
            reader.close()
        self.readers.clear()
        self._wakeups.close()

    def elapsed(self) -> float:
        return 0.0 if self.start_mono is None else time.monotonic() - self.start_mono

    def wait(self) -> str:
        """Poll until the duration passes, an interrupt, a Stop or the event limit."""
        next_tick = self.interval
        try:
            while True:
                self.poll(POLL_MS if self.duration is None else
                          max(1, min(POLL_MS, int((self.duration - self.elapsed()) * 1000))))
                elapsed = self.elapsed()
                if next_tick is not None and elapsed >= next_tick:
                    self.tick(elapsed)
                    next_tick += self.interval
                if self.duration is not None and elapsed >= self.duration:
                    self.stopped_by = "duration"
                elif any(s.full for s in self.sinks.values()):
                    self.stopped_by = "event limit"
                elif self.should_stop is not None and self.should_stop():
                    self.stopped_by = "stop button"
                if self.stopped_by:
                    return self.stopped_by
        except KeyboardInterrupt:
            self.stopped_by = "interrupt"
            return self.stopped_by

    def run_to_end(self, on_attach=None) -> str | None:
        """Attach, call on_attach(), wait for the end, detach; returns why it ended.

        The duration counts from on_attach()'s return: a fleet worker waits
        there for the common start, and its window must not shrink by that
        wait. An interrupt while attaching or in on_attach() still detaches
        and keeps what was captured, like one during the wait.
        """
        try:
            with self:
                if on_attach is not None:
                    on_attach()
                    if self.duration is not None:
                        self.duration += self.elapsed()
                self.wait()
        except KeyboardInterrupt:
            self.stopped_by = self.stopped_by or "interrupt"
        return self.stopped_by

    def tick(self, elapsed: float) -> None:
        """Once per interval: snapshot-and-clear histograms, then notify."""
        if self.hist_interval:
            self._take_hist_interval(elapsed)
        if self.on_interval is not None:
            self.on_interval(self, elapsed)

    def _take_hist_interval(self, elapsed: float) -> None:
        """Each interval's counts = this cumulative snapshot minus the last one.

        The maps are never cleared: clearing races with the kernel (an
        increment between the read and the clear would vanish), differencing
        cannot lose one.
        """
        for name, frame in self._interval_parts(elapsed).items():
            self._hist_parts.setdefault(name, []).append(frame)

    def _interval_parts(self, elapsed: float) -> dict[str, pd.DataFrame]:
        from .frames.hist import diff

        parts = {}
        for name, hist_type in self.program.outputs.hists.items():
            cumulative = hist_frame(self.program.bpf[name], hist_type)
            previous = self._hist_last.get(name)
            part = cumulative if previous is None else diff(cumulative, previous)
            self._hist_last[name] = cumulative
            part = part.copy()
            part.insert(0, "time", float(round(elapsed, 6)))
            parts[name] = part
        return parts

    def _hist_series(self) -> dict[str, pd.DataFrame] | None:
        if not self.hist_interval:
            return None
        tail = {} if self._attached else self._interval_parts(self.elapsed())  # since the last tick
        series = {}
        for name, hist_type in self.program.outputs.hists.items():
            parts = [p for p in self._hist_parts.get(name, []) + [tail.get(name)] if p is not None and len(p)]
            frame = (pd.concat(parts, ignore_index=True) if parts
                     else hist_frame(self.program.bpf[name], hist_type).assign(time=0.0).iloc[:0])
            frame.attrs.update(hist_type=hist_type, step=1, interval=self.interval)
            series[name] = frame
        return series

    # -- results ---------------------------------------------------------------------
    def snapshot(self) -> Trace:
        """A Trace of what is there now (callable while attached or after)."""
        if self.program.bpf is None:
            raise RuntimeError("the program is closed; take the snapshot before Program.close()")
        lost_kernel = self.program.lost_in_kernel()
        meta = self.meta()
        over = {n: s.over_limit for n, s in self.sinks.items() if s.over_limit}
        if over:
            meta["over_limit"] = over
        return build_trace(self.program, self.sinks, per_cpu=self.per_cpu, usyms=self.usyms,
                           hist_series=self._hist_series(), lost_extra=lost_kernel, meta=meta)

    def meta(self) -> dict:
        meta = self.program.meta()
        meta.update(
            start_wall=self.start_wall,
            end_wall=self.end_wall if self.end_wall is not None else time.time(),
            duration_requested=self.duration,
            stopped_by=self.stopped_by,
            monotonic_to_wall_ns=getattr(self, "_mono_to_wall_ns", None),
            event_limit=self.event_limit,
            interval=self.interval,
            host=socket.gethostname(),
            kernel=platform.release(),
            bcc_version=system.bcc_version(),
        )
        return meta


@contextlib.contextmanager
def _sigint_deferred():
    """Hold Ctrl-C while detaching, so cleanup itself cannot be interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *a: pending.append(a))
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending and callable(previous):
            previous(*pending[0])


def capture(source: str, duration: float | None = 5, *, defines: dict | None = None,
            attach=None, pid: int | None = None, live: bool = False, interval: float | None = None,
            hist_interval: bool = False, event_limit: int | None = DEFAULT_EVENT_LIMIT,
            buffer_pages: int | None = None, per_cpu: bool = False, cflags=(),
            hist_types: dict | None = None, on_interval=None, view=None,
            spill_dir=None, memory_limit: int | None = None) -> Trace:
    """Compile, attach, capture for `duration` seconds (None: until interrupted), detach.

    Returns a Trace; see DESIGN.md. With live=True a live view (histogram or
    heat map, elapsed time, Stop button; text outside notebooks) updates
    every `interval` seconds (default 1). With hist_interval=True each
    histogram is read every interval and differenced against the previous
    read, so `trace.hist(name)` has a `time` column with per-interval counts
    (an in-kernel heat map). With spill_dir=PATH, events are
    written to Parquet parts under PATH whenever memory holds more than
    memory_limit bytes (bpfnb.spill; pass event_limit=None for long runs).
    """
    from .program import Program

    if live and interval is None:
        interval = 1.0
    if hist_interval and interval is None:
        interval = 1.0
    with Program(source, defines=defines, attach=attach, pid=pid, cflags=cflags,
                 hist_types=hist_types) as program:
        if live and view is None:
            from .plot.live import LiveView

            view = LiveView(kind="heatmap" if hist_interval else "hist",
                            title=f"bpfnb capture ({', '.join(program.outputs.hists) or 'events'})")
        callbacks = [cb for cb in (on_interval, _view_updater(view)) if cb is not None]
        run = Run(program, duration, buffer_pages=buffer_pages, event_limit=event_limit,
                  per_cpu=per_cpu, interval=interval, hist_interval=hist_interval,
                  on_interval=(lambda r, t: [cb(r, t) for cb in callbacks]) if callbacks else None,
                  should_stop=(lambda: bool(getattr(view, "stop_requested", False))) if view else None)
        spill = _spill_for(spill_dir, memory_limit)  # spill-to-Parquet mode (bpfnb.spill, issue 8)
        run.run_to_end(on_attach=(lambda: spill.watch(run.sinks)) if spill is not None else None)
        if spill is not None:
            spill.flush(run.sinks)  # before the snapshot: the parts hold the events
        trace = run.snapshot()
        if spill is not None:
            spill.finish(trace)
        if view is not None:
            with contextlib.suppress(Exception):
                view.update(trace, run.elapsed())
                view.close()
        return trace


def _spill_for(spill_dir, memory_limit):
    if spill_dir is None:
        return None
    from .spill import DEFAULT_MEMORY_LIMIT, Spill

    return Spill(spill_dir, memory_limit if memory_limit is not None else DEFAULT_MEMORY_LIMIT)


def _view_updater(view):
    if view is None:
        return None
    return lambda run, elapsed: view.update(run.snapshot(), elapsed)
