"""Shared test fixtures. Kernel tests need root and bcc; on other machines
they skip with the reason printed (pytest -ra shows it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKLOAD_C = Path(__file__).resolve().parent / "workloads" / "workload.c"


def kernel_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "kernel tests load BPF programs and need root (run `sudo make test`)"
    try:
        from bpfnb import system

        system.import_bcc()
    except Exception as exc:  # noqa: BLE001 - any reason bcc is unusable
        return f"bcc unavailable: {exc}"
    if system.tracefs() is None:
        return "tracefs is not mounted (run `make setup`)"
    return None


@pytest.fixture(scope="session")
def kernel():
    reason = kernel_skip_reason()
    if reason:
        pytest.skip(reason)
    return True


@pytest.fixture(scope="session")
def workload_bin(tmp_path_factory) -> Path:
    """The controlled workload (tests/workloads/workload.c), built once."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the test workload (apt-get install gcc)")
    out = tmp_path_factory.mktemp("workload") / "bpfnb_workload"
    subprocess.run([cc, "-O1", "-g", "-fno-inline", "-o", str(out), str(WORKLOAD_C)], check=True)
    return out


@pytest.fixture(scope="session")
def ipython():
    """The process's one InteractiveShell, with bpfnb loaded (tests share it)."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing import globalipapp

    if InteractiveShell.initialized():
        shell = InteractiveShell.instance()
    else:
        globalipapp.start_ipython()  # returns the shell only on its first call
        shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "bpfnb")
    return shell
