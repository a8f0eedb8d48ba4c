"""Oscillation period from a sampled signal."""

from __future__ import annotations

import numpy as np


def find_peaks(t, x) -> np.ndarray:
    """Times of the local maxima of ``x(t)``, refined by a parabola through 3 points.

    Plateaus and the end points are not peaks.
    """
    t = np.asarray(t, dtype=float)
    x = np.asarray(x, dtype=float)
    if t.ndim != 1 or t.shape != x.shape:
        raise ValueError(f"t and x must be 1-D of the same length; got {t.shape}, {x.shape}.")
    i = np.nonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:]))[0] + 1
    t0, t1, t2 = t[i - 1], t[i], t[i + 1]
    y0, y1, y2 = x[i - 1], x[i], x[i + 1]
    # Vertex of the parabola through the three points (non-uniform spacing allowed).
    d0, d2 = t0 - t1, t2 - t1
    den = d0 * d2 * (d0 - d2)
    a = (d2 * (y0 - y1) - d0 * (y2 - y1)) / np.where(den == 0, 1, den)
    b = (d0**2 * (y2 - y1) - d2**2 * (y0 - y1)) / np.where(den == 0, 1, den)
    shift = np.where(a != 0, -b / (2 * np.where(a == 0, 1, a)), 0.0)
    return t1 + np.clip(shift, d0, d2)


def period(t, x, *, min_peaks: int = 3, rel_prominence: float = 1e-3) -> float:
    """Mean spacing of successive peaks of ``x(t)``; NaN if it does not oscillate.

    Peaks whose height above the signal's minimum is below ``rel_prominence`` times its
    range are ignored, so a decaying or constant signal gives NaN.
    """
    t = np.asarray(t, dtype=float)
    x = np.asarray(x, dtype=float)
    rng = float(np.ptp(x)) if x.size else 0.0
    if rng <= rel_prominence * max(1.0, float(np.max(np.abs(x)))):
        return float("nan")
    peaks = find_peaks(t, x)
    if len(peaks) < min_peaks:
        return float("nan")
    return float(np.mean(np.diff(peaks)))


def is_sustained(t, x, *, rel_amplitude: float = 1e-3, max_decay: float = 0.1) -> bool:
    """True if ``x(t)`` oscillates with a non-decaying amplitude over the window.

    The peak-to-trough amplitude of the last full cycle must be at least
    ``1 - max_decay`` times that of the first cycle and at least ``rel_amplitude``
    times the signal's magnitude. A damped oscillation (a stable focus) is not
    sustained even though it has peaks.
    """
    t = np.asarray(t, dtype=float)
    x = np.asarray(x, dtype=float)
    scale = max(1e-300, float(np.max(np.abs(x)))) if x.size else 1.0
    peaks = find_peaks(t, x)
    if len(peaks) < 3:
        return False
    first = (t >= peaks[0]) & (t <= peaks[1])
    last = (t >= peaks[-2]) & (t <= peaks[-1])
    a_first = float(np.ptp(x[first]))
    a_last = float(np.ptp(x[last]))
    return a_last >= rel_amplitude * scale and a_last >= (1 - max_decay) * a_first
