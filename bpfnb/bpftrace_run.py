"""Run the distribution's bpftrace and return a Trace.

    t = run_bpftrace('tracepoint:syscalls:sys_enter_read { @[comm] = count(); }', duration=5)
    t.map("@")

bpftrace runs as ``bpftrace -f json -e PROGRAM``. After ``duration`` seconds
(counted from the moment its probes are attached, which BEGIN marks: see
_with_marker) it gets SIGINT, prints
its maps and exits; without a duration it runs until the program calls
exit() or the caller is interrupted (Ctrl-C, the notebook's interrupt),
which also stops it with SIGINT and returns what it printed: an interrupt
is not an error. The output is parsed by bpfnb.io.bpftrace.read_bpftrace,
with the program to name the map keys.

bpftrace's errors become bpfnb errors carrying its own message: syntax
and semantic errors -> CompileError, unknown probes or failed attachment
-> AttachError (with the closest tracepoint names), not root ->
PrivilegeError, no bpftrace -> SetupError.

Needs root (or CAP_BPF + CAP_PERFMON) and bpftrace >= 0.17.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from functools import lru_cache
from typing import Callable

from .errors import AttachError, BpfnbError, CompileError, PrivilegeError, SetupError, closest
from .io.bpftrace import read_bpftrace
from .trace import Trace

__all__ = ["run_bpftrace", "bpftrace_path", "bpftrace_version", "BPFTRACE"]

BPFTRACE = "/usr/bin/bpftrace"
RESEND = 1.0  # seconds between SIGINTs to a bpftrace that has not exited yet
TRACEFS = ("/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events")
# printed by bpftrace 0.17 on kernels that account BPF memory to cgroups,
# where the limit no longer matters; it is not an error
_MEMLOCK_NOISE = re.compile(r"couldn't set RLIMIT_MEMLOCK")
_ATTACH_WORDS = re.compile(
    r"not found|Error attaching|attach|No probes to attach|is not traceable|No such file|does not exist"
    r"|Could not resolve|resolve symbol",
    re.I,
)


def run_bpftrace(
    program: str,
    duration: float | None = None,
    *,
    timeout: float = 60.0,
    extra_args: tuple[str, ...] | list[str] = (),
    bpftrace: str | None = None,
    on_attached: Callable[[], object] | None = None,
) -> Trace:
    """Run program with bpftrace for duration seconds (None: until it exits).

    timeout: seconds allowed for bpftrace to compile and attach, and again
    for it to print and exit once stopped; past it bpftrace is killed and a
    BpfnbError raised. extra_args go to bpftrace before -e (e.g.
    ["--unsafe"], ["-p", "1234"]). on_attached is called once the probes
    are attached (e.g. to start a workload); the duration counts from the
    same moment.

    Returns a Trace (see bpfnb.io.bpftrace for its frames) whose meta has,
    named as in a capture's meta: source (the program), duration_requested,
    start_wall/end_wall (epoch seconds), stopped_by ("duration", "exit" or
    "interrupt"), host, kernel; and tool "bpftrace", bpftrace_version,
    command, attached_probes, warnings (what bpftrace printed on stderr).
    """
    if duration is not None and duration < 0:
        raise ValueError(f"duration must be >= 0 seconds or None, not {duration!r}")
    exe = bpftrace_path(bpftrace)
    marked, added_probe = _with_marker(program)
    command = [exe, "-f", "json", *extra_args, "-e", marked]
    start_wall = time.time()
    run = _Run(command)
    stopped_by = "exit"
    try:
        if run.wait_attached(timeout):
            attached_at = time.monotonic()
            if on_attached is not None:
                on_attached()
            left = None if duration is None else max(0.0, attached_at + duration - time.monotonic())
            if not run.wait(left):
                stopped_by = "duration"
                run.stop()
        elif run.returncode is None:  # still compiling or attaching
            run.kill()
            raise BpfnbError(
                f"bpftrace did not attach its probes within {timeout:g} s and was stopped; "
                f"pass a larger timeout= if compiling takes longer on this machine."
            )
    except KeyboardInterrupt:
        stopped_by = "interrupt"
        run.stop()
    finally:
        try:
            exited = run.finish(timeout)
        except KeyboardInterrupt:  # a second interrupt: do not leave bpftrace behind
            run.kill()
            raise
        if not exited:
            raise BpfnbError(f"bpftrace did not exit within {timeout:g} s of SIGINT; it was killed.")
    end_wall = time.time()
    blocks = _stderr_blocks(run.stderr_text())
    failed = run.returncode != 0 and not run.stopped_by_us
    if failed or (any(is_error for is_error, _ in blocks) and not run.attached):
        raise _error([text for _, text in blocks], run.returncode)
    # not strict: a command run with -c writes its own output here too
    trace = read_bpftrace("".join(run.stdout_lines), program=program, strict=False)
    if added_probe and trace.meta.get("attached_probes"):
        trace.meta["attached_probes"] -= 1
    trace.meta.update(
        source=program,
        tool="bpftrace",
        bpftrace_version=bpftrace_version(exe),
        command=command,
        duration_requested=duration,
        start_wall=start_wall,
        end_wall=end_wall,
        stopped_by=stopped_by,
        host=socket.gethostname(),
        kernel=platform.release(),
        warnings=[text for _, text in blocks],
    )
    return trace


def bpftrace_path(explicit: str | None = None) -> str:
    """The bpftrace executable to run; SetupError when there is none."""
    candidates = [explicit] if explicit else [BPFTRACE, shutil.which("bpftrace")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    where = explicit or BPFTRACE
    raise SetupError(
        f"bpftrace is not installed ({where} not found). Run `make setup`, or install it with "
        f"`apt-get install bpftrace`."
    )


@lru_cache(maxsize=None)
def bpftrace_version(exe: str = BPFTRACE) -> str:
    """'0.17.0' for the given bpftrace executable ('' if it will not say)."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    match = re.search(r"v?(\d+\.\d+(?:\.\d+)?\S*)", out)
    return match.group(1) if match else out.strip()


# -- knowing when the probes are attached ------------------------------------------
# bpftrace prints "attached_probes" before it attaches, but runs BEGIN after
# every probe is attached: a printf of a marker at the start of BEGIN says
# tracing has begun. bpftrace allows one BEGIN: the user's gets the marker
# as its first statement, else one is appended after the program (so the
# line and column numbers of bpftrace's messages stay the user's).
MARKER = "__bpfnb_attached__"
_BEGIN = re.compile(r"(?<![\w:$@])BEGIN\s*\{")


def _with_marker(program: str) -> tuple[str, bool]:
    """(program with the marker printf, whether a BEGIN probe was added)."""
    statement = f'printf("{MARKER}\\n");'
    match = _BEGIN.search(program)
    if match:
        return program[: match.end()] + f" {statement} " + program[match.end() :], False
    return f"{program}\nBEGIN {{ {statement} }}\n", True


# -- the child process ----------------------------------------------------------
class _Run:
    """bpftrace as a child: stdout and stderr read by threads, SIGINT to stop."""

    def __init__(self, command: list[str]):
        self.stdout_lines: list[str] = []
        self._stderr: list[str] = []
        self._attached = threading.Event()
        self.stopped_by_us = False
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,  # our SIGINT only, not the terminal's
                preexec_fn=_raise_memlock,
            )
        except PermissionError:
            raise PrivilegeError(f"cannot execute {command[0]}; run as root or fix its permissions") from None
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def attached(self) -> bool:
        return self._attached.is_set()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            if MARKER in line and '"printf"' in line:
                self._attached.set()
            else:
                self.stdout_lines.append(line)

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line)

    def wait_attached(self, timeout: float) -> bool:
        """True once probes are attached; False on exit or timeout first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self._attached.wait(min(0.05, left)):
                return True
            if self.proc.poll() is not None:
                self._readers[0].join(1)
                return self.attached
        return False

    def wait(self, seconds: float | None = None) -> bool:
        """True if bpftrace exited within seconds (None: wait for it)."""
        try:
            self.proc.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.stopped_by_us = True
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self, timeout: float) -> bool:
        """Wait for exit and for the readers; False if bpftrace had to be killed.

        bpftrace 0.17 now and then misses a SIGINT (it arrives while its
        event loop is between checking for it and sleeping) and would run
        on: once stopped, it gets SIGINT again every RESEND seconds.
        """
        deadline = time.monotonic() + timeout
        clean = False
        while (left := deadline - time.monotonic()) > 0:
            if self.wait(min(RESEND, left)):
                clean = True
                break
            if self.stopped_by_us:
                self.proc.send_signal(signal.SIGINT)
        if not clean:
            self.kill()
        for reader in self._readers:
            reader.join(timeout)
        return clean

    def stderr_text(self) -> str:
        return "".join(self._stderr)


def _raise_memlock() -> None:
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


# -- errors ----------------------------------------------------------------------
def _stderr_blocks(text: str) -> list[tuple[bool, str]]:
    """bpftrace's stderr as (is_error, message with its quoted source) blocks."""
    lines = [ln for ln in text.splitlines() if not _MEMLOCK_NOISE.search(ln)]
    blocks: list[list[str]] = []
    for line in lines:
        if not blocks or re.search(r"\b(ERROR|WARNING)\b|^stdin:\d", line):
            blocks.append([])
        blocks[-1].append(line)
    joined = ["\n".join(b).rstrip() for b in blocks]
    return [("ERROR" in b, b) for b in joined if b.strip()]


def _error(messages: list[str], returncode) -> BpfnbError:
    text = "\n".join(messages) or f"bpftrace exited with status {returncode} and no message"
    if re.search(r"only supports running as the root user|Operation not permitted|permission", text, re.I):
        return PrivilegeError(f"bpftrace needs root (or CAP_BPF and CAP_PERFMON):\n{text}")
    missing = re.search(r"tracepoint not found: (\S+)", text)
    if missing:
        return AttachError(f"bpftrace could not attach:\n{text}{_tracepoint_hint(missing.group(1))}")
    if _ATTACH_WORDS.search(text) and not re.search(r"syntax error|Undefined|unknown function|unsafe", text, re.I):
        return AttachError(f"bpftrace could not attach:\n{text}{_kprobe_hint(text)}")
    return CompileError(f"bpftrace rejected the program:\n{text}")


def _tracepoint_hint(name: str) -> str:
    """'\nDid you mean: sched:sched_switch?' from tracefs, or ''."""
    category, _, event = name.partition(":")
    for root in TRACEFS:
        try:
            categories = os.listdir(root)
        except OSError:
            continue
        if category not in categories:
            near = closest(category, categories)
            return f"\nNo tracepoint category {category!r}; did you mean: {', '.join(near)}?" if near else ""
        events = [e for e in os.listdir(os.path.join(root, category)) if e not in ("enable", "filter")]
        near = closest(event, events)
        return f"\nDid you mean: {', '.join(category + ':' + e for e in near)}?" if near else ""
    return ""


def _kprobe_hint(text: str) -> str:
    if not re.search(r"k(ret)?probe", text):
        return ""
    roots = [os.path.dirname(root) for root in TRACEFS]
    if not any(os.path.exists(os.path.join(root, "kprobe_events")) for root in roots):
        return "\nThis kernel has no kprobes (no kprobe_events in tracefs): use a tracepoint instead (bpftrace -l 'tracepoint:*')."
    return "\nCheck that the function exists and is traceable: bpftrace -l 'kprobe:NAME'."
