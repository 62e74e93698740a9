"""Neuron steps: closed forms of one step, reset orders, and Jacobians by autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tclif_jax.neurons import (
    ALIF,
    GLIF,
    LIF,
    PLIF,
    TCLIF,
    ALIFOfficial,
    ALIFState,
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


def test_plif_closed_form():
    plif = PLIF()
    p = plif.init_params(2)
    st, s = plif.step(
        p, LIFState(jnp.asarray([0.5, 0.5]), jnp.asarray([0.0, 1.0])), jnp.asarray([0.2, 0.2])
    )
    k = 1 - _sig(-1.4)
    np.testing.assert_allclose(np.asarray(st.potential), [k * 0.5 + 0.2, 0.2], rtol=1e-6)


def test_alif_one_step_is_lsnn():
    # Bellec et al. (2018), LSNN: a[t] = rho a[t-1] + (1 - rho) S[t-1], A = v_th + beta a.
    alif = ALIF(tau_m=20.0, tau_adapt=100.0, beta_adapt=1.5, v_th=1.0)
    rho, alpha = np.exp(-1 / 100), np.exp(-1 / 20)
    st0 = ALIFState(jnp.asarray([1.2]), jnp.asarray([0.4]), jnp.ones(1))
    st1, s1 = alif.step({}, st0, jnp.asarray([0.3]))
    a1 = rho * 0.4 + (1 - rho) * 1.0
    assert float(st1.adaptation[0]) == pytest.approx(a1, rel=1e-6)
    # the reset subtracts the threshold S[t-1] crossed: 1 + 1.5 * 0.4
    assert float(st1.potential[0]) == pytest.approx(alpha * 1.2 + 0.3 - 1.6, rel=1e-5)
    st2, _ = alif.step({}, st1, jnp.asarray([0.0]))
    assert float(st2.adaptation[0]) == pytest.approx(rho * a1, rel=1e-6)


def test_alif_sequence_matches_lsnn_closed_form():
    # The LSNN recursion in float64 numpy, written from the equations (not the code).
    rng = np.random.default_rng(0)
    tau_m, tau_a, beta, v_th = 20.0, 700.0, 1.8, 1.0
    alif = ALIF(tau_m=tau_m, tau_adapt=tau_a, beta_adapt=beta, v_th=v_th)
    alpha, rho = np.exp(-1 / tau_m), np.exp(-1 / tau_a)
    xs = rng.uniform(0.0, 0.6, (300, 6)).astype(np.float32)
    u, a, s = np.zeros(6), np.zeros(6), np.zeros(6)
    state = alif.init_state((), 6)
    spikes = []
    for x in xs:
        reset = (v_th + beta * a) * s
        a = rho * a + (1 - rho) * s
        u = alpha * u + x - reset
        s = (u >= v_th + beta * a).astype(np.float64)
        state, spike = alif.step({}, state, jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(spike), s)
        np.testing.assert_allclose(np.asarray(state.adaptation), a, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.asarray(state.potential), u, rtol=1e-4, atol=1e-5)
        spikes.append(s)
    rate = np.mean(spikes)
    assert 0.02 < rate < 0.5, rate
    assert np.all(a <= 1.0)  # a is a running average of spikes: the threshold stays bounded


def _official_alif_numpy(c, xs, v_th=0.01, beta=1.8):
    """The official ALIF module (TC-LIF repository, MNIST/spiking_neuron/ALIF.py) in float64:
    its memories (v, v1, yita, threshold = 1) and single_step_forward's call order:
    neuronal_charge (fire against the old threshold, adapt, integrate), neuronal_fire,
    neuronal_reset (soft, by the threshold, of v1 and v)."""
    sig = 1.0 / (1.0 + np.exp(-np.asarray(c, np.float64)))
    alpha, r0 = np.exp(-1.0 / sig[0]), np.exp(-1.0 / sig[1])
    v = v1 = yita = np.zeros(xs.shape[1])
    threshold = np.ones(xs.shape[1])
    out = []
    for x in xs:
        spike_last = (v - threshold >= 0).astype(np.float64)
        yita = r0 * yita + (1 - r0) * spike_last
        threshold = v_th + beta * yita
        v1 = alpha * v1 + (1 - alpha) * x
        v = v1
        spike = (v - threshold >= 0).astype(np.float64)
        out.append((v.copy(), yita.copy(), spike))
        v1 = v1 - spike * threshold
        v = v - spike * threshold
    return out


def test_official_alif_matches_the_official_module():
    rng = np.random.default_rng(1)
    c = (1.1, 0.6)
    neuron = ALIFOfficial(init_c=c)
    params = neuron.init_params(7)
    assert params["c"].shape == (2,) and neuron.v_th == 0.01 and neuron.beta_adapt == 1.8
    xs = rng.uniform(-0.2, 1.5, (80, 7)).astype(np.float32)
    state = neuron.init_state((), 7)
    reference = _official_alif_numpy(c, xs)
    for x, (v, yita, spike) in zip(xs, reference):
        state, s = neuron.step(params, state, jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(s), spike)
        np.testing.assert_allclose(np.asarray(state.potential), v, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(state.adaptation), yita, rtol=1e-5, atol=1e-7)
    assert 0.05 < np.mean([spike for _, _, spike in reference]) < 0.95
    assert np.max([yita for _, yita, _ in reference]) > 0.1  # the threshold adapted


def test_official_alif_adapts_only_on_a_double_crossing():
    # eta grows from S'[t-1] = H(v[t-1] - theta S[t-1] - theta): after a spike, only if the
    # potential was at least twice the threshold (official call order).
    neuron = ALIFOfficial(init_c=(0.0, 0.0))
    params = neuron.init_params(2)
    st = ALIFState(jnp.asarray([0.015, 0.025]), jnp.zeros(2), jnp.ones(2))  # theta = 0.01
    new, _ = neuron.step(params, st, jnp.zeros(2))
    r = np.exp(-2.0)  # exp(-1 / sigmoid(0))
    np.testing.assert_allclose(np.asarray(new.adaptation), [0.0, 1 - r], rtol=1e-6)


def _glif_numpy(p, u, o, x):
    """One GLIF step from its paper (Yao et al. 2022) as the official code writes it
    (Gated-LIF, layers.py, LIFSpike_CW.extended_state_update, soft gates), float64."""
    sig = {k: 1.0 / (1.0 + np.exp(-np.asarray(v, np.float64))) for k, v in p.items()}
    al, be, ga = sig["alpha"], sig["beta"], sig["gamma"]
    i_t = x * (1 - be * (1 - sig["conduct"]))
    u = (
        (1 - al * (1 - sig["tau"])) * u * (1 - ga * o)
        - (1 - al) * sig["leak"]
        + i_t
        - (1 - ga) * sig["reset"] * o
    )
    return u, (u - sig["threshold"] > 0).astype(np.float64)  # SpikeAct_extended: gt(x, 0)


def test_glif_matches_its_closed_form():
    rng = np.random.default_rng(2)
    n = 6
    neuron = GLIF()
    p0 = neuron.init_params(n)
    assert set(p0) == {"alpha", "beta", "gamma", "tau", "threshold", "leak", "reset", "conduct"}
    assert all(v.shape == (n,) for v in p0.values())
    np.testing.assert_allclose(_sig(np.asarray(p0["tau"])), 0.25, rtol=1e-6)
    np.testing.assert_allclose(_sig(np.asarray(p0["reset"])), 0.5, rtol=1e-6)  # = V_th
    np.testing.assert_allclose(_sig(np.asarray(p0["alpha"])), 0.55, rtol=1e-6)
    # per-neuron values spread around the defaults, gates from hard to soft
    params = {k: v + jnp.asarray(rng.normal(0, 1.0, n), jnp.float32) for k, v in p0.items()}
    xs = rng.uniform(0.0, 1.5, (50, n)).astype(np.float32)
    u, o = np.zeros(n), np.zeros(n)
    state = neuron.init_state((), n)
    total = 0.0
    for x in xs:
        u, o = _glif_numpy({k: np.asarray(v) for k, v in params.items()}, u, o, x)
        state, s = neuron.step(params, state, jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(s), o)
        np.testing.assert_allclose(np.asarray(state.potential), u, rtol=1e-5, atol=1e-6)
        total += o.sum()
    assert 0 < total < xs.size
    # the learned threshold is the one the spike is taken against
    thr = neuron.threshold(neuron.state_vector(state), params)
    np.testing.assert_allclose(np.asarray(thr), _sig(np.asarray(params["threshold"])), rtol=1e-6)


def test_glif_gates_reduce_to_lif_forms():
    # alpha = 1, beta = 0, gamma = 0: exponential decay tau, full input, soft reset by V_R.
    neuron = GLIF()
    big = 30.0  # sigmoid(+-30) is 1 or 0 in float32
    p = {k: jnp.full((1,), v) for k, v in neuron.init_params(1).items()}
    p.update(alpha=jnp.full((1,), big), beta=jnp.full((1,), -big), gamma=jnp.full((1,), -big))
    st = LIFState(jnp.asarray([0.8]), jnp.asarray([1.0]))
    new, _ = neuron.step(p, st, jnp.asarray([0.3]))
    assert float(new.potential[0]) == pytest.approx(0.25 * 0.8 + 0.3 - 0.5, rel=1e-5)
    # gamma = 1: hard reset (the decayed potential is zeroed by the spike)
    p.update(gamma=jnp.full((1,), big))
    new, _ = neuron.step(p, st, jnp.asarray([0.3]))
    assert float(new.potential[0]) == pytest.approx(0.3, rel=1e-5)
    with pytest.raises(ValueError, match=r"sigmoid.*\(0, 1\)"):
        GLIF(v_th=1.5)


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
    with pytest.raises(ValueError, match="tclif.*lif.*plif.*alif.*alif_official.*glif"):
        make_neuron("izhikevich")
    with pytest.raises(ValueError, match="reset_order"):
        TCLIF(reset_order="backwards")
