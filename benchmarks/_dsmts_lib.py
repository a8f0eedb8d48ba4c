"""The pieces of the DSMTS runner (``benchmarks/dsmts_suite.py``), shared with
``tests/test_dsmts.py``.

The Discrete Stochastic Models Test Suite (Evans, Gillespie & Wilkinson, Bioinformatics
24:285, 2008), as kept in the SBML Test Suite (``cases/stochastic``): each case folder
``NNNNN/`` holds the model at several SBML Levels/Versions, ``NNNNN-settings.txt``
(start, duration, steps, variables, ``meanRange``, ``sdRange``) and
``NNNNN-results.csv`` (the exact mean and SD of every variable at every output time).

**The suite's rule, per point.** From ``n`` independent trajectories, at each output time
``Z_t = sqrt(n) (mean_t - mu_t) / sigma_t`` must lie in ``meanRange`` (-3, 3) and
``Y_t = sqrt(n/2) (S_t^2 / sigma_t^2 - 1)`` in ``sdRange`` (-5, 5). Points where the
exact SD is 0 (a known initial state) must be matched exactly by every trajectory.

**Our rule, per case.** A correct simulator still sees a few points out of range: for a
normal statistic, ``P(|Z| >= 3) = 0.0027``, and the suite's README reports about 2-3 Z and
5-6 Y failures over its ~4,000 points at n = 10^4 (about 0.0015 per point). So a case
*passes* when, for Z and for Y separately, the number ``k`` of out-of-range points among
its ``m`` points is not improbable for a correct simulator: the binomial tail
``P(Bin(m, p) >= k) >= alpha`` with ``p = 0.0027`` and ``alpha = 0.001``. For a
51-point variable this allows up to 2 points out of range; 3 fail the case.

The binomial bound treats points as independent, and they are not: one set of
trajectories gives a Z that wanders smoothly over time (and conserved sums make species
exactly anticorrelated), so a correct simulator sometimes sees a run of consecutive
points just past 3 (measured: case 00031 at n = 10^4 with one seed had 10 of 102 points
out, max |Z| 4.0, while 40,000 trajectories of the same simulator gave max |Z| 2.2). So
a case that fails is run once more with a fresh seed, and passes if that second,
independent set passes (recorded as ``retried``). A correct simulator then fails a case
with the square of its (small) single-set failure probability; a biased one fails both
sets. The same rule applies to every case and method.
"""

from __future__ import annotations

import csv
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

P_POINT = 0.0027
ALPHA = 0.001
#: SBML files tried in this order (the first that jaxcell reads is used). The Level 3
#: files of the DSMTS leave compartment sizes undefined (the original models never use
#: them), which jaxcell refuses; the Level 2 translations carry the Level 2 default of 1.
LEVELS = ("l3v2", "l3v1", "l2v5", "l2v4", "l2v3", "l2v2", "l2v1")


@dataclass
class Settings:
    start: float
    duration: float
    steps: int
    variables: list[str]
    amount: list[str]
    concentration: list[str]
    mean_range: tuple[float, float] = (-3.0, 3.0)
    sd_range: tuple[float, float] = (-5.0, 5.0)

    @property
    def times(self) -> np.ndarray:
        return np.linspace(self.start, self.start + self.duration, self.steps + 1)


@dataclass
class CaseResult:
    case: str
    status: str
    z_out: int = 0
    y_out: int = 0
    points: int = 0
    feature: str | None = None
    message: str | None = None
    file: str | None = None
    seconds: float = 0.0
    max_abs_z: float = 0.0
    max_abs_y: float = 0.0
    retried: bool = False
    extra: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        out = {"status": self.status, "z_out": self.z_out, "y_out": self.y_out,
               "points": self.points, "feature": self.feature}
        for k in ("message", "file"):
            if getattr(self, k):
                out[k] = getattr(self, k)
        out["seconds"] = round(self.seconds, 3)
        out["retried"] = self.retried
        out["max_abs_z"] = round(self.max_abs_z, 3)
        out["max_abs_y"] = round(self.max_abs_y, 3)
        return out


def _pair(text: str) -> tuple[float, float]:
    nums = re.findall(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?", text)
    if len(nums) != 2:
        raise ValueError(f"expected a range like (-3, 3); got {text!r}")
    return float(nums[0]), float(nums[1])


def read_settings(path: Path) -> Settings:
    """Parse an ``NNNNN-settings.txt`` file."""
    kv: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            kv[k.strip()] = v.strip()

    def names(k):
        return [s.strip() for s in kv.get(k, "").split(",") if s.strip()]

    try:
        s = Settings(start=float(kv["start"]), duration=float(kv["duration"]),
                     steps=int(float(kv["steps"])), variables=names("variables"),
                     amount=names("amount"), concentration=names("concentration"))
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: malformed settings ({e}).") from None
    if "meanRange" in kv:
        s.mean_range = _pair(kv["meanRange"])
    if "sdRange" in kv:
        s.sd_range = _pair(kv["sdRange"])
    return s


def read_results(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Times, and the exact mean and SD of every variable, from ``NNNNN-results.csv``."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows.")
    times = np.array([float(r["time"]) for r in rows])
    means, sds = {}, {}
    for col in rows[0]:
        col = col.strip()
        if col.endswith("-mean"):
            v = col[:-5]
            means[v] = np.array([float(r[col]) for r in rows])
            sds[v] = np.array([float(r[f"{v}-sd"]) for r in rows])
    return times, means, sds


def discover(root: str | Path) -> list[Path]:
    """Case folders under ``root`` (``root/cases/NNNNN`` or ``root/NNNNN``)."""
    root = Path(root)
    base = root / "cases" if (root / "cases").is_dir() else root
    if not base.is_dir():
        raise FileNotFoundError(f"no DSMTS cases under {root}")
    out = sorted(p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"\d{5}", p.name))
    if not out:
        raise FileNotFoundError(f"no NNNNN case folders under {base}")
    return out


def binomial_tail(k: int, m: int, p: float = P_POINT) -> float:
    """``P(Bin(m, p) >= k)``."""
    if k <= 0:
        return 1.0
    return float(sum(math.comb(m, i) * p**i * (1 - p) ** (m - i) for i in range(k, m + 1)))


def allowed_out(m: int, p: float = P_POINT, alpha: float = ALPHA) -> int:
    """The largest number of out-of-range points among ``m`` that passes."""
    k = 0
    while k < m and binomial_tail(k + 1, m, p) >= alpha:
        k += 1
    return k


def statistics(samples: np.ndarray, mu: np.ndarray, sd: np.ndarray, settings: Settings
               ) -> tuple[int, int, int, float, float]:
    """(Z out, Y out, points, max |Z|, max |Y|) of ``samples`` (trajectories x times)."""
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    var = samples.var(axis=0, ddof=1)
    z_out = y_out = 0
    points = len(mu)
    pos = sd > 0
    # points with an exact SD of 0: every trajectory must hit the mean
    exact = ~pos
    z_out += int(np.sum(exact & (np.abs(mean - mu) > 1e-9 * np.maximum(1, np.abs(mu)))))
    y_out += int(np.sum(exact & (var > 1e-18)))
    z = np.sqrt(n) * (mean[pos] - mu[pos]) / sd[pos]
    y = np.sqrt(n / 2) * (var[pos] / sd[pos] ** 2 - 1)
    lo, hi = settings.mean_range
    z_out += int(np.sum((z <= lo) | (z >= hi)))
    lo, hi = settings.sd_range
    y_out += int(np.sum((y <= lo) | (y >= hi)))
    return (z_out, y_out, points, float(np.max(np.abs(z), initial=0.0)),
            float(np.max(np.abs(y), initial=0.0)))


def load_model(folder: Path):
    """The case's model from the first SBML file jaxcell reads (see :data:`LEVELS`)."""
    from jaxcell.sbml import SBMLError, SBMLUnsupportedError, load_sbml

    last = None
    for lv in LEVELS:
        f = folder / f"{folder.name}-sbml-{lv}.xml"
        if not f.exists():
            continue
        try:
            return load_sbml(f), f
        except SBMLUnsupportedError:
            raise
        except SBMLError as e:
            last = e
    if last is None:
        raise FileNotFoundError(f"{folder}: no SBML file")
    raise last


def make_sampler(model, times, method, n: int, seed: int):
    """The state at ``times`` of ``n`` trajectories: (n, times, states) as NumPy."""
    import jax

    import jaxcell as jc

    t0, t1 = float(times[0]), float(times[-1])

    def one(key):
        tr = jc.simulate(model, t0, t1, saveat=times, stochastic=method, key=key,
                         throw=False)
        return tr.values[model.scale][model.name]["state"], tr.result._value

    run = jax.jit(jax.vmap(one))
    keys = jax.random.split(jax.random.key(seed), n)
    return run, keys


RETRY_SEED = 100_003


def run_case(folder: Path, method, n: int = 10_000, seed: int = 0,
             retry: bool = True) -> CaseResult:
    """Simulate one case ``n`` times and apply the rule (with the second, independent
    set of trajectories when the first fails; see the module docstring)."""
    first = _run_once(folder, method, n, seed)
    if first.status != "fail" or not retry:
        return first
    second = _run_once(folder, method, n, seed + RETRY_SEED)
    second.retried = True
    second.seconds += first.seconds
    second.message = (f"first set: {first.z_out} Z and {first.y_out} Y points out "
                      f"(max |Z| {first.max_abs_z:.2f}, max |Y| {first.max_abs_y:.2f})")
    return second


def _run_once(folder: Path, method, n: int, seed: int) -> CaseResult:
    from jaxcell import RESULTS
    from jaxcell.sbml import SBMLUnsupportedError

    t_start = time.perf_counter()
    case = folder.name
    try:
        settings = read_settings(folder / f"{case}-settings.txt")
        times, means, sds = read_results(folder / f"{case}-results.csv")
        model, file = load_model(folder)
        run, keys = make_sampler(model, times, method, n, seed)
        states, codes = run(keys)
        states, codes = np.asarray(states), np.asarray(codes)
    except SBMLUnsupportedError as e:
        return CaseResult(case, "unsupported", feature=e.feature, message=str(e),
                          seconds=time.perf_counter() - t_start)
    except Exception as e:  # noqa: BLE001 - a measurement tool records every failure
        return CaseResult(case, "error", message=f"{type(e).__name__}: {e}"[:500],
                          seconds=time.perf_counter() - t_start)
    failed = int(np.sum(codes != RESULTS.successful._value))  # noqa: SLF001
    if failed:
        return CaseResult(case, "error", message=f"{failed} of {n} trajectories failed",
                          seconds=time.perf_counter() - t_start, file=file.name)
    res = CaseResult(case, "pass", file=file.name)
    z_ok = y_ok = True
    for var in settings.variables:
        if var not in means:
            continue
        if var in model.state_ids:
            x = states[:, :, model.state_ids.index(var)]
        elif var in model.params:  # a constant (boundary) species: its given value
            x = np.full(states.shape[:2], float(model.params[var]))
        else:
            res.status, res.message = "error", f"variable {var!r} is not in the model"
            break
        if var in settings.concentration:
            comp = model.structure.symbols[var].compartment
            x = x / float(model.params[comp])
        z_out, y_out, pts, mz, my = statistics(x, means[var], sds[var], settings)
        res.z_out += z_out
        res.y_out += y_out
        res.points += pts
        res.max_abs_z = max(res.max_abs_z, mz)
        res.max_abs_y = max(res.max_abs_y, my)
        z_ok &= binomial_tail(z_out, pts) >= ALPHA
        y_ok &= binomial_tail(y_out, pts) >= ALPHA
        res.extra[var] = {"final_mean": float(x[:, -1].mean()),
                          "final_sd": float(x[:, -1].std(ddof=1))}
    if res.status == "pass" and not (z_ok and y_ok):
        res.status = "fail"
    res.seconds = time.perf_counter() - t_start
    return res
