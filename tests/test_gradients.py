"""Gradient norms over time through lax.scan, with no spike or surrogate term active."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tclif_jax.analysis import jacobian_over_time, paper_inf_norm, transition_jacobian
from tclif_jax.neurons import LIF, TCLIF, TCLIFState

HIGH_VTH = 1e6  # nothing reaches it: no spikes, zero surrogate derivative


@pytest.mark.parametrize("T", [1, 10, 100, 784])
def test_lif_gradient_decays_as_decay_power_T(T):
    neuron = LIF(decay=0.99, v_th=HIGH_VTH, reset_order="paper")

    def final_potential(u0):
        state = neuron.init_state((), 1)._replace(potential=u0)

        def body(st, x):
            st, _ = neuron.step({}, st, x)
            return st, None

        st, _ = jax.lax.scan(body, state, jnp.full((T, 1), 0.01))
        return st.potential.sum()

    g = float(jax.grad(final_potential)(jnp.asarray([0.3]))[0])
    assert g == pytest.approx(0.99**T, rel=1e-5)


def _tclif_jacobians(b1, b2, T):
    """d(U_D, U_S)[t] / d(U_D, U_S)[0] for t = 1..T, through the real TC-LIF step."""
    c = jnp.asarray([np.log(-b1 / (1 + b1)), np.log(b2 / (1 - b2))], jnp.float32)
    neuron = TCLIF(v_th=HIGH_VTH)

    def run(v0):
        def body(st, _):
            st, _ = neuron.step({"c": c}, st, 0.0)
            return st, jnp.stack([st.dendrite, st.soma])

        st0 = TCLIFState(v0[0], v0[1], jnp.float32(0.0))
        return jax.lax.scan(body, st0, None, length=T)[1]

    return np.asarray(jax.jacrev(run)(jnp.asarray([0.1, 0.2])))


@pytest.mark.parametrize("b1", [-0.2, -0.4, -0.6, -0.8])
@pytest.mark.parametrize("b2", [0.2, 0.4, 0.6, 0.8])
def test_tclif_second_quadrant_neither_vanishes_nor_explodes(b1, b2):
    jac = _tclif_jacobians(b1, b2, 784)
    norms = np.linalg.norm(jac, axis=(1, 2))
    assert norms.min() >= 1.0 and norms.max() <= 10.0, (norms.min(), norms.max())


@pytest.mark.parametrize("b1,b2", [(0.2, 0.2), (0.5, 0.5), (0.8, 0.4)])
def test_first_quadrant_explodes_within_50_steps(b1, b2):
    jac = np.asarray(jacobian_over_time(b1, b2, 50))
    assert np.linalg.norm(jac[-1]) > 1e3


TABLE7 = {
    (-0.2, 0.2): 1.352,
    (-0.2, 0.4): 1.688,
    (-0.2, 0.6): 2.008,
    (-0.2, 0.8): 2.312,
    (-0.4, 0.2): 1.304,
    (-0.4, 0.4): 1.576,
    (-0.4, 0.6): 1.816,
    (-0.4, 0.8): 2.024,
    (-0.6, 0.2): 1.256,
    (-0.6, 0.4): 1.464,
    (-0.6, 0.6): 1.624,
    (-0.6, 0.8): 1.736,
    (-0.8, 0.2): 1.208,
    (-0.8, 0.4): 1.352,
    (-0.8, 0.6): 1.432,
    (-0.8, 0.8): 1.448,
}
TABLE7_TRAINED = {
    (-0.184, 0.146): 1.262,
    (-0.188, 0.307): 1.539,
    (-0.203, 0.563): 1.948,
    (-0.202, 0.835): 2.360,
    (-0.379, 0.159): 1.248,
    (-0.370, 0.318): 1.480,
    (-0.383, 0.532): 1.751,
    (-0.380, 0.700): 1.949,
    (-0.621, 0.172): 1.219,
    (-0.621, 0.342): 1.399,
    (-0.634, 0.594): 1.587,
    (-0.612, 0.761): 1.704,
    (-0.812, 0.187): 1.194,
    (-0.815, 0.360): 1.321,
    (-0.812, 0.580): 1.416,
    (-0.821, 0.801): 1.418,
}


def test_paper_eq15_reproduces_table7_grid():
    assert len(TABLE7) == 16
    for (b1, b2), value in TABLE7.items():
        assert paper_inf_norm(b1, b2) == pytest.approx(value, abs=0.0005), (b1, b2)


def test_paper_eq15_reproduces_table7_trained():
    # The trained (b1, b2) are printed to 3 decimals, so Eq. 15 of the printed values can
    # only match to rounding. 15 of 16 agree within 0.0013; (-0.612, 0.761) is off by
    # 0.0022 (1.7018 vs 1.704), more than rounding of b explains (<= 0.0009): a typo in
    # the paper's table, we believe. Hence 0.0025 here rather than the 0.002 we aimed for.
    errors = {k: abs(paper_inf_norm(*k) - v) for k, v in TABLE7_TRAINED.items()}
    assert len(errors) == 16
    assert sum(e <= 0.0013 for e in errors.values()) == 15
    assert max(errors.values()) == pytest.approx(0.0022, abs=1e-4)
    assert max(errors, key=errors.get) == (-0.612, 0.761)


@pytest.mark.parametrize("b1", [-0.2, -0.5, -0.9, -3.0])
@pytest.mark.parametrize("b2", [0.1, 0.5, 0.9, 1.2])
def test_exact_transition_jacobian_is_symplectic_and_marginal(b1, b2):
    jac = np.asarray(transition_jacobian(b1, b2), np.float64)
    np.testing.assert_allclose(jac, [[1, b1], [b2, 1 + b1 * b2]], rtol=1e-6)
    assert np.linalg.det(jac) == pytest.approx(1.0, abs=1e-5)
    if -4 < b1 * b2 < 0:
        np.testing.assert_allclose(np.abs(np.linalg.eigvals(jac)), 1.0, atol=1e-5)


def test_first_quadrant_has_eigenvalue_above_one():
    jac = np.asarray(transition_jacobian(0.3, 0.3), np.float64)
    assert np.abs(np.linalg.eigvals(jac)).max() > 1.0


def test_two_compartment_with_decays_contracts():
    jac = np.asarray(jacobian_over_time(-0.5, 0.5, 200, decay=(0.9, 0.9)))
    assert np.linalg.norm(jac[-1]) < 1e-3
