"""Surrogate spike functions: exact Heaviside forward, closed-form backward via custom_vjp.

The closed forms below are written from independent sources, not from the implementation:
the triangle from the paper's Eq. 21; sigmoid, fast sigmoid (SuperSpike, Zenke & Ganguli
2018), arctan and the multi-Gaussian from their definitions (arctan and sigmoid as
spikingjelly writes them, which the official repository's MNIST/surrogate.py copies);
rectangle, exponential and ``official_gau`` from the official repository's
MNIST/surrogate.py (``Rectangle``, ``SingleExponential``, ``ActFun_adp``);
``official_glif`` from the Gated-LIF repository's layers.py (``SpikeAct_extended``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from tclif_jax import GLIF, Execution, NetworkConfig, apply, from_config, from_preset, make_neuron
from tclif_jax.params import Dense
from tclif_jax.surrogate import SURROGATES, Surrogate, get_surrogate

XS = np.linspace(-3.0, 3.0, 241).astype(np.float32)  # includes exactly 0 and +-0.5, +-1
# The surrogates whose official forward is x > 0 (H(0) = 0): TC-LIF's "gau", Gated-LIF's.
STRICT = {"official_gau", "official_glif"}


def closed_form(name, x, w):
    x = np.asarray(x, np.float64)
    if name == "triangle":
        return np.maximum(0.0, 1.0 - np.abs(x) / w) / w
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-w * x))
        return w * s * (1.0 - s)
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + w * np.abs(x)) ** 2
    if name == "arctan":
        return (w / 2.0) / (1.0 + (math.pi / 2.0 * w * x) ** 2)
    if name in ("rectangle", "official_glif"):  # Gated-LIF: 1{|x| < 0.5} at w = 1
        return (np.abs(x) < w / 2.0) / w
    if name == "exponential":
        return np.exp(-np.abs(x) / w) / w
    g = lambda x, mu, s: np.exp(-((x - mu) ** 2) / (2 * s**2)) / (math.sqrt(2 * math.pi) * s)  # noqa: E731
    if name == "multi_gaussian":
        return g(x, 0, w) * 1.15 - 0.15 * g(x, w, 6 * w) - 0.15 * g(x, -w, 6 * w)
    if name == "official_gau":  # ActFun_adp: lens = w, scale 6, height 0.15, times gamma 0.5
        return 0.5 * (g(x, 0, w) * 1.15 - 0.15 * g(x, w, 6 * w) - 0.15 * g(x, -w, 6 * w))
    raise AssertionError(name)


@pytest.mark.parametrize("name", SURROGATES)
def test_forward_is_exact_heaviside_with_its_h0(name):
    sur = get_surrogate(name)
    h0 = name not in STRICT
    assert sur.fires_at_zero is h0
    s = sur(jnp.asarray(XS))
    expected = (XS >= 0) if h0 else (XS > 0)
    np.testing.assert_array_equal(np.asarray(s), expected.astype(np.float32))
    assert float(sur(jnp.float32(0.0))) == float(h0)
    assert float(sur(jnp.float32(-1e-7))) == 0.0 and float(sur(jnp.float32(1e-7))) == 1.0


def test_official_gau_on_a_grid_against_the_official_formula():
    # The official ActFun_adp (MNIST/surrogate.py): forward input.gt(0); backward
    # 0.5 * [1.15 G(x; 0, 0.5) - 0.15 G(x; 0.5, 3) - 0.15 G(x; -0.5, 3)], G the normal
    # density (scipy's, not ours).
    x = np.linspace(-4.0, 4.0, 801).astype(np.float32)  # includes 0 and +-0.5
    expected = 0.5 * (
        1.15 * norm.pdf(x, 0.0, 0.5) - 0.15 * norm.pdf(x, 0.5, 3.0) - 0.15 * norm.pdf(x, -0.5, 3.0)
    )
    sur = get_surrogate("official_gau")
    assert sur.width == 0.5
    grads = jax.vmap(jax.grad(lambda v: sur(v)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(grads), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(sur(jnp.asarray(x))), (x > 0).astype(np.float32))
    # multi_gaussian is the same shape without the 0.5 and with H(0) = 1
    mg = jax.vmap(jax.grad(lambda v: get_surrogate("multi_gaussian")(v)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(mg), 2 * expected, rtol=1e-5, atol=1e-7)


def test_official_glif_against_the_gated_lif_code():
    # SpikeAct_extended (Gated-LIF, layers.py): forward gt(x, 0.); backward the incoming
    # gradient times float(|x| < 0.5), so exactly 1 inside, 0 outside and at |x| = 0.5.
    x = np.array([-2.0, -0.5, -0.4999, -0.25, -1e-7, 0.0, 1e-7, 0.25, 0.4999, 0.5, 2.0], np.float32)
    sur = get_surrogate("official_glif")
    assert (sur.width, sur.fires_at_zero) == (1.0, False)
    np.testing.assert_array_equal(
        np.asarray(sur(jnp.asarray(x))), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    )
    grads = jax.vmap(jax.grad(lambda v: sur(v)))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(grads), [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    # the same backward as the rectangle of width 1; only H(0) differs
    rect = get_surrogate("rectangle")
    np.testing.assert_array_equal(np.asarray(rect.derivative(jnp.asarray(x))), np.asarray(grads))
    assert float(rect(jnp.float32(0.0))) == 1.0


def _glif_at_threshold(neuron, offset):
    # One GLIF step from rest with alpha = 1 and beta = 0 (sigmoid(+-30) in float32), so
    # U[t] = I[t] exactly; I[t] = V_th + offset. Returns (S[t], dS[t]/dI[t]).
    p = dict(neuron.init_params(1))
    p.update(alpha=jnp.full((1,), 30.0), beta=jnp.full((1,), -30.0))
    v_th = jax.nn.sigmoid(p["threshold"])

    def spike(current):
        return neuron.step(p, neuron.init_state((), 1), current)[1][0]

    current = v_th + jnp.float32(offset)
    return float(spike(current)), float(jax.grad(spike)(current)[0])


def test_glif_defaults_to_the_official_gated_lif_surrogate():
    glif = GLIF()
    assert glif.surrogate == Surrogate("official_glif", 1.0, fires_at_zero=False)
    assert make_neuron("glif").surrogate == glif.surrogate
    # at the threshold exactly it does not fire; just above it does; gradient 1 in |x| < 0.5
    assert _glif_at_threshold(glif, 0.0) == (0.0, 1.0)
    assert _glif_at_threshold(glif, 0.25) == (1.0, 1.0)
    assert _glif_at_threshold(glif, -0.25) == (0.0, 1.0)
    assert _glif_at_threshold(glif, 0.75) == (1.0, 0.0)
    assert _glif_at_threshold(glif, -0.75) == (0.0, 0.0)
    # another surrogate is still a setting away, with its own H(0) and backward
    tri = make_neuron("glif", surrogate="triangle")
    assert _glif_at_threshold(tri, 0.0) == (1.0, 1.0)
    assert _glif_at_threshold(tri, 0.25) == pytest.approx((1.0, 0.75))
    # a width alone changes the default surrogate's width, not the surrogate
    wide = make_neuron("glif", surrogate_width=2.0).surrogate
    assert wide == Surrogate("official_glif", 2.0, fires_at_zero=False)


def test_the_heaviside_convention_can_be_set_and_survives_a_width_change():
    assert Surrogate("triangle", fires_at_zero=False)(jnp.float32(0.0)) == 0.0
    assert Surrogate("official_gau", fires_at_zero=True)(jnp.float32(0.0)) == 1.0
    n = from_preset("shd-ff", surrogate="official_gau", surrogate_width=0.7).layers[0].neuron
    assert (n.surrogate.width, n.surrogate.fires_at_zero) == (0.7, False)


def _first_step_at_threshold(surrogate, strategy, backward="auto"):
    # One TC-LIF neuron whose soma is exactly V_th at the first step: sigmoid(0) * 2.0 = 1.
    config = NetworkConfig(
        1, (1, 3), 2, "tclif", dict(init_c=(0.0, 0.0), v_th=1.0, surrogate=surrogate)
    )
    params = from_config(config, seed=0).params()
    first = params.layers[0]._replace(dense=Dense(jnp.ones((1, 1)), jnp.zeros((1,))))
    params = params._replace(layers=(first, *params.layers[1:]))
    ex = Execution(strategy=strategy, backward=backward)
    _, aux = apply(config, params, jnp.full((1, 1, 1), 2.0), ex)  # one step
    return float(aux["firing_rates"][0])  # the first layer's one spike, or none


@pytest.mark.parametrize(
    "strategy,backward", [("layerwise", "auto"), ("fused", "auto"), ("fused", "autodiff")]
)
def test_every_strategy_honours_the_heaviside_convention(strategy, backward):
    # the hand-written adjoints (backward=auto) recompute spikes from the soma: it must use H(0)
    assert _first_step_at_threshold("triangle", strategy, backward) == 1.0
    assert _first_step_at_threshold("official_gau", strategy, backward) == 0.0


@pytest.mark.parametrize("name", SURROGATES)
@pytest.mark.parametrize("width", [0.5, 1.0, 2.5])
def test_grad_equals_closed_form(name, width):
    sur = Surrogate(name, width)
    grads = jax.vmap(jax.grad(lambda x: sur(x)))(jnp.asarray(XS))
    np.testing.assert_allclose(
        np.asarray(grads), closed_form(name, XS, width), rtol=1e-5, atol=1e-6
    )


def test_triangle_width_one_is_paper_eq21():
    # dS/dU = max(0, 1 - |U - V_th|), V_th = 1.3
    v_th = 1.3
    u = jnp.asarray([0.2, 0.8, 1.3, 1.9, 2.5])
    g = jax.vmap(jax.grad(lambda u: get_surrogate("triangle")(u - v_th)))(u)
    np.testing.assert_allclose(np.asarray(g), [0.0, 0.5, 1.0, 0.4, 0.0], atol=1e-6)


def test_custom_vjp_is_used():
    # The true derivative of a step is 0 away from 0; the surrogate's is not.
    g = jax.grad(lambda x: get_surrogate("triangle")(x))(jnp.float32(0.25))
    assert float(g) == pytest.approx(0.75)
    g = jax.grad(lambda x: get_surrogate("sigmoid", 4.0)(x))(jnp.float32(-0.3))
    assert float(g) > 0.1


def test_unknown_surrogate_lists_valid_names():
    with pytest.raises(ValueError, match="triangle.*sigmoid.*multi_gaussian.*official_gau"):
        get_surrogate("gaussianish")
    with pytest.raises(ValueError, match="width"):
        Surrogate("triangle", 0.0)
    with pytest.raises(
        ValueError, match=r"^Surrogate 'arctan': width=nan is not valid; give a fin"
    ):
        Surrogate("arctan", float("nan"))
    with pytest.raises(ValueError, match=r"^Surrogate 'official_glif': fires_at_zero='no' is not"):
        Surrogate("official_glif", fires_at_zero="no")


def test_surrogate_is_hashable_static_argument():
    f = jax.jit(lambda x, s: s(x), static_argnums=1)
    assert float(f(jnp.float32(1.0), Surrogate("arctan", 2.0))) == 1.0
