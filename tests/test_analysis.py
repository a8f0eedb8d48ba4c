import numpy as np

import jaxcell as jc


def test_period_of_sine_and_constant():
    t = np.linspace(0, 50, 1001)
    np.testing.assert_allclose(jc.analysis.period(t, np.sin(2 * np.pi * t / 3.7)), 3.7,
                               rtol=1e-5)
    assert np.isnan(jc.analysis.period(t, np.ones_like(t)))
    peaks = jc.analysis.find_peaks(t, np.cos(2 * np.pi * t / 5.0))
    np.testing.assert_allclose(peaks, 5.0 * np.arange(1, 10), atol=1e-4)


def test_sustained_vs_damped():
    t = np.linspace(0, 60, 3001)
    assert jc.analysis.is_sustained(t, 2 + np.sin(t))
    assert not jc.analysis.is_sustained(t, 2 + np.exp(-0.05 * t) * np.sin(t))
    assert not jc.analysis.is_sustained(t, 2 + 1e-6 * np.sin(t))
