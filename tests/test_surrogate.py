"""Surrogate spike functions: exact Heaviside forward, closed-form backward via custom_vjp."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tclif_jax.surrogate import SURROGATES, Surrogate, get_surrogate

XS = np.linspace(-3.0, 3.0, 241).astype(np.float32)  # includes exactly 0 and +-0.5, +-1


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
    if name == "rectangle":
        return (np.abs(x) < w / 2.0) / w
    if name == "exponential":
        return np.exp(-np.abs(x) / w) / w
    if name == "multi_gaussian":
        g = lambda x, mu, s: np.exp(-((x - mu) ** 2) / (2 * s**2)) / (math.sqrt(2 * math.pi) * s)  # noqa: E731
        return g(x, 0, w) * 1.15 - 0.15 * g(x, w, 6 * w) - 0.15 * g(x, -w, 6 * w)
    raise AssertionError(name)


@pytest.mark.parametrize("name", SURROGATES)
def test_forward_is_exact_heaviside_with_h0_equal_1(name):
    s = get_surrogate(name)(jnp.asarray(XS))
    np.testing.assert_array_equal(np.asarray(s), (XS >= 0).astype(np.float32))
    assert float(get_surrogate(name)(jnp.float32(0.0))) == 1.0
    assert float(get_surrogate(name)(jnp.float32(-1e-7))) == 0.0


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
    with pytest.raises(ValueError, match="triangle.*sigmoid.*multi_gaussian"):
        get_surrogate("gaussianish")
    with pytest.raises(ValueError, match="width"):
        Surrogate("triangle", 0.0)


def test_surrogate_is_hashable_static_argument():
    f = jax.jit(lambda x, s: s(x), static_argnums=1)
    assert float(f(jnp.float32(1.0), Surrogate("arctan", 2.0))) == 1.0
