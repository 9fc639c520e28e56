"""What the picture objects share: text for a terminal, SVG for a notebook, a lazy matplotlib Axes.

A subclass defines text(), to_svg() and plot(ax=None); matplotlib is
imported only by plot(), so .ax is the first use that needs it.
"""

from __future__ import annotations


class Picture:
    """Mixin: _repr_svg_ and _repr_pretty_ from to_svg() and text(); .ax drawn once by plot()."""

    _ax = None  # the Axes .ax drew, kept so .ax and save(".png") reuse one figure

    def _repr_svg_(self) -> str:
        return self.to_svg()

    def _repr_pretty_(self, p, cycle):
        p.text(repr(self) if cycle else self.text())

    @property
    def ax(self):
        """A matplotlib Axes with this picture (drawn on first use)."""
        if self._ax is None:
            self._ax = self.plot()
        return self._ax
