from .heatmap import HeatMap, heatmap  # noqa: E402,F401  (light: matplotlib loads on first draw)
from .hist import hist  # noqa: E402,F401

# Flame graphs load on first use. bpfnb.plot.flamegraph is the module; the
# function is bpfnb.flamegraph (== bpfnb.plot.flamegraph.flamegraph).
_FLAME = {"FlameGraph": "bpfnb.plot.flamegraph", "FlameLayout": "bpfnb.plot.flamelayout"}


def __getattr__(name: str):
    if name in _FLAME:
        import importlib

        return getattr(importlib.import_module(_FLAME[name]), name)
    raise AttributeError(f"module 'bpfnb.plot' has no attribute {name!r}")
