"""Execution (``tclif_jax.execution``): strategies, the bf16 policy, remat, validation.

* ``layerwise`` and ``fused`` give the same loss and gradients to 1e-5: the one test of
  that (ff and recurrent presets, a per-neuron/detached-reset/"last"-readout variant, and
  dropout, whose masks the strategies share). Each strategy's hand-written adjoint against
  autodiff is ``tests/test_adjoint.py``.
* ``Execution`` validates every choice at construction.
* bf16 matmuls keep master weights, gradients and neuron state in f32 and stay close to f32.
* remat gives the same loss and gradients as no remat; a bad chunk is a clear error.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tclif_jax import (
    TCLIF,
    Execution,
    NetworkConfig,
    SpikingNetwork,
    apply,
    from_preset,
    parameters,
)
from tclif_jax.execution import AUTO_STRATEGY
from tclif_jax.network import run_network

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


def _loss_and_grads(config, params, x, y, execution, dropout_key=None):
    def loss(p):
        logits, aux = apply(config, p, x, execution, dropout_key=dropout_key)
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])
        return ce, (logits, aux["firing_rates"])

    (l, (logits, rates)), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    return l, logits, rates, g


@functools.cache
def _case(preset, strategy, mdt="float32", remat_chunk=0):
    """(model, x, y, loss/logits/rates/grads) for a preset case, computed once per module."""
    model = from_preset(preset, seed=1)
    x, y = _inputs(model, *CASES[preset])
    ex = Execution(strategy=strategy, remat_chunk=remat_chunk, matmul_dtype=mdt)
    return model, x, y, _loss_and_grads(model.config, parameters(model), x, y, ex)


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


def _variant():
    """Per-neuron c, detached reset, the "last" readout and dropout on a recurrent layer."""
    neuron = TCLIF(v_th=0.5, per_neuron=True, detach_reset=True)
    config = NetworkConfig(
        5, (16, 8), 4, neuron, recurrent=(True, False), readout="last", dropout=0.3
    )
    m = SpikingNetwork(config, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (4, 20, 5)) + 0.8
    return config, parameters(m), x, jnp.arange(4)


@pytest.mark.parametrize("case", [*sorted(CASES), "variant-dropout"])
def test_strategies_agree(case):
    if case in CASES:
        lw, fu = _case(case, "layerwise")[3], _case(case, "fused")[3]
    else:
        config, params, x, y = _variant()
        key = jax.random.key(5)
        lw, fu = (
            _loss_and_grads(config, params, x, y, Execution(strategy=s), key)
            for s in ("layerwise", "fused")
        )
    assert float(jnp.max(lw[2])) > 0, "inputs should make the network spike"
    _assert_same(lw, fu)


def _jaxpr(config, params, x, execution, **kwargs):
    return str(jax.make_jaxpr(lambda p: apply(config, p, x, execution, **kwargs)[0])(params))


def test_both_strategies_take_the_hand_differentiated_path_unless_told_otherwise():
    model = from_preset("smnist-ff-64")
    x, params, config = jnp.zeros((2, 8, 1)), parameters(model), model.config
    fused, layerwise = Execution(strategy="fused"), Execution(strategy="layerwise")
    assert "bwd=_network_bwd" in _jaxpr(config, params, x, fused)  # the fused loop's custom_vjp
    assert _jaxpr(config, params, x, layerwise).count("bwd=_layer_bwd") == 3  # one per layer
    for ex in (fused, layerwise):
        for text in (
            _jaxpr(config, params, x, ex.replace(backward="autodiff")),
            _jaxpr(config, params, x, ex, record=True),
        ):
            assert "bwd=_network_bwd" not in text and "bwd=_layer_bwd" not in text
    lif = from_preset("smnist-ff-64", neuron="lif")
    assert "bwd=_network_bwd" in _jaxpr(lif.config, parameters(lif), x, fused)


def test_auto_strategy_per_backend():
    auto = Execution()
    assert auto.resolved_strategy("cpu") == "fused"
    assert auto.resolved_strategy("gpu") == "layerwise"
    assert Execution(strategy="layerwise").resolved_strategy("cpu") == "layerwise"
    assert auto.resolved_strategy() == AUTO_STRATEGY.get(jax.default_backend(), "layerwise")


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "strategy",
            "magic",
            "strategy='magic' is not valid; choose one of: auto, layerwise, fused.",
        ),
        ("backward", "manual", "backward='manual' is not valid; choose one of: auto, autodiff."),
        (
            "matmul_dtype",
            "float16",
            "matmul_dtype='float16' is not valid; choose one of: float32, bfloat16.",
        ),
        (
            "matmul_precision",
            "tf32",
            "matmul_precision='tf32' is not valid; choose one of: highest, high, default.",
        ),
        ("remat_chunk", -1, "remat_chunk=-1 must be an integer >= 0 (0 = off)."),
        ("remat_chunk", 2.5, "remat_chunk=2.5 must be an integer >= 0 (0 = off)."),
    ],
)
def test_execution_validates_every_choice(field, value, message):
    with pytest.raises(ValueError) as err:
        Execution(**{field: value})
    assert str(err.value) == message
    with pytest.raises(ValueError, match="Unknown execution setting.*'stratgy'"):
        Execution().replace(stratgy="fused")
    assert Execution.from_dict({"strategy": "fused", "remat_chunk": None}) == Execution("fused")


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
    _, aux = run_network(
        model.config,
        model.params(),
        jnp.swapaxes(x, 0, 1),
        Execution(matmul_dtype="bfloat16"),
        record=True,
    )
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
    with pytest.raises(ValueError, match=r"remat_chunk=7 must divide the sequence length T=40"):
        model(jnp.zeros((2, 40, 1)), execution=Execution(strategy="layerwise", remat_chunk=7))
