"""Execution strategies, the bf16 precision policy, and remat.

* ``layerwise`` and ``fused`` give the same loss and gradients to 1e-5 (ff and recurrent
  presets, a per-neuron/detached-reset/"last"-readout variant). For TC-LIF stacks
  ``fused`` runs the hand-differentiated scan of ``tclif_jax.layers``; it is also checked
  against plain autodiff of the same fused scan (forced with zero probes).
* bf16 matmuls keep master weights, gradients and neuron state in f32 and stay close to f32.
* remat gives the same loss and gradients as no remat; a bad chunk is a clear error.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tclif_jax import layers
from tclif_jax.layers import resolve_strategy, run_network
from tclif_jax.models import SpikingNetwork, apply, from_preset
from tclif_jax.neurons import TCLIF

CASES = {"smnist-ff-64": (4, 24), "smnist-rec-64": (4, 24), "shd-rec": (3, 12)}


def _inputs(model, batch, steps, seed=0):
    f = model.in_features
    k1, k2 = jax.random.split(jax.random.key(seed))
    if f == 1:  # S-MNIST-like pixels in [0, 1]
        x = jax.random.uniform(k1, (batch, steps, f))
    else:       # audio-like spike counts; dense enough to make the first layer fire
        x = (jax.random.uniform(k1, (batch, steps, f)) < 0.3).astype(jnp.float32)
    y = jax.random.randint(k2, (batch,), 0, model.num_classes)
    return x, y


def _loss_and_grads(spec, params, x, y, probes=None):
    def loss(p):
        logits, aux = apply(spec, p, x, probes=probes)
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])
        return ce, (logits, aux["firing_rates"])

    (l, (logits, rates)), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return l, logits, rates, g


@functools.lru_cache(maxsize=None)
def _case(preset, strategy, mdt="float32", remat_chunk=0):
    """(model, x, y, loss/logits/rates/grads) for a preset case, computed once per module."""
    model = from_preset(preset, seed=1, matmul_dtype=mdt)
    x, y = _inputs(model, *CASES[preset])
    spec = dataclasses.replace(model.spec, strategy=strategy, remat_chunk=remat_chunk)
    return model, x, y, _loss_and_grads(spec, model.arrays(), x, y)


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
        np.testing.assert_allclose(np.asarray(z), np.asarray(x), rtol=tol, atol=tol,
                                   err_msg=f"gradient {jax.tree_util.keystr(path)}")


@pytest.mark.parametrize("preset", sorted(CASES))
def test_fused_and_layerwise_same_loss_and_grads(preset):
    lw = _case(preset, "layerwise")[3]
    fu = _case(preset, "fused")[3]
    assert float(jnp.max(lw[2])) > 0, "inputs should make the network spike"
    _assert_same(lw, fu)


def test_hand_written_backward_equals_autodiff_of_the_fused_scan():
    model, x, y, fast = _case("smnist-rec-64", "fused")
    spec = dataclasses.replace(model.spec, strategy="fused")
    zeros = [jnp.zeros(x.shape[:2] + (n,)) for n in model.hidden]  # probes force the autodiff scan
    _assert_same(fast, _loss_and_grads(spec, model.arrays(), x, y, zeros))


def test_variant_per_neuron_detached_last_readout_agrees():
    neuron = TCLIF(v_th=0.5, per_neuron=True, detach_reset=True)
    m = SpikingNetwork(5, (16, 8), 4, neuron, recurrent=(True, False), readout="last",
                       rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (4, 20, 5)) + 0.8
    y = jnp.arange(4)
    _assert_same(_loss_and_grads(dataclasses.replace(m.spec, strategy="layerwise"), m.arrays(), x, y),
                 _loss_and_grads(dataclasses.replace(m.spec, strategy="fused"), m.arrays(), x, y))


def test_fused_tclif_takes_the_hand_differentiated_path():
    model = from_preset("smnist-ff-64", strategy="fused")
    x = jnp.zeros((2, 8, 1))
    jaxpr = str(jax.make_jaxpr(lambda p: apply(model.spec, p, x)[0])(model.arrays()))
    assert "_wave" in jaxpr  # the custom_vjp of the fast fused scan
    assert layers._wave_ok(model.spec, [None] * 3, [None] * 3, record=False)
    assert not layers._wave_ok(model.spec, [None] * 3, [None] * 3, record=True)


def test_auto_strategy_per_backend():
    spec = from_preset("smnist-ff-64", strategy="auto").spec
    assert resolve_strategy(spec, "cpu") == "fused"
    assert resolve_strategy(spec, "gpu") == "layerwise"
    assert resolve_strategy(dataclasses.replace(spec, strategy="layerwise"), "cpu") == "layerwise"
    assert resolve_strategy(spec) == layers.AUTO_STRATEGY.get(jax.default_backend(), "layerwise")


# ----------------------------------------------------------------------------- precision


def test_bf16_policy_keeps_f32_params_grads_and_state_and_strategies_agree():
    results = {}
    for strategy in ("layerwise", "fused"):
        model, x, y, (loss, logits, _, grads) = _case("smnist-rec-64", strategy, "bfloat16")
        assert {str(a.dtype) for a in jax.tree.leaves(model.arrays())} == {"float32"}
        assert logits.dtype == jnp.float32 and loss.dtype == jnp.float32
        assert {str(g.dtype) for g in jax.tree.leaves(grads)} == {"float32"}
        results[strategy] = (loss, logits)
    # neuron state (potentials) stays f32 under the bf16 policy
    _, aux = run_network(model.arrays(), jnp.swapaxes(x, 0, 1), model.spec, record=True)
    assert all(v.dtype == jnp.float32 for v in aux["potentials"])
    # both strategies run the same bf16 products (summation order differs only)
    np.testing.assert_allclose(float(results["layerwise"][0]), float(results["fused"][0]), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(results["layerwise"][1]), np.asarray(results["fused"][1]),
                               rtol=1e-3, atol=1e-2)


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
