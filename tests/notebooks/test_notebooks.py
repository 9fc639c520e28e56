"""Every case-study notebook, executed in a real Jupyter kernel (this venv's python).

The notebooks run in a copy of notebooks/ (their saved traces go to the copy's
data/, never to the repository). 01-05 trace for real and need root and bcc;
06 must work without either, so it runs as the user nobody in a kernel where
`import bcc` fails (when the suite runs as root; otherwise as the current user,
bcc still blocked). A second test checks the committed notebooks: every code
cell has outputs, none is an error, and the pictures are there for GitHub.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, kernel_skip_reason

sys.path.insert(0, str(REPO / "scripts"))
from run_notebooks import execute  # noqa: E402

pytestmark = pytest.mark.notebook

NOTEBOOKS = REPO / "notebooks"
NO_ROOT = "06-post-analysis-no-root.ipynb"
NEEDS_GCC = {"04-cpu-flame-graph.ipynb", "05-off-cpu-off-wake.ipynb"}
# pictures each notebook's outputs must carry (image/svg+xml or image/png), at least
PICTURES = {
    "01-sixty-seconds-bpf.ipynb": 1,
    "02-runqueue-latency.ipynb": 3,
    "03-block-io-latency.ipynb": 2,
    "04-cpu-flame-graph.ipynb": 3,
    "05-off-cpu-off-wake.ipynb": 3,
    NO_ROOT: 3,
}
CELL_TIMEOUT = 300


def test_every_notebook_is_listed_here():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(PICTURES)


@pytest.fixture(scope="module")
def workdir():
    """A world-readable copy of notebooks/ (the no-root kernel runs as nobody)."""
    if not os.access(sys.executable, os.X_OK):
        pytest.skip(f"{sys.executable} is not executable by this user: no kernel can start")
    root = Path(tempfile.mkdtemp(prefix="bpfnb-notebooks-"))
    os.chmod(root, 0o755)
    copy = root / "notebooks"
    shutil.copytree(NOTEBOOKS, copy)
    for path in [copy, *copy.rglob("*")]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    yield copy
    shutil.rmtree(root, ignore_errors=True)


def _pictures(nb) -> int:
    return sum(1 for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
               if {"image/svg+xml", "image/png"} & set(out.get("data", {})))


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(n for n in PICTURES if n != NO_ROOT))
def test_tracing_notebook_runs(name, workdir):
    reason = kernel_skip_reason()
    if reason:
        pytest.skip(f"{name} traces for real: {reason}")
    if name in NEEDS_GCC and shutil.which("gcc") is None:
        pytest.skip(f"{name} builds its workload with gcc, which is not installed")
    started = time.monotonic()
    nb = execute(workdir / name, timeout=CELL_TIMEOUT)
    print(f"{name}: {time.monotonic() - started:.1f} s")
    assert _pictures(nb) >= PICTURES[name]
    FINDINGS[name](_text(nb), workdir)


def _found_in_01(text, workdir):
    # execsnoop: PATH search; opensnoop: the missing config; ext4slower: the log's fsyncs
    assert re.search(r"/(usr/)?bin/sh\s+ok", text)
    assert re.search(r"/etc/mysvc/mysvc.conf\s+No such file or directory", text)
    assert re.search(r"S\s+/var/tmp/mysvc-\w+\.log", text)
    assert "@opens" in text and "getaddrinfo" in text


def _found_in_02(text, workdir):
    import bpfnb

    def share_over_1ms(path):
        hist = bpfnb.load(workdir / "data" / path).hist("latency")
        return hist.loc[hist["low"] >= 1024, "count"].sum() / hist["count"].sum()

    assert share_over_1ms("runqlat-busy.bpfnb") > max(0.05, 2 * share_over_1ms("runqlat-idle.bpfnb"))
    heat = bpfnb.load(workdir / "data" / "runqlat-heatmap.bpfnb").hist("runq_us")
    assert heat["time"].nunique() >= 15          # ~25 snapshots of 200 ms in 5 s


def _found_in_03(text, workdir):
    import bpfnb

    ios = bpfnb.load(workdir / "data" / "biosnoop.bpfnb").events("ios")
    mine = ios[ios["comm"] == "blockio"]
    assert {4096, 65536} <= set(mine["bytes"].astype(int)) and (mine["lat_us"] > 0).all()
    issues = bpfnb.load(workdir / "data" / "block-io.bpfnb").events("issues")
    assert (issues["comm"] == "blockio").sum() > 100


def _found_in_04(text, workdir):
    for function in ("hash_block", "compress_block", "parse_request", "handle_request"):
        assert function in text
    assert "[unknown]" not in text.split("widest functions")[1][:400]


def _found_in_05(text, workdir):
    assert re.search(r"(anon_)?pipe_read", text) and "consumer" in text and "producer" in text
    assert re.search(r"consumer\s+producer", text)   # the waker table: producer woke consumer


FINDINGS = {"01-sixty-seconds-bpf.ipynb": _found_in_01, "02-runqueue-latency.ipynb": _found_in_02,
            "03-block-io-latency.ipynb": _found_in_03, "04-cpu-flame-graph.ipynb": _found_in_04,
            "05-off-cpu-off-wake.ipynb": _found_in_05}


def test_post_analysis_runs_without_root_and_without_bcc(workdir):
    unprivileged = os.geteuid() == 0 and shutil.which("setpriv") is not None
    started = time.monotonic()
    nb = execute(workdir / NO_ROOT, timeout=CELL_TIMEOUT, unprivileged=unprivileged, block_bcc=True)
    print(f"{NO_ROOT}: {time.monotonic() - started:.1f} s (as {'nobody' if unprivileged else 'this user'})")
    text = _text(nb)
    assert "bcc not importable (bcc is blocked here" in text
    if unprivileged:
        assert "uid 65534," in text
    assert _pictures(nb) >= PICTURES[NO_ROOT]


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_committed_notebook_has_outputs_and_pictures(name):
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert "".join(code[0]["source"]).startswith("%load_ext bpfnb")
    assert all(c.get("execution_count") for c in code), "run scripts/run_notebooks.py to refresh it"
    errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors[0]["evalue"] if errors else ""
    pictures = sum(1 for c in code for o in c.get("outputs", [])
                   if {"image/svg+xml", "image/png"} & set(o.get("data", {})))
    assert pictures >= PICTURES[name]
