"""Neuron steps: closed forms of one step, reset orders, and Jacobians by autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tclif_jax.neurons import (
    ALIF,
    LIF,
    PLIF,
    TCLIF,
    LIFState,
    TCLIFState,
    TwoCompartment,
    coupling,
    make_neuron,
)

jax.config.update("jax_enable_x64", False)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_tclif_official_step_matches_official_code_order():
    # Official: v1 = v1 - sig(c1) v2 + x; v2 = v2 + sig(c2) v1; s = H(v2 - vth);
    # v1 -= gamma s; v2 -= vth s. Our state holds pre-reset values, reset applied next step.
    rng = np.random.default_rng(0)
    c = np.array([0.3, -0.4], np.float32)
    gamma, v_th = 0.5, 1.0
    neuron = TCLIF(gamma=gamma, v_th=v_th, init_c=tuple(c))
    params = neuron.init_params(5)
    xs = rng.normal(0.8, 1.0, (30, 5)).astype(np.float32)
    v1 = np.zeros(5, np.float64)
    v2 = np.zeros(5, np.float64)
    state = neuron.init_state((), 5)
    for x in xs:
        v1 = v1 - _sig(c[0]) * v2 + x
        v2 = v2 + _sig(c[1]) * v1
        s = (v2 >= v_th).astype(np.float64)
        v1, v2 = v1 - gamma * s, v2 - v_th * s
        state, spike = neuron.step(params, state, jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(spike), s)
        np.testing.assert_allclose(np.asarray(state.soma) - v_th * np.asarray(spike), v2, atol=1e-5)
        np.testing.assert_allclose(
            np.asarray(state.dendrite) - gamma * np.asarray(spike), v1, atol=1e-5
        )
    assert 0 < np.asarray(spike).sum()


def test_official_and_paper_orders_differ_by_sigmoid_c1_vth_spike():
    c = jnp.asarray([0.7, 0.1])
    v_th, gamma = 1.2, 0.6
    state = TCLIFState(jnp.asarray([0.4, -0.2]), jnp.asarray([1.5, 0.3]), jnp.asarray([1.0, 0.0]))
    off = TCLIF(gamma=gamma, v_th=v_th, reset_order="official")
    pap = TCLIF(gamma=gamma, v_th=v_th, reset_order="paper")
    so, _ = off.step({"c": c}, state, jnp.asarray([0.3, 0.3]))
    sp, _ = pap.step({"c": c}, state, jnp.asarray([0.3, 0.3]))
    expected = float(_sig(0.7)) * v_th * np.asarray(state.spike)
    np.testing.assert_allclose(np.asarray(so.dendrite - sp.dendrite), expected, atol=1e-6)
    # Paper Eq. 10-11 literally:
    b1, b2 = -_sig(0.7), _sig(0.1)
    d = 0.4 + b1 * 1.5 + 0.3 - gamma * 1.0
    np.testing.assert_allclose(float(sp.dendrite[0]), d, rtol=1e-6)
    np.testing.assert_allclose(float(sp.soma[0]), 1.5 + b2 * d - v_th, rtol=1e-6)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("order", ["official", "paper"])
def test_subthreshold_one_step_jacobian_closed_form(seed, order):
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 2, 2).astype(np.float32)
    b1, b2 = (float(v) for v in coupling(jnp.asarray(c)))
    neuron = TCLIF(v_th=1e6, init_c=tuple(c), reset_order=order)

    def f(v):
        new, _ = neuron.step({"c": jnp.asarray(c)}, TCLIFState(v[0], v[1], jnp.float32(0)), 0.1)
        return jnp.stack([new.dendrite, new.soma])

    jac = np.asarray(jax.jacrev(f)(jnp.asarray([0.2, -0.3])))
    np.testing.assert_allclose(jac, [[1, b1], [b2, 1 + b1 * b2]], rtol=1e-6, atol=1e-7)
    assert np.linalg.det(jac) == pytest.approx(1.0, abs=1e-6)


def test_per_neuron_and_per_layer_parameters():
    layer = TCLIF(init_b=(-0.3, 0.6)).init_params(7)["c"]
    per = TCLIF(init_b=(-0.3, 0.6), per_neuron=True).init_params(7)["c"]
    assert layer.shape == (2,) and per.shape == (7, 2)
    b1, b2 = coupling(per)
    np.testing.assert_allclose(np.asarray(b1), -0.3, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(b2), 0.6, rtol=1e-6)


def test_detach_reset_removes_reset_gradient_only():
    neuron = TCLIF(v_th=1.0, detach_reset=True)
    attached = TCLIF(v_th=1.0)
    params = neuron.init_params(1)

    def soma_after(spike_prev, n):
        st = TCLIFState(jnp.zeros(1), jnp.zeros(1), spike_prev)
        new, _ = n.step(params, st, jnp.zeros(1))
        return new.soma.sum()

    assert float(jax.grad(soma_after)(jnp.ones(1), neuron)[0]) == 0.0
    assert float(jax.grad(soma_after)(jnp.ones(1), attached)[0]) == pytest.approx(-1.0)


def test_lif_orders_and_resets():
    params = {}
    st = LIFState(jnp.asarray([2.0]), jnp.asarray([1.0]))
    off, _ = LIF(decay=0.8, v_th=1.0).step(params, st, jnp.asarray([0.5]))
    pap, _ = LIF(decay=0.8, v_th=1.0, reset_order="paper").step(params, st, jnp.asarray([0.5]))
    hard, _ = LIF(decay=0.8, v_th=1.0, reset="hard").step(params, st, jnp.asarray([0.5]))
    assert float(off.potential[0]) == pytest.approx(0.8 * (2.0 - 1.0) + 0.5)
    assert float(pap.potential[0]) == pytest.approx(0.8 * 2.0 - 1.0 + 0.5)
    assert float(hard.potential[0]) == pytest.approx(0.5)
    learn = LIF(decay=0.9, learn_decay=True)
    assert float(jax.nn.sigmoid(learn.init_params(3)["decay_logit"])) == pytest.approx(0.9)


def test_plif_and_alif_closed_forms():
    plif = PLIF()
    p = plif.init_params(2)
    st, s = plif.step(
        p, LIFState(jnp.asarray([0.5, 0.5]), jnp.asarray([0.0, 1.0])), jnp.asarray([0.2, 0.2])
    )
    k = 1 - _sig(-1.4)
    np.testing.assert_allclose(np.asarray(st.potential), [k * 0.5 + 0.2, 0.2], rtol=1e-6)
    alif = ALIF(tau_m=20.0, tau_adapt=100.0, beta_adapt=1.5, v_th=1.0)
    st0 = alif.init_state((), 1)._replace(spike=jnp.ones(1), potential=jnp.asarray([1.2]))
    st1, s1 = alif.step({}, st0, jnp.asarray([0.3]))
    rho, alpha = np.exp(-1 / 100), np.exp(-1 / 20)
    assert float(st1.adaptation[0]) == pytest.approx(1.0)
    assert float(st1.potential[0]) == pytest.approx(alpha * 1.2 + 0.3 - 1.0, rel=1e-6)
    assert float(s1[0]) == 0.0  # threshold is now 1 + 1.5 * a = 2.5
    st2, _ = alif.step({}, st1, jnp.asarray([0.0]))
    assert float(st2.adaptation[0]) == pytest.approx(rho)


def test_two_compartment_eq7_to_9():
    n = TwoCompartment(decay=(0.9, 0.8), init_b=(0.3, -0.2), v_th=1.0)
    st = TCLIFState(jnp.asarray([1.0]), jnp.asarray([2.0]), jnp.asarray([1.0]))
    new, _ = n.step(n.init_params(1), st, jnp.asarray([0.5]))
    d = 0.9 * 1.0 + 0.3 * 2.0 + 0.5
    assert float(new.dendrite[0]) == pytest.approx(d)
    assert float(new.soma[0]) == pytest.approx(0.8 * 2.0 - 0.2 * d - 1.0)


def test_steps_accept_any_batch_shape():
    n = TCLIF()
    st = n.init_state((2, 3), 4)
    new, s = n.step(n.init_params(4), st, jnp.ones((2, 3, 4)))
    assert s.shape == (2, 3, 4) and new.soma.shape == (2, 3, 4)


def test_make_neuron_unknown_name():
    with pytest.raises(ValueError, match="tclif.*lif.*plif.*alif"):
        make_neuron("izhikevich")
    with pytest.raises(ValueError, match="reset_order"):
        TCLIF(reset_order="backwards")
