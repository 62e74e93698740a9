"""One-step and T-step Jacobians of the two-compartment state map.

Without spikes the TC-LIF state map (U_D, U_S) -> (U_D', U_S') is linear with
matrix ``[[1, b1], [b2, 1 + b1 b2]]`` (determinant 1). The paper's Eq. 14-15
use a different matrix; ``paper_inf_norm`` reproduces its Table 7, and
``transition_jacobian`` gives the exact one from autodiff of the real step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tclif_jax.neurons import TCLIFState, two_compartment_step
from tclif_jax.surrogate import Surrogate

# A threshold no sub-threshold analysis reaches: no spike and no surrogate term.
_NO_SPIKE_V_TH = 1e9


def paper_inf_norm(b1, b2):
    """The paper's Eq. 15: ||dU[j]/dU[j-1]||_inf = b1 b2^2 + b1 b2 + 2 b2 + 1."""
    return b1 * b2**2 + b1 * b2 + 2 * b2 + 1


def _map(b1, b2, decay=(1.0, 1.0)):
    params = {"b": jnp.stack([jnp.asarray(b1, jnp.float32), jnp.asarray(b2, jnp.float32)])}

    def f(v):  # v = (U_D, U_S), shape (2,)
        state = TCLIFState(v[0], v[1], jnp.zeros(()))
        new, _ = two_compartment_step(
            params,
            state,
            0.0,
            decay=decay,
            gamma=0.0,
            v_th=_NO_SPIKE_V_TH,
            spike_fn=Surrogate("triangle", 1.0),
        )
        return jnp.stack([new.dendrite, new.soma])

    return f


def transition_jacobian(b1, b2, decay=(1.0, 1.0)) -> jax.Array:
    """Exact sub-threshold Jacobian d(U_D[t], U_S[t]) / d(U_D[t-1], U_S[t-1]), ``(2, 2)``,
    by ``jax.jacrev`` of the implemented step (decay = (a1, a2); TC-LIF: (1, 1))."""
    return jax.jacrev(_map(b1, b2, decay))(jnp.zeros(2, jnp.float32))


def jacobian_over_time(b1, b2, num_steps: int, decay=(1.0, 1.0)) -> jax.Array:
    """Sub-threshold d state[T] / d state[0] for T = 1..num_steps, shape ``(num_steps, 2, 2)``,
    by reverse-mode autodiff (``jax.jacrev``) through ``lax.scan`` of the real step."""
    f = _map(b1, b2, decay)

    def run(v0):
        def body(v, _):
            v = f(v)
            return v, v

        return jax.lax.scan(body, v0, None, length=num_steps)[1]

    return jax.jacrev(run)(jnp.zeros(2, jnp.float32))


def spectral_radius(matrix) -> jax.Array:
    """Largest eigenvalue modulus of a square matrix."""
    return jnp.max(jnp.abs(jnp.linalg.eigvals(matrix)))
