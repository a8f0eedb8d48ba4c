"""The systems of ``discovery.py``: true equations, clean trajectories, noisy data sets,
and the same candidate library for jaxcell and PySINDy.

Each :class:`System` holds a numpy right-hand side (integrated here with scipy
``solve_ivp(DOP853)`` at rtol 1e-11, atol 1e-12), the sampling grid, the true support
(a set of term names per equation, checked against the library's names), the jaxcell
library and a factory for the equivalent PySINDy library, and the settings every method
uses for that system (chosen once per system, never per seed or noise level).

Systems:

* ``lorenz``: Lorenz (1963), sigma 10, rho 28, beta 8/3, x0 (-8, 7, 27) (the SINDy
  paper's set-up, ``REFERENCE-MODELS.md`` E1); polynomial library of degree 2
  (10 terms per equation); 7 true terms.
* ``lotka_volterra``: x' = a x - b x y, y' = d x y - c y with a 1.3, b 0.9, d 0.8,
  c 1.8, x0 (0.44249296, 4.6280594) (``REFERENCE-MODELS.md`` M5 / E2, the UDE paper's
  parameters); polynomial library of degree 2 (6 terms); 4 true terms.
* ``glycolysis``: the 7-species yeast glycolysis oscillator of Ruoff, Christensen,
  Wolf & Heinrich (2003, Biophys. Chem. 106, 179-192) in the form of Daniels & Nemenman
  (2015, PLoS ONE 10, e0119821, eq. 19), used as the rational benchmark of SINDy-PI
  (Kaheman, Kutz & Brunton 2020, Proc. R. Soc. A 476, 20200279)::

      S1' = J0 - v1                            v1 = k1 S1 S6 / (1 + (S6/K1)^q)
      S2' = 2 v1 - k2 S2 (N - S5) - k6 S2 S5
      S3' = k2 S2 (N - S5) - k3 S3 (A - S6)
      S4' = k3 S3 (A - S6) - k4 S4 S5 - kappa (S4 - S7)
      S5' = k2 S2 (N - S5) - k4 S4 S5 - k6 S2 S5
      S6' = -2 v1 + 2 k3 S3 (A - S6) - k5 S6
      S7' = psi kappa (S4 - S7) - k S7

  J0 2.5, k1 100, k2 6, k3 16, k4 100, k5 1.28, k6 12, k 1.8, kappa 13, q 4, K1 0.52,
  psi 0.1, N 1, A 4. 10 trajectories on t in [0, 2] (about 1.7 periods, transients
  included), their initial states drawn (numpy seed 123) uniformly from the ranges
  Daniels & Nemenman and SINDy-PI sample from (S1 0.15-1.60, S2 0.19-2.16,
  S3 0.04-0.20, S4 0.10-0.35, S5 0.08-0.30, S6 0.14-2.67, S7 0.05-0.10): one trajectory
  on the limit cycle lies close to a curve, on which the degree-2 library is nearly
  rank-deficient (even noise-free finite differences then give a dense fit). The rate
  v6 = k6 S2 S5 appears in both S2' and S5' (Ruoff et al.; one transcription of D&N's
  equations writes S6 in S2'). Library: polynomials of degree 2 in S1..S7 (36 terms)
  and {S1, S6, S1*S6} times the repression factor K1^q / (K1^q + S6^q) =
  1 / (1 + (S6/K1)^q) (3 terms): 39 terms, 23 true terms (v1 is k1 * S1*S6*hill).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy.integrate import solve_ivp

from jaxcell import discovery as dc

# -- right-hand sides -------------------------------------------------------------


def lorenz_rhs(t, u, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    x, y, z = u
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


LV = dict(a=1.3, b=0.9, d=0.8, c=1.8)


def lv_rhs(t, u, a=LV["a"], b=LV["b"], c=LV["c"], d=LV["d"]):
    x, y = u
    return [a * x - b * x * y, d * x * y - c * y]


GLY = dict(J0=2.5, k1=100.0, k2=6.0, k3=16.0, k4=100.0, k5=1.28, k6=12.0, k=1.8,
           kappa=13.0, q=4.0, K1=0.52, psi=0.1, N=1.0, A=4.0)


def glycolysis_rhs(t, s, p=GLY):
    s1, s2, s3, s4, s5, s6, s7 = s
    v1 = p["k1"] * s1 * s6 / (1.0 + (s6 / p["K1"]) ** p["q"])
    v2 = p["k2"] * s2 * (p["N"] - s5)
    v3 = p["k3"] * s3 * (p["A"] - s6)
    v4 = p["k4"] * s4 * s5
    v5 = p["k5"] * s6
    v6 = p["k6"] * s2 * s5
    v7 = p["kappa"] * (s4 - s7)
    return [p["J0"] - v1, 2 * v1 - v2 - v6, v2 - v3, v3 - v4 - v7, v2 - v4 - v6,
            -2 * v1 + 2 * v3 - v5, p["psi"] * v7 - p["k"] * s7]


# -- libraries ------------------------------------------------------------------------

GLY_VARS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7")
HILL = "hill"


def _hill_np(s6):
    kn = GLY["K1"] ** GLY["q"]
    return kn / (kn + np.abs(s6) ** GLY["q"])


def gly_jax_library() -> dc.AbstractLibrary:
    return dc.PolynomialLibrary(2) + (
        dc.PolynomialLibrary(2, include_bias=False, interaction_only=True,
                             inputs=("S1", "S6"))
        * dc.HillLibrary(K=GLY["K1"], n=GLY["q"], kind="repression", inputs=("S6",)))


def gly_pysindy_functions():
    """The 3 saturating columns as PySINDy custom functions of all 7 states (arity 7,
    so each function is one column), in jaxcell's order: S1*h, S6*h, S1*S6*h."""
    fns = [lambda a, b, c, d, e, f, g: a * _hill_np(f),
           lambda a, b, c, d, e, f, g: f * _hill_np(f),
           lambda a, b, c, d, e, f, g: a * f * _hill_np(f)]
    names = [lambda *v: f"{v[0]}*{HILL}({v[5]})", lambda *v: f"{v[5]}*{HILL}({v[5]})",
             lambda *v: f"{v[0]}*{v[5]}*{HILL}({v[5]})"]
    return fns, names


def pysindy_library(system: str):
    """A fresh PySINDy feature library with the same columns as the jaxcell one."""
    import pysindy as ps

    if system in ("lorenz", "lotka_volterra"):
        return ps.PolynomialLibrary(degree=2)
    fns, names = gly_pysindy_functions()
    return ps.ConcatLibrary([ps.PolynomialLibrary(degree=2),
                             ps.CustomLibrary(library_functions=fns, function_names=names)])


# -- systems ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class System:
    name: str
    about: str
    variables: tuple[str, ...]
    rhs: Callable
    x0: tuple[tuple[float, ...], ...]  # one initial state per trajectory
    t1: float
    dt: float
    library: dc.AbstractLibrary
    true_terms: dict[str, tuple[str, ...]]  # variable -> term names (jaxcell names)
    threshold: float
    sg_window: int     # Savitzky-Golay window (samples)
    sg_order: int
    weak_windows: int  # test functions per trajectory
    weak_width: int    # test-function support (samples)
    weak_power: int
    quick_stride: int = 1  # --quick keeps every quick_stride-th sample ...
    quick_trajectories: int | None = None  # ... of the first quick_trajectories

    def quick(self) -> System:
        """The smaller data set of ``--quick``: the first ``quick_trajectories``
        trajectories, every ``quick_stride``-th sample; the Savitzky-Golay window and the
        weak-form width keep their time span."""
        stride = self.quick_stride
        sg = (self.sg_window - 1) // stride + 1
        sg += 1 - sg % 2
        return dataclasses.replace(
            self, x0=self.x0[: self.quick_trajectories], dt=self.dt * stride,
            sg_window=max(sg, 5), weak_width=(self.weak_width - 1) // stride + 1,
            quick_stride=1, quick_trajectories=None)

    def terms(self) -> tuple[str, ...]:
        return self.library.names(self.variables)

    def true_support(self) -> np.ndarray:
        names = self.terms()
        sup = np.zeros((len(self.variables), len(names)), bool)
        for i, v in enumerate(self.variables):
            for t in self.true_terms[v]:
                if t not in names:
                    raise ValueError(f"{self.name}: true term {t!r} is not in the library")
                sup[i, names.index(t)] = True
        return sup

    def trajectories(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ts (n,), xs (trajectories, n, d))``, sampled every ``dt`` on [0, t1]."""
        n = int(round(self.t1 / self.dt)) + 1
        ts = self.dt * np.arange(n)
        out = []
        for x0 in self.x0:
            sol = solve_ivp(self.rhs, (0.0, ts[-1]), x0, method="DOP853", t_eval=ts,
                            rtol=1e-11, atol=1e-12)
            if not sol.success:
                raise RuntimeError(f"{self.name}: {sol.message}")
            out.append(sol.y.T)
        return ts, np.stack(out)


def noisy(xs: np.ndarray, percent: float, seed: int) -> np.ndarray:
    """States ``(trajectories, n, d)`` plus Gaussian noise with sd = ``percent`` % of
    each state's SD over its trajectory; ``seed`` fixes the noise."""
    rng = np.random.default_rng(seed)
    sd = xs.std(axis=1, keepdims=True) * percent / 100.0
    return xs + rng.standard_normal(xs.shape) * sd


def _lorenz() -> System:
    return System(
        name="lorenz", about="Lorenz (sigma 10, rho 28, beta 8/3), polynomial degree 2",
        variables=("x", "y", "z"), rhs=lorenz_rhs, x0=((-8.0, 7.0, 27.0),),
        t1=10.0, dt=0.005,
        library=dc.PolynomialLibrary(2),
        true_terms={"x": ("x", "y"), "y": ("x", "y", "x*z"), "z": ("x*y", "z")},
        threshold=0.5, sg_window=9, sg_order=3,
        weak_windows=200, weak_width=41, weak_power=4)


def _lv() -> System:
    return System(
        name="lotka_volterra",
        about="Lotka-Volterra (1.3, 0.9, 0.8, 1.8; REFERENCE-MODELS M5/E2), polynomial "
              "degree 2",
        variables=("x", "y"), rhs=lv_rhs, x0=((0.44249296, 4.6280594),),
        t1=20.0, dt=0.01,
        library=dc.PolynomialLibrary(2),
        true_terms={"x": ("x", "x*y"), "y": ("y", "x*y")},
        threshold=0.2, sg_window=21, sg_order=3,
        weak_windows=200, weak_width=41, weak_power=4)


# Daniels & Nemenman's ranges of initial states (SINDy-PI samples from the same)
GLY_X0_LOW = (0.15, 0.19, 0.04, 0.10, 0.08, 0.14, 0.05)
GLY_X0_HIGH = (1.60, 2.16, 0.20, 0.35, 0.30, 2.67, 0.10)
GLY_TRAJECTORIES = 10


def _glycolysis() -> System:
    lib = gly_jax_library()
    names = lib.names(GLY_VARS)
    v1 = [n for n in names if n.startswith("S1*S6*")]
    assert len(v1) == 1, names
    v1 = v1[0]
    true = {
        "S1": ("1", v1),
        "S2": (v1, "S2", "S2*S5"),
        "S3": ("S2", "S2*S5", "S3", "S3*S6"),
        "S4": ("S3", "S3*S6", "S4*S5", "S4", "S7"),
        "S5": ("S2", "S2*S5", "S4*S5"),
        "S6": (v1, "S3", "S3*S6", "S6"),
        "S7": ("S4", "S7"),
    }
    lo, hi = np.asarray(GLY_X0_LOW), np.asarray(GLY_X0_HIGH)
    rng = np.random.default_rng(123)
    x0 = tuple(tuple(float(v) for v in lo + (hi - lo) * rng.random(7))
               for _ in range(GLY_TRAJECTORIES))
    return System(
        name="glycolysis",
        about="yeast glycolysis, 7 species (Ruoff 2003 / Daniels & Nemenman 2015), "
              "10 trajectories; polynomial degree 2 + {S1,S6,S1*S6} x Hill repression "
              "of S6",
        variables=GLY_VARS, rhs=glycolysis_rhs, x0=x0,
        t1=2.0, dt=0.001,
        library=lib, true_terms=true,
        threshold=1.0, sg_window=21, sg_order=3,
        weak_windows=200, weak_width=101, weak_power=4, quick_stride=2,
        quick_trajectories=3)


SYSTEMS: dict[str, Callable[[], System]] = {
    "lorenz": _lorenz, "lotka_volterra": _lv, "glycolysis": _glycolysis}


def exact_coefficients(s: System, xs: np.ndarray) -> np.ndarray:
    """The true coefficients (targets, terms), by least squares of the exact
    derivatives on the true support (a check of the support and the library)."""
    xs = xs.reshape(-1, xs.shape[-1])
    theta = np.asarray(s.library(xs, s.variables))
    dx = np.array([s.rhs(0.0, x) for x in xs])
    sup = s.true_support()
    coef = np.zeros(sup.shape)
    for i in range(sup.shape[0]):
        cols = np.flatnonzero(sup[i])
        coef[i, cols] = np.linalg.lstsq(theta[:, cols], dx[:, i], rcond=None)[0]
    return coef
