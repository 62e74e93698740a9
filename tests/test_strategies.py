"""Execution strategies, the bf16 precision policy, and remat.

* ``layerwise`` and ``fused`` give the same loss and gradients to 1e-5 (ff and recurrent
  presets, a per-neuron/detached-reset/"last"-readout variant). Both run the
  hand-differentiated loops of ``tclif_jax.adjoint`` by default; the fused one is also
  checked against autodiff of the same fused scan (``backward="autodiff"``) here, and every
  neuron, strategy and variant in ``tests/test_adjoint.py``.
* bf16 matmuls keep master weights, gradients and neuron state in f32 and stay close to f32.
* remat gives the same loss and gradients as no remat; a bad chunk is a clear error.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tclif_jax import TCLIF, NetworkConfig, SpikingNetwork, apply, from_preset, parameters
from tclif_jax.network import AUTO_STRATEGY, resolve_strategy, run_network

CASES = {"smnist-ff-64": (4, 24), "smnist-rec-64": (4, 24), "shd-rec": (3, 12)}


def _inputs(model, batch, steps, seed=0):
    f = model.in_features
    k1, k2 = jax.random.split(jax.random.key(seed))
    if f == 1:  # S-MNIST-like pixels in [0, 1]
        x = jax.random.uniform(k1, (batch, steps, f))
    else:  # audio-like spike counts; dense enough to make the first layer fire
        x = (jax.random.uniform(k1, (batch, steps, f)) < 0.3).astype(jnp.float32)
    y = jax.random.randint(k2, (batch,), 0, model.num_classes)
    return x, y


def _loss_and_grads(config, params, x, y, probes=None):
    def loss(p):
        logits, aux = apply(config, p, x, probes=probes)
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])
        return ce, (logits, aux["firing_rates"])

    (l, (logits, rates)), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return l, logits, rates, g


@functools.cache
def _case(preset, strategy, mdt="float32", remat_chunk=0):
    """(model, x, y, loss/logits/rates/grads) for a preset case, computed once per module."""
    model = from_preset(preset, seed=1, matmul_dtype=mdt)
    x, y = _inputs(model, *CASES[preset])
    config = model.config.replace(strategy=strategy, remat_chunk=remat_chunk)
    return model, x, y, _loss_and_grads(config, parameters(model), x, y)


def _assert_same(a, b, tol=1e-5):
    la, lga, ra, ga = a
    lb, lgb, rb, gb = b
    np.testing.assert_allclose(float(la), float(lb), rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(lga), np.asarray(lgb), rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(ra), np.asarray(rb), rtol=tol, atol=tol)
    flat_a = jax.tree_util.tree_flatten_with_path(ga)[0]
    flat_b = jax.tree.leaves(gb)
    assert len(flat_a) == len(flat_b)
    for (path, x), z in zip(flat_a, flat_b):
        # Elementwise |a - b| <= tol * (1 + |a|), as assert_allclose(rtol=tol, atol=tol):
        # the two strategies sum the same terms in different orders (f32 rounding only).
        np.testing.assert_allclose(
            np.asarray(z),
            np.asarray(x),
            rtol=tol,
            atol=tol,
            err_msg=f"gradient {jax.tree_util.keystr(path)}",
        )


@pytest.mark.parametrize("preset", sorted(CASES))
def test_fused_and_layerwise_same_loss_and_grads(preset):
    lw = _case(preset, "layerwise")[3]
    fu = _case(preset, "fused")[3]
    assert float(jnp.max(lw[2])) > 0, "inputs should make the network spike"
    _assert_same(lw, fu)


@pytest.mark.parametrize("preset", ["smnist-rec-64", "shd-rec"])
def test_hand_written_backward_equals_autodiff_of_the_fused_scan(preset):
    model, x, y, fast = _case(preset, "fused")
    autodiff = model.config.replace(strategy="fused", backward="autodiff")
    _assert_same(fast, _loss_and_grads(autodiff, parameters(model), x, y))


def test_variant_per_neuron_detached_last_readout_agrees():
    neuron = TCLIF(v_th=0.5, per_neuron=True, detach_reset=True)
    config = NetworkConfig(5, (16, 8), 4, neuron, recurrent=(True, False), readout="last")
    m = SpikingNetwork(config, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (4, 20, 5)) + 0.8
    y = jnp.arange(4)
    params = parameters(m)
    _assert_same(
        _loss_and_grads(config.replace(strategy="layerwise"), params, x, y),
        _loss_and_grads(config.replace(strategy="fused"), params, x, y),
    )


def _jaxpr(config, params, x, **kwargs):
    return str(jax.make_jaxpr(lambda p: apply(config, p, x, **kwargs)[0])(params))


def test_both_strategies_take_the_hand_differentiated_path_unless_told_otherwise():
    model = from_preset("smnist-ff-64", strategy="fused")
    x, params = jnp.zeros((2, 8, 1)), parameters(model)
    fused, layerwise = model.config, model.config.replace(strategy="layerwise")
    assert "bwd=_network_bwd" in _jaxpr(fused, params, x)  # the fused loop's custom_vjp
    assert _jaxpr(layerwise, params, x).count("bwd=_layer_bwd") == 3  # one per layer
    for config in (fused, layerwise):
        for text in (
            _jaxpr(config.replace(backward="autodiff"), params, x),
            _jaxpr(config, params, x, record=True),
        ):
            assert "bwd=_network_bwd" not in text and "bwd=_layer_bwd" not in text
    lif = from_preset("smnist-ff-64", strategy="fused", neuron="lif")
    assert "bwd=_network_bwd" in _jaxpr(lif.config, parameters(lif), x)


def test_auto_strategy_per_backend():
    config = from_preset("smnist-ff-64", strategy="auto").config
    assert resolve_strategy(config, "cpu") == "fused"
    assert resolve_strategy(config, "gpu") == "layerwise"
    assert resolve_strategy(config.replace(strategy="layerwise"), "cpu") == "layerwise"
    assert resolve_strategy(config) == AUTO_STRATEGY.get(jax.default_backend(), "layerwise")


# ----------------------------------------------------------------------------- precision


def test_bf16_policy_keeps_f32_params_grads_and_state_and_strategies_agree():
    results = {}
    for strategy in ("layerwise", "fused"):
        model, x, y, (loss, logits, _, grads) = _case("smnist-rec-64", strategy, "bfloat16")
        assert {str(a.dtype) for a in jax.tree.leaves(parameters(model))} == {"float32"}
        assert logits.dtype == jnp.float32 and loss.dtype == jnp.float32
        assert {str(g.dtype) for g in jax.tree.leaves(grads)} == {"float32"}
        results[strategy] = (loss, logits)
    # neuron state (potentials) stays f32 under the bf16 policy
    _, aux = run_network(model.config, parameters(model), jnp.swapaxes(x, 0, 1), record=True)
    assert all(v.dtype == jnp.float32 for st in aux["states"] for v in st.values())
    # both strategies run the same bf16 products (summation order differs only)
    np.testing.assert_allclose(
        float(results["layerwise"][0]), float(results["fused"][0]), rtol=1e-3
    )
    np.testing.assert_allclose(
        np.asarray(results["layerwise"][1]), np.asarray(results["fused"][1]), rtol=1e-3, atol=1e-2
    )


def test_bf16_logits_close_to_f32():
    # bf16 operands carry 8 significant bits (relative rounding <= 2^-9 per operand; the
    # products are exact in f32 and accumulate in f32), so a current moves by ~0.4% at most
    # and only a neuron within that margin of its threshold can flip a spike. Measured over
    # seeds: <= 0.6% of spikes flip per layer in 30 steps, the mean |logit difference| is
    # ~1% of the logit scale (a flip moves a logit by one readout weight, <= 1/16 here), and
    # >= 95% of predicted classes agree. The bounds below leave ~3x margin.
    f32 = from_preset("smnist-ff-64", seed=3)
    bf16 = from_preset("smnist-ff-64", seed=3, matmul_dtype="bfloat16")
    x, _ = _inputs(f32, 64, 30, seed=4)
    la, aux_a = f32(x, record=True)
    lb, aux_b = bf16(x, record=True)
    a, b = np.asarray(la), np.asarray(lb)
    for sa, sb in zip(aux_a["spikes"], aux_b["spikes"]):
        assert float(jnp.mean(sa != sb)) <= 0.02
    assert np.abs(a - b).mean() <= 0.03 * np.abs(a).max()
    assert np.mean(a.argmax(-1) == b.argmax(-1)) >= 0.9


# ----------------------------------------------------------------------------- remat


@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
def test_remat_same_loss_and_grads(strategy):
    plain = _case("smnist-rec-64", strategy)[3]
    remat = _case("smnist-rec-64", strategy, remat_chunk=6)[3]
    _assert_same(plain, remat)


def test_bad_remat_chunk_is_a_clear_error():
    model = from_preset("smnist-ff-64", remat_chunk=7)
    with pytest.raises(ValueError, match=r"remat_chunk=7 must divide the sequence length T=40"):
        model(jnp.zeros((2, 40, 1)))
