from .modes import modes  # noqa: E402,F401  (bpfnb.frames.modes(hist_df); pure pandas)
