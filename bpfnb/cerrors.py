"""Turn clang and verifier output into messages a user can act on.

bcc prints clang diagnostics and verifier logs on file descriptor 2 (from
C++), so Python cannot catch them; `captured_stderr` redirects the fd for
the duration of a compile or load and hands the text back.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

CELL_FILE = "bpf-cell"
_DIAG = re.compile(rf"^{re.escape(CELL_FILE)}:(\d+):(\d+): (error|warning|note|fatal error): (.*)$")


class _Captured:
    text: str = ""


@contextlib.contextmanager
def captured_stderr():
    """Redirect fd 2 to a temporary file; the text is in .text afterwards."""
    box = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield box
        finally:
            try:
                sys.stderr.flush()
            except Exception:
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box.text = tmp.read().decode("utf-8", "replace")


def quiet_stderr():
    """Like captured_stderr, for callers that want the noise dropped."""
    return captured_stderr()


def compile_message(log: str, source: str, defines: dict | None = None) -> str:
    """The clang errors that concern the user's cell, each with its line quoted."""
    lines = source.splitlines()
    out = []
    for raw in log.splitlines():
        m = _DIAG.match(raw.strip())
        if not m or m.group(3) == "warning":
            continue
        lineno, col, level, msg = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        if level == "note" and not out:
            continue
        out.append(f"line {lineno}:{col}: {level}: {msg}")
        if 1 <= lineno <= len(lines):
            code = lines[lineno - 1]
            out.append(f"    {code.expandtabs(8)}")
            out.append("    " + " " * (_visual_col(code, col) - 1) + "^")
    if not out:
        # the error is outside the cell (a helper header, a -D value): keep clang's last lines
        errors = [ln for ln in log.splitlines() if "error" in ln]
        out = errors[-5:] or log.strip().splitlines()[-5:] or ["(clang printed nothing)"]
        if defines:
            out.append(f"defines passed: {defines}")
    return "\n".join(out)


def _visual_col(code: str, col: int) -> int:
    return len(code[: col - 1].expandtabs(8)) + 1


# bookkeeping lines, and BTF line markers without source text (bcc's rewrite
# shifts their line numbers away from the cell's, so they would mislead)
_VERIFIER_NOISE = re.compile(r"^(processed \d+ insns|verification time|stack depth|mark_precise|\s*$|;\s*@ \S+:\d+\s*$)")


def verifier_message(log: str, limit: int = 12) -> str:
    """The last meaningful lines of a verifier log."""
    lines = [ln.rstrip() for ln in log.splitlines() if not _VERIFIER_NOISE.match(ln)]
    lines = [ln for ln in lines if not ln.startswith(("bpf: Failed to load program", "HINT:"))]
    return "\n".join(lines[-limit:])


VERIFIER_HINT = (
    "The kernel's verifier rejected the program. Common causes: reading memory without "
    "bpf_probe_read*(), a pointer from a map lookup used without a NULL check, an unbounded "
    "loop, or a stack buffer over 512 bytes (use a per-CPU array as scratch space)."
)
