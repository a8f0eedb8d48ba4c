"""What the event loop keeps besides the state: the history of accepted steps (for
delays) and the context processes see through their ``StateView`` (frozen switches, the
past)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._composite import Composite


class History(eqx.Module):
    """Accepted steps of the flat state (times, states, derivatives), interpolated by
    cubic Hermite polynomials; before the start, the initial state."""

    ts: jax.Array  # (H,), +inf where unused
    xs: jax.Array  # (H, n)
    fs: jax.Array  # (H, n)
    count: jax.Array
    t0: jax.Array
    x0: jax.Array

    def __call__(self, tq):
        h_len = self.ts.shape[0]
        i = jnp.clip(jnp.searchsorted(self.ts, tq, side="right") - 1, 0, h_len - 2)
        ta, tb = self.ts[i], self.ts[i + 1]
        xa, xb, fa, fb = self.xs[i], self.xs[i + 1], self.fs[i], self.fs[i + 1]
        h = tb - ta
        ok = jnp.isfinite(tb) & (h > 0)
        hs = jnp.where(ok, h, 1.0)
        s = jnp.where(ok, (tq - ta) / hs, 0.0)
        h00 = 2 * s**3 - 3 * s**2 + 1
        h10 = s**3 - 2 * s**2 + s
        h01 = -2 * s**3 + 3 * s**2
        h11 = s**3 - s**2
        interp = h00 * xa + h10 * hs * fa + h01 * xb + h11 * hs * fb
        out = jnp.where(ok, interp, xa)
        # strictly before the start: the initial state (at the start itself the recorded
        # history is used, so that time derivatives are one-sided from the right)
        return jnp.where(tq < self.t0, self.x0, out)


class LoopContext(eqx.Module):
    """What processes see of the event loop through their :class:`~jaxcell.StateView`:
    their frozen switch values and the past of the state."""

    z: jax.Array | None
    hist: History | None
    z_slices: tuple[tuple[str, int, int], ...] = eqx.field(static=True)
    offsets: tuple[tuple[tuple[str, str, str], int, int, tuple[int, ...]], ...] = \
        eqx.field(static=True)

    @property
    def has_history(self) -> bool:
        return self.hist is not None

    @property
    def start(self):
        return None if self.hist is None else self.hist.t0

    def switches_of(self, name: str):
        if self.z is None:
            return None
        for owner, a, b in self.z_slices:
            if owner == name:
                return self.z[a:b]
        return None

    def past(self, path, t):
        for p, a, b, shape in self.offsets:
            if p == path and self.hist is not None:
                return self.hist(t)[a:b].reshape(shape)
        raise KeyError(f"no history of {path!r}")


def state_offsets(model: Composite):
    """``(path, start, stop, shape)`` of each owned variable in the flat state (the order
    of ``ravel_pytree`` of the nested state: sorted paths)."""
    out, a = [], 0
    for path, var in model.spec.owned:
        size = int(np.prod(var.shape, dtype=int))
        out.append((path, a, a + size, tuple(var.shape)))
        a += size
    return tuple(out)


def switch_slices(model: Composite) -> tuple[tuple[str, int, int], ...]:
    out, a = [], 0
    for i in model.event_processes:
        p = model.leaves[i]
        n = p.events().n_switches  # pyright: ignore
        out.append((p.name, a, a + n))
        a += n
    return tuple(out)


def make_context(model: Composite, z, hist) -> LoopContext:
    return LoopContext(z, hist, switch_slices(model), state_offsets(model))


