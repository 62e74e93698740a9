"""The hand-written adjoints (``tclif_jax.adjoint``, ``Neuron.adjoint``) against autodiff.

One step of every registered neuron's adjoint against ``jax.vjp`` of its step (``NEURONS``:
a new one is covered without editing this file). At network level, ``backward="auto"`` (the
custom_vjp scans) gives the loss, logits, firing rates and every parameter gradient of
``backward="autodiff"`` (JAX's autodiff of the same scan) to 1e-5, on inputs that make
every layer spike: every neuron in one recurrent network with dropout, and both strategies,
feed-forward and recurrent, for a representative set (TC-LIF; GLIF, which saves its input
current; LIF). Then the variants (each under one strategy, alternating): per-neuron parameters, detached resets, the official
gau surrogate (H(0) = 0), LIF's learned decay, hard reset and paper order, TC-LIF's paper
order, three layers with mixed recurrence and the "last" readout; one step of every
neuron's adjoint against ``jax.vjp`` of its step; the ``jax.vjp`` default a neuron without
a hand-written adjoint gets; chunked residuals (remat); the bf16 policy; the initial
state's adjoint; and jaxpr checks that "auto" takes the custom_vjp path and that probes,
records and "autodiff" do not.
"""

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tclif_jax import NEURONS, Execution, NetworkConfig, apply, from_config, make_neuron, parameters
from tclif_jax.layers import SpikingDense
from tclif_jax.network import scan_layer
from tclif_jax.neurons import LIF, Neuron

NAMES = sorted(NEURONS)
B, T, F = 3, 16, 6
# Both sides of every comparison compile with LLVM's optimisations off: the same HLO, one
# quarter of the compile time (~1 s instead of ~4.5 s per program on this CPU).
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _settings(name):
    # A threshold every neuron reaches on the inputs below (alif_official keeps its own
    # 0.01: the official module ignores the one a script passes, and it must stay > 0).
    return {} if name == "alif_official" else {"v_th": 0.5}


def _data(seed=3):
    x = jax.random.normal(jax.random.key(seed), (B, T, F)) + 0.7
    return x, jnp.arange(B) % 4


def _loss_and_grads(config, params, x, y, execution, dropout_key=None, probes=None):
    def loss(p):
        logits, aux = apply(config, p, x, execution, dropout_key=dropout_key, probes=probes)
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])
        return ce, (logits, aux["firing_rates"])

    step = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(params)
    (l, (logits, rates)), g = step.compile(compiler_options=FAST_COMPILE)(params)
    return l, logits, rates, g


def _assert_same(want, got, tol=1e-5):
    """Loss, logits, rates and every gradient: |got - want| <= tol (1 + |want|) elementwise,
    as ``tests/test_strategies.py`` (the two sum the same terms in different orders)."""
    assert jax.tree.structure(got[3]) == jax.tree.structure(want[3])
    flat = jax.tree_util.tree_flatten_with_path((want[:3], want[3]))[0]
    for (path, w), g in zip(flat, jax.tree.leaves((got[:3], got[3]))):
        np.testing.assert_allclose(
            np.asarray(g), np.asarray(w), rtol=tol, atol=tol, err_msg=jax.tree_util.keystr(path)
        )


def _params(config, seed=1):
    """The network's parameters, the hidden layers' input weights tripled so that every
    layer fires on ``_data`` (PyTorch's init drives a 10-wide layer's successor weakly)."""
    typed = from_config(config, seed=seed).params()
    layers = [
        lp if i == 0 else lp._replace(dense=lp.dense._replace(kernel=3.0 * lp.dense.kernel))
        for i, lp in enumerate(typed.layers)
    ]
    return typed._replace(layers=tuple(layers))


def _check(config, strategy, seed=1, dropout=False, tol=1e-5):
    """``backward="auto"`` against ``"autodiff"`` on one config; returns the rates."""
    params = _params(config, seed)
    x, y = _data()
    key = jax.random.key(7) if dropout else None
    ex = Execution(strategy=strategy)
    auto = _loss_and_grads(config, params, x, y, ex, key)
    ref = _loss_and_grads(config, params, x, y, ex.replace(backward="autodiff"), key)
    _assert_same(ref, auto, tol)
    return np.asarray(ref[2])


@pytest.mark.parametrize("name", NAMES)
def test_auto_equals_autodiff_for_every_neuron(name):
    # Recurrent with dropout: every term of the network adjoint is in play.
    config = NetworkConfig(
        F, (10, 8), 4, name, _settings(name), recurrent=(True, True), dropout=0.3
    )
    rates = _check(config, "fused", dropout=True)
    assert rates.min() > 0.0, f"every layer must spike for the test to mean something: {rates}"


@pytest.mark.parametrize(
    "recurrent, dropout", [(False, 0.0), (True, 0.3)], ids=["ff", "rec-dropout"]
)
@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
@pytest.mark.parametrize("name", ["tclif", "glif", "lif"])
def test_auto_equals_autodiff_both_strategies(name, strategy, recurrent, dropout):
    config = NetworkConfig(
        F, (10, 8), 4, name, _settings(name), recurrent=(recurrent, recurrent), dropout=dropout
    )
    rates = _check(config, strategy, dropout=bool(dropout))
    assert rates.min() > 0.0, f"every layer must spike for the test to mean something: {rates}"


def _variants():
    out = {}
    for name in NAMES:
        out[f"{name}-detached-official_gau"] = make_neuron(
            name, detach_reset=True, surrogate="official_gau", **_settings(name)
        )
    out["tclif-per_neuron"] = make_neuron("tclif", per_neuron=True, v_th=0.5)
    out["tclif-paper"] = make_neuron("tclif", reset_order="paper", per_neuron=True, v_th=0.5)
    out["two_compartment-per_neuron"] = make_neuron(
        "two_compartment", per_neuron=True, decay=(0.9, 0.8), gamma=0.3, v_th=0.5
    )
    out["lif-learn_decay"] = make_neuron("lif", learn_decay=True, v_th=0.5)
    out["lif-hard"] = make_neuron("lif", reset="hard", learn_decay=True, v_th=0.5)
    out["lif-paper"] = make_neuron("lif", reset_order="paper", learn_decay=True, v_th=0.5)
    out["lif-hard-paper-detached"] = make_neuron(
        "lif", reset="hard", reset_order="paper", detach_reset=True, v_th=0.5
    )
    return out


VARIANTS = _variants()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_equal_autodiff(variant):
    # Three layers (recurrent, feed-forward, recurrent), dropout, the "last" readout (its
    # adjoint enters through the final state); the strategies alternate over the variants.
    config = NetworkConfig(
        F,
        (10, 9, 8),
        4,
        VARIANTS[variant],
        recurrent=(True, False, True),
        dropout=0.2,
        readout="last",
    )
    strategy = ("layerwise", "fused")[sorted(VARIANTS).index(variant) % 2]
    rates = _check(config, strategy, dropout=True)
    assert rates.min() > 0.0, rates


def test_readout_and_mixed_neurons_per_layer():
    # A different neuron type per layer, fused and layerwise, "mean" readout.
    neurons = (
        make_neuron("glif"),
        make_neuron("tclif", v_th=0.5),
        make_neuron("alif", v_th=0.5),
    )
    config = NetworkConfig(F, (10, 9, 8), 4, neurons, recurrent=(False, True), readout="mean")
    for strategy in ("layerwise", "fused"):
        assert _check(config, strategy).min() > 0.0


# ----------------------------------------------------------------------------- one step


def _random_state(neuron, key, shape=(4, 6)):
    keys = jax.random.split(key, len(neuron.State._fields))
    fields = {
        f: 0.8 * jax.random.normal(k, shape) + 0.5 for f, k in zip(neuron.State._fields, keys)
    }
    fields["spike"] = (jax.random.uniform(keys[-1], shape) < 0.5).astype(jnp.float32)
    if "adaptation" in fields:
        fields["adaptation"] = 0.3 * jnp.abs(fields["adaptation"])
    return neuron.State(**fields)


STEP_NEURONS = {name: make_neuron(name) for name in NAMES} | VARIANTS


@pytest.mark.parametrize("variant", sorted(STEP_NEURONS))
def test_one_step_adjoint_equals_vjp_of_step(variant):
    neuron = STEP_NEURONS[variant]
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    params = neuron.init_params(6)
    params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(k1, a.shape), params)
    prev = _random_state(neuron, k2)
    current = jax.random.normal(k3, (4, 6)) + 0.5
    state, _ = neuron.step(params, prev, current)
    saved = neuron.save(params, state, current)
    for got, want in zip(neuron.restore(params, saved), state):  # spikes recomputed exactly
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    cot = _random_state(neuron, k4)._replace(spike=jax.random.normal(k4, (4, 6)))
    cot_prev, cot_current, terms = neuron.adjoint(params, prev, saved, cot)
    _, pull = jax.vjp(lambda p, s, i: neuron.step(p, s, i)[0], params, prev, current)
    want_params, want_prev, want_current = pull(cot)
    got = (neuron.param_grads(params, terms), cot_prev, cot_current)
    want = (want_params, want_prev, want_current)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the default


@dataclasses.dataclass(frozen=True)
class _PlainLIF(LIF):
    """A LIF without hand-written adjoint (no ``name``: not registered): the protocol's
    ``jax.vjp`` defaults, as a new neuron type gets them."""

    adjoint_fn: ClassVar[Any] = None
    save = Neuron.save
    restore = Neuron.restore
    adjoint = Neuron.adjoint
    param_grads = Neuron.param_grads


@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
def test_a_neuron_without_hand_written_adjoint_gets_the_vjp_default(strategy):
    neuron = _PlainLIF(v_th=0.5, learn_decay=True)
    assert "_PlainLIF" not in {cls.__name__ for cls in NEURONS.values()}
    state = neuron.init_state((2,), 10)
    assert len(neuron.save({}, state, state.potential)) == len(state) + 1  # all of it, and I[t]
    config = NetworkConfig(F, (10, 8), 4, neuron, recurrent=(True, False), dropout=0.2)
    assert _check(config, strategy, dropout=True).min() > 0.0
    params = _params(config)
    assert "bwd=_layer_bwd" in _jaxpr(config, params, Execution(strategy="layerwise"))


# ----------------------------------------------------------------------------- remat, bf16


@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
@pytest.mark.parametrize("name", ["tclif", "glif"])
def test_chunked_residuals_equal_autodiff(name, strategy):
    # remat_chunk with backward="auto": the backward re-runs each chunk's forward.
    config = NetworkConfig(
        F, (10, 8), 4, name, _settings(name), recurrent=(True, False), dropout=0.2
    )
    params = _params(config)
    x, y = _data()
    key = jax.random.key(7)
    ex = Execution(strategy=strategy, remat_chunk=4)
    auto = _loss_and_grads(config, params, x, y, ex, key)
    plain = _loss_and_grads(
        config, params, x, y, ex.replace(backward="autodiff", remat_chunk=0), key
    )
    _assert_same(plain, auto)
    with pytest.raises(ValueError, match="remat_chunk=5 must divide the sequence length T=16"):
        _loss_and_grads(config, params, x, y, ex.replace(remat_chunk=5), key)


@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
def test_bf16_policy_in_the_adjoint(strategy):
    # The same bf16 products forward and backward (f32 accumulation): auto and autodiff
    # differ only in summation order; gradients, like the master weights, stay f32.
    config = NetworkConfig(F, (10, 8), 4, "lif", {"v_th": 0.5}, recurrent=(True, True))
    ex = Execution(strategy=strategy, matmul_dtype="bfloat16")
    params = _params(config)
    x, y = _data()
    auto = _loss_and_grads(config, params, x, y, ex)
    ref = _loss_and_grads(config, params, x, y, ex.replace(backward="autodiff"))
    assert {str(g.dtype) for g in jax.tree.leaves(auto[3])} == {"float32"}
    _assert_same(ref, auto, tol=1e-3)
    loss = lambda p: jnp.sum(apply(config, p, x, ex)[0])  # noqa: E731
    text = jax.jit(jax.grad(loss)).lower(params).as_text()
    dots = [line for line in text.splitlines() if "stablehlo.dot_general" in line]
    assert dots and all("bf16" in line for line in dots), "every product takes bf16 operands"


def test_initial_state_adjoint_of_a_layer_scan():
    layer = SpikingDense(F, 8, "tclif", recurrent=True, v_th=0.5, rngs=nnx.Rngs(0))
    x, _ = _data()
    state0 = _random_state(layer.neuron, jax.random.key(2), (B, 8))

    def loss(state0, backward):
        p = layer.params()
        current = jnp.swapaxes(x, 0, 1) @ p.dense.kernel + p.dense.bias
        ex = Execution(backward=backward)
        final, spikes, _ = scan_layer(layer.neuron, p, current, state0, ex)
        return jnp.sum(spikes * jnp.arange(T)[:, None, None]) + jnp.sum(final.soma**2)

    auto = jax.grad(loss)(state0, "auto")
    ref = jax.grad(loss)(state0, "autodiff")
    for a, b in zip(auto, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- which path


def _jaxpr(config, params, execution, **kwargs):
    x = jnp.ones((2, 5, config.in_features))
    return str(jax.make_jaxpr(lambda p: apply(config, p, x, execution, **kwargs)[0])(params))


def _hand_written(text):
    """How many hand-written backward scans a jaxpr calls (by their custom_vjp rules)."""
    return sum(text.count(f"bwd={rule}") for rule in ("_layer_bwd", "_network_bwd"))


@pytest.mark.parametrize("name", NAMES)
def test_auto_takes_the_custom_vjp_path(name):
    config = NetworkConfig(F, (6, 5), 3, name, recurrent=(True, False), dropout=0.1)
    params = parameters(from_config(config))
    layerwise, fused = Execution(strategy="layerwise"), Execution(strategy="fused")
    key = jax.random.key(0)  # with dropout masks
    assert _jaxpr(config, params, layerwise, dropout_key=key).count("bwd=_layer_bwd") == 2
    assert _jaxpr(config, params, fused, dropout_key=key).count("bwd=_network_bwd") == 1
    probes = [jnp.zeros((2, 5, 6)), jnp.zeros((2, 5, 5))]
    for ex in (layerwise, fused):
        assert _hand_written(_jaxpr(config, params, ex)) >= 1
        assert _hand_written(_jaxpr(config, params, ex.replace(backward="autodiff"))) == 0
        assert _hand_written(_jaxpr(config, params, ex, record=True)) == 0
        assert _hand_written(_jaxpr(config, params, ex, probes=probes)) == 0
    # layerwise decides per layer: a layer without a probe keeps its adjoint
    one = _jaxpr(config, params, layerwise, probes=[probes[0], None])
    assert one.count("bwd=_layer_bwd") == 1


def test_fused_forward_writes_no_spike_arrays():
    """The fused adjoint's compiled step needs about its residuals in temporaries and no
    more: the spike sum and counts are accumulated inside the forward loop. Rebuilding every
    layer's (T, B, n) spikes from the residuals after the loop (as before the fix) cost
    smnist-ff-64 0.46 GB per step at batch 256; on this network it measured 1.29x the
    residual bytes against 1.13x now (jax 0.10.2, CPU)."""
    steps, batch, hidden = 256, 32, (16, 64, 64)
    config = NetworkConfig(1, hidden, 10, "tclif")
    params = parameters(from_config(config))
    x, y = jnp.ones((batch, steps, 1)), jnp.arange(batch) % 10

    def loss(p):
        logits, aux = apply(config, p, x, Execution(strategy="fused"))
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(batch), y])
        return ce + jnp.sum(aux["firing_rates"])

    compiled = jax.jit(jax.grad(loss)).lower(params).compile()
    residual_bytes = 2 * sum(hidden) * steps * batch * 4  # U_D[t], U_S[t] per neuron, f32
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp <= 1.2 * residual_bytes, (temp, residual_bytes)
