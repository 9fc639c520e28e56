#!/usr/bin/env python3
"""Execute the case-study notebooks in a real Jupyter kernel and save them with outputs.

    .venv/bin/python scripts/run_notebooks.py                  # every notebooks/*.ipynb, in place
    .venv/bin/python scripts/run_notebooks.py notebooks/02-runqueue-latency.ipynb
    .venv/bin/python scripts/run_notebooks.py --check          # execute, do not save

The kernel is this interpreter (sys.executable, i.e. the venv's python),
started from a kernelspec written to a temporary folder, so no kernel has to
be installed. Each notebook runs with its own folder as the working
directory. `execute(..., unprivileged=True, block_bcc=True)` runs the kernel
as the user nobody with `import bcc` failing: what a reader without root or
bcc has (used by the tests for the post-analysis notebook).
The tests (tests/notebooks) import execute() from here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
KERNEL_NAME = "bpfnb-python"
NOBODY = 65534
# what a notebook saved here says about its kernel: any Python 3 with bpfnb opens it
SAVED_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (bpfnb)", "language": "python"}
BLOCK_BCC = 'raise ImportError("bcc is blocked here: this kernel stands for a machine without bcc")\n'


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def execute(path, *, save: bool = False, timeout: float = 600, unprivileged: bool = False,
            block_bcc: bool = False):
    """Run every cell of the notebook at path; returns the executed notebook.

    Raises nbclient's CellExecutionError (with the cell and its traceback) on
    the first cell that fails. save=True writes the outputs back to path.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    if not os.access(sys.executable, os.X_OK):
        # jupyter_client then waits forever for a kernel that could not start
        raise PermissionError(f"cannot start a kernel: {sys.executable} is not executable by uid "
                              f"{os.geteuid()} (is the venv's interpreter under a private home?)")
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="bpfnb-nb-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        km = _kernel_manager(tmp, unprivileged)
        client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=False,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute(env=_kernel_env(tmp, unprivileged, block_bcc))
    nb.metadata["kernelspec"] = dict(SAVED_KERNELSPEC)
    if save:
        nbformat.write(nb, path)
    return nb


def _kernel_manager(tmp: Path, unprivileged: bool):
    spec_dir = tmp / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    if unprivileged:
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    (spec_dir / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "bpfnb (this venv)", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")])
    manager_class = _ReadableConnectionFile if unprivileged else KernelManager
    km = manager_class(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    km.connection_file = str(tmp / "connection.json")
    return km


class _ReadableConnectionFile(KernelManager):
    """The connection file is written 0600 by root; a kernel run as nobody must read it."""

    def write_connection_file(self, **kwargs):
        result = super().write_connection_file(**kwargs)
        os.chmod(self.connection_file, 0o644)
        return result


def _kernel_env(tmp: Path, unprivileged: bool, block_bcc: bool) -> dict:
    env = dict(os.environ)
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    if unprivileged:
        home = tmp / "home"
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        env.update(HOME=str(home), MPLCONFIGDIR=str(home / "mpl"), IPYTHONDIR=str(home / "ipython"),
                   JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    if block_bcc:
        blocker = tmp / "no-bcc"
        (blocker / "bcc").mkdir(parents=True)
        (blocker / "bcc" / "__init__.py").write_text(BLOCK_BCC)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="execute only; do not save the outputs")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.paths] or notebooks()
    for path in paths:
        started = time.monotonic()
        print(f"executing {path} ...", flush=True)
        execute(path, save=not args.check, timeout=args.timeout)
        print(f"  done in {time.monotonic() - started:.1f} s{'' if args.check else ', saved'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
