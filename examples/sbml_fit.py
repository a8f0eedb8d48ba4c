"""Import a published SBML model and fit two of its parameters by gradient descent.

The model is the SIR epidemic model of the PEtab benchmark problem Bertozzi_PNAS2020
(Bertozzi et al., PNAS 117 (2020) 16732), shipped in ``tests/data/petab``. We simulate
it at R0 = 3, gamma = 0.1, add 2 % multiplicative noise to the infected count (seeded),
and recover R0 and gamma from a start of R0 = 2, gamma = 0.2 with optax's Adam on
log-parameters, differentiating through the SBML model's solve (initial assignments
included: I(0) and S(0) are computed from the parameters).

Run: ``python examples/sbml_fit.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcell.sbml import load_sbml, solve_sbml

MODEL = Path(__file__).resolve().parents[1] / "tests/data/petab/Bertozzi_PNAS2020/model.xml"
TRUE = {"R0_": 3.0, "gamma_": 0.1}


def main(quick: bool = False, out_dir: str | None = None) -> dict:
    model = load_sbml(MODEL).replace_parameters({"N_": 1e6, "I0_": 100.0})
    ts = jnp.linspace(0.0, 60.0, 31)
    i_col = model.output_ids.index("I_")

    def infected(log_p):
        m = model.replace_parameters({"R0_": jnp.exp(log_p[0]), "gamma_": jnp.exp(log_p[1])})
        values, status, _ = solve_sbml(m, ts, rtol=1e-8, atol=1e-6)
        return values[:, i_col]

    truth = infected(jnp.log(jnp.array([TRUE["R0_"], TRUE["gamma_"]])))
    rng = np.random.default_rng(0)
    data = truth * (1.0 + 0.02 * rng.standard_normal(truth.shape))

    def loss(log_p):
        return jnp.mean((jnp.log(infected(log_p)) - jnp.log(data)) ** 2)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    log_p = jnp.log(jnp.array([2.0, 0.2]))
    opt = optax.adam(0.1)
    state = opt.init(log_p)
    steps = 80 if quick else 300
    history = []
    for _ in range(steps):
        value, grad = value_and_grad(log_p)
        updates, state = opt.update(grad, state)
        log_p = optax.apply_updates(log_p, updates)
        history.append(float(value))
    fitted = {"R0_": float(jnp.exp(log_p[0])), "gamma_": float(jnp.exp(log_p[1]))}
    print(f"fitted R0 = {fitted['R0_']:.3f} (true 3), gamma = {fitted['gamma_']:.4f} "
          f"(true 0.1); loss {history[0]:.3g} -> {history[-1]:.3g} in {steps} steps")

    out = {"fitted": fitted, "loss": history}
    if out_dir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(out_dir, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.semilogy(ts, data, "o", label="synthetic data")
        ax.semilogy(ts, infected(log_p), "-", label="fitted SBML model")
        ax.set_xlabel("time (days)")
        ax.set_ylabel("infected")
        ax.legend()
        path = os.path.join(out_dir, "sbml_fit.png")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out["png"] = path
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="example-output")
    args = parser.parse_args()
    main(args.quick, args.out)
