"""Errors a user can cause. Each message names the thing and the fix.

In a notebook these are shown without a traceback: the magics re-raise them
as IPython UsageErrors (see bpfnb.magics).
"""

from __future__ import annotations

import difflib


class BpfnbError(Exception):
    """Base of every error bpfnb raises on purpose."""


class SetupError(BpfnbError):
    """Something missing on this machine: bcc, tracefs, headers."""


class PrivilegeError(BpfnbError, PermissionError):
    """Not allowed to load BPF programs."""


class CompileError(BpfnbError):
    """The BPF C did not compile."""


class VerifierError(BpfnbError):
    """The kernel's verifier rejected the program."""


class AttachError(BpfnbError):
    """A probe could not be attached (unknown tracepoint, symbol, ...)."""


class AttachSpecError(BpfnbError, ValueError):
    """An attach spec string could not be parsed."""


class OutputError(BpfnbError, KeyError):
    """A Trace has no output of that name or kind."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TraceFileError(BpfnbError):
    """A saved trace is damaged, truncated, foreign or too new."""


def closest(name: str, candidates, n: int = 3) -> list[str]:
    """The names in candidates closest to name, best first."""
    return difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=n, cutoff=0.6)


def did_you_mean(name: str, candidates) -> str:
    """' Did you mean: a, b?' or '' when nothing is close."""
    near = closest(name, candidates)
    return f" Did you mean: {', '.join(near)}?" if near else ""
