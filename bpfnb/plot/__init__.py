from .heatmap import HeatMap, heatmap  # noqa: E402,F401  (light: matplotlib loads on first draw)
from .hist import hist  # noqa: E402,F401
