"""Run by tests/test_scale_out.py in fresh processes (the device count is fixed when JAX
starts). ``devices OUT``: ensembles and a tissue on 1 and 4 CPU devices;
``distributed PROCESS_ID PORT OUT``: an ensemble over two processes."""

from __future__ import annotations

import contextlib
import logging
import sys


def ensemble_case(devices=None, chunk_size=None, **kwargs):
    import jax.numpy as jnp
    import numpy as np

    import jaxcell as jc

    a = jnp.linspace(50.0, 150.0, 10)  # 10 members: not a multiple of 4 (padding)
    tr = jc.ensemble(jc.models.goodwin(), 0.0, 30.0, saveat=[5.0, 15.0, 30.0],
                     parameters={"a": a}, devices=devices, chunk_size=chunk_size,
                     **kwargs)
    return np.asarray(tr["z"]), np.asarray(tr.success)


@contextlib.contextmanager
def _log():
    """The messages of the ``jaxcell`` logger (INFO and up) while the block runs."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("jaxcell")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def implicit_case():
    """An implicit diffrax solver (lineax, batched LAPACK LU under vmap) runs on one
    device; the result is the one-device result."""
    import diffrax

    z, _ = ensemble_case(solver=diffrax.Kvaerno5())
    z_one, _ = ensemble_case(devices=1, solver=diffrax.Kvaerno5())
    return z, z_one


def fit_case():
    """Five starts of a forward-mode least-squares fit as one batch over the devices
    (Levenberg-Marquardt), against the same starts one at a time on one device."""
    import diffrax
    import jax.numpy as jnp
    import numpy as np

    import jaxcell as jc
    from jaxcell.inference import Experiment, Normal, Objective, Parameters, fit

    decay = jc.ODE("decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                   parameters={"k": 0.2})
    data = Experiment([1.0, 2.0, 3.0], [0.6065, 0.3679, 0.2231], "molecular/decay/x",
                      noise=Normal(0.01))
    objective = Objective(decay, Parameters(["k"], model=decay), data,
                          adjoint=diffrax.ForwardMode())
    starts = jnp.linspace(-2.0, 1.0, 5)[:, None]
    with _log() as messages:
        batch = fit(objective, starts=starts, batch=True, max_steps=40)
    one = fit(objective, starts=starts, max_steps=40)
    values = [np.asarray([s.value for s in r.starts]) for r in (batch, one)]
    return values[0], values[1], any("running on one device" in m for m in messages)


def tissue_case(devices=None):
    import jax
    import numpy as np

    import jaxcell as jc
    from jaxcell.tissue import (
        DiffusingField,
        Dirichlet,
        GapJunction,
        Grid,
        NoFlux,
        Periodic,
        square_lattice,
    )

    init = jax.random.uniform(jax.random.key(0), (16, 6))
    field = DiffusingField("m", Grid((16, 6), spacing=0.5, devices=devices), D=0.3,
                           decay=0.1, initial=init,
                           boundary=[(Dirichlet(1.0), NoFlux()), Periodic()])
    x0 = jax.random.uniform(jax.random.key(1), (64, 2))
    cells = jc.ODE("cells", {"x": x0}, lambda t, y, p: {"x": -0.1 * y["x"]},
                   scale="cellular")
    gap = GapJunction("gap", square_lattice(8, 8, periodic=True), "cellular/cells/x",
                      D=0.5, devices=devices)
    tr = jc.simulate(jc.Composite([field, cells, gap]), 0.0, 2.0, saveat=[1.0, 2.0])
    return np.asarray(tr["tissue/m/concentration"]), np.asarray(tr["cellular/cells/x"])


def chain_case():
    """20 decaying species under Rodas5 (LAPACK under vmap above 16 states): one device,
    said in the log; the analytic solution exp(-k t)."""
    import jax.numpy as jnp
    import numpy as np

    import jaxcell as jc

    decay = jc.ODE("chain", {"x": jnp.ones(20)}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                   parameters={"k": 1.0})
    k = jnp.linspace(0.5, 2.0, 6)
    with _log() as messages:
        tr = jc.ensemble(decay, 0.0, 2.0, saveat=[2.0], parameters={"k": k})
    x = np.asarray(tr["x"])[:, -1, :]
    exact = np.exp(-2.0 * np.asarray(k))[:, None] * np.ones((1, 20))
    return np.abs(x - exact).max(), any("LAPACK" in m for m in messages)


def main(argv):
    import numpy as np

    if argv[0] == "devices":
        import jax

        import jaxcell  # noqa: F401  (asks JAX for JAXCELL_CPU_DEVICES devices)

        out = {"n_devices": np.asarray(jax.local_device_count())}
        out["ens_one"], out["ok_one"] = ensemble_case(devices=1)
        out["ens_all"], out["ok_all"] = ensemble_case()
        out["ens_chunk"], _ = ensemble_case(chunk_size=1)
        out["implicit_all"], out["implicit_one"] = implicit_case()
        out["fit_batch"], out["fit_one"], out["fit_fell_back"] = fit_case()
        out["chain_err"], out["chain_logged"] = chain_case()
        out["field_one"], out["cells_one"] = tissue_case(None)
        out["field_all"], out["cells_all"] = tissue_case(4)
        np.savez(argv[1], **out)
    elif argv[0] == "distributed":
        import jax

        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{argv[2]}",
                                   num_processes=2, process_id=int(argv[1]),
                                   initialization_timeout=120)
        z, ok = ensemble_case()
        np.savez(argv[3], z=z, ok=ok, process_count=np.asarray(jax.process_count()))
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
