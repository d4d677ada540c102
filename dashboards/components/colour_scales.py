"""Colour scales of cells and columns, made from a theme's colours: diverging (delta: selling
red, buying green, fading into the background near 0), sequential (volume) and the three
colours of imbalances (sell, none, buy)."""
from __future__ import annotations

import numpy as np

from .theme import Theme

__all__ = ["blend", "diverging", "sequential", "imbalance_colours", "robust_max"]

STEPS = 128  # colours per half of a scale


def blend(a: str, b: str, share: float) -> str:
    """The colour ``share`` of the way from hex colour ``a`` to ``b``."""
    ca = np.array([int(a[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    cb = np.array([int(b[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    c = np.clip(np.round(ca + (cb - ca) * share), 0, 255).astype(int)
    return "#%02x%02x%02x" % tuple(c)


def _ramp(base: str, colour: str, lo: float, hi: float, n: int) -> list[str]:
    return [blend(base, colour, s) for s in np.linspace(lo, hi, n)]


def diverging(theme: Theme, strength: float = 0.7) -> list[str]:
    """Down colour .. (near) background .. up colour; numbers on it stay legible because the
    strongest colour is ``strength`` of the way from the background."""
    low = _ramp(theme.background, theme.down, strength, 0.06, STEPS)
    high = _ramp(theme.background, theme.up, 0.06, strength, STEPS)
    return low + high


def sequential(theme: Theme, strength: float = 0.75) -> list[str]:
    """Background (little volume) to the accent colour (the most)."""
    return _ramp(theme.background, theme.accent, 0.08, strength, 2 * STEPS)


def imbalance_colours(theme: Theme) -> list[str]:
    """Sell imbalance, none, buy imbalance (for values -1, 0, 1)."""
    return [blend(theme.background, theme.down, 0.65), blend(theme.background, theme.neutral, 0.1),
            blend(theme.background, theme.up, 0.65)]


def robust_max(values, share: float = 0.95) -> float:
    """The ``share`` quantile of ``|values|`` (1 when that is 0): the top of a colour scale, so that
    one outsized cell does not wash out all the others."""
    v = np.abs(np.asarray(values, dtype="float64"))
    v = v[np.isfinite(v)]
    top = float(np.quantile(v, share)) if len(v) else 0.0
    return top if top > 0 else 1.0
