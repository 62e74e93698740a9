"""Presets, forward pass, init, readouts, strategies and bad input."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tclif_jax import (
    LIF,
    PRESETS,
    TCLIF,
    Execution,
    NetworkConfig,
    SpikingNetwork,
    apply,
    count_params,
    from_preset,
    parameters,
)
from tclif_jax.params import from_state

TABLE6 = {
    "smnist-ff-64": 85_136,
    "smnist-rec-64": 155_088,
    "smnist-ff-40": 44_768,
    "smnist-rec-40": 63_640,
    "gsc-ff": 106_216,
    "gsc-rec": 196_516,
    "shd-ff": 108_824,
    "shd-rec": 141_848,
    "ssc-ff": 110_759,
    "ssc-rec": 110_757,
}


# What the official SSC script builds (SHD-SSC/main.py, hidden=400): 700-400-400-35, plus
# 2 x (400 x 400 + 400) for the two recurrent layers.
OFFICIAL = {
    "ssc-ff-official": 700 * 400 + 400 + 400 * 400 + 400 + 400 * 35 + 35 + 2 * 2,
    "ssc-rec-official": 700 * 400
    + 400
    + 400 * 400
    + 400
    + 400 * 35
    + 35
    + 2 * 2
    + 2 * (400 * 400 + 400),
}


@pytest.mark.parametrize("name", sorted(TABLE6))
def test_preset_parameter_counts_match_table6(name):
    assert count_params(from_preset(name)) == TABLE6[name]


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_ssc_presets_parameter_counts(name):
    assert OFFICIAL == {"ssc-ff-official": 454_839, "ssc-rec-official": 775_639}
    model = from_preset(name)
    assert count_params(model) == OFFICIAL[name]
    assert model.hidden == (400, 400) and model.config.dropout == 0.0
    assert model.config.recurrent == ((True, True) if "rec" in name else (False, False))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_forward_shape_dtype_determinism_finiteness(name):
    p = PRESETS[name]
    x = jax.random.uniform(jax.random.key(1), (3, 12, p.in_features), minval=0, maxval=2)
    logits = from_preset(name, seed=4)(x)
    assert logits.shape == (3, p.num_classes) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(logits)))
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(from_preset(name, seed=4)(x)))
    assert not np.allclose(np.asarray(logits), np.asarray(from_preset(name, seed=5)(x)))


def test_preset_neuron_settings_follow_the_reference():
    n = from_preset("smnist-rec-64").layers[0].neuron
    assert (n.gamma, n.v_th, n.init_c) == (0.5, 1.0, (1.5, -0.5))
    n = from_preset("gsc-rec").layers[1].neuron
    assert (n.gamma, n.v_th, n.init_b) == (0.7, 1.25, (-0.8, 0.8))
    # the official commands' c: GSC rec --beta_init1 1.4 --beta_init2 1.4, PS-MNIST rec
    # --beta1 -1.4 --beta2 1.4 (b = (-0.802, 0.802) and (-0.198, 0.802))
    for name, c in (
        ("gsc-ff", (1.4, 1.4)),
        ("gsc-rec", (1.4, 1.4)),
        ("psmnist-rec-64", (-1.4, 1.4)),
    ):
        for layer in from_preset(name).layers:
            np.testing.assert_allclose(np.asarray(layer.neuron_params["c"][...]), c, rtol=1e-7)
    np.testing.assert_allclose(
        np.asarray(from_preset("psmnist-rec-40").layers[0].neuron_params["c"][...]), (-1.4, 1.4)
    )
    n = from_preset("shd-ff").layers[0].neuron
    assert (n.gamma, n.v_th, n.init_b) == (0.5, 1.5, (-0.5, 0.5))
    assert from_preset("gsc-ff").config.dropout == 0.3
    np.testing.assert_allclose(
        np.asarray(from_preset("psmnist-ff-64").layers[2].neuron_params["c"][...]),
        [0.0, 0.0],
        atol=1e-6,
    )  # (b1, b2) = (-0.5, 0.5)


def test_neuron_swap_and_overrides():
    lif = from_preset("smnist-ff-64", neuron="lif")
    assert all(isinstance(layer.neuron, LIF) for layer in lif.layers)
    assert lif.layers[0].neuron.v_th == 1.0
    assert count_params(lif) == TABLE6["smnist-ff-64"] - 6  # fixed-decay LIF has no parameters
    m = from_preset("shd-ff", gamma=0.9, v_th=2.0, surrogate="arctan", surrogate_width=3.0)
    n = m.layers[1].neuron
    assert (n.gamma, n.v_th, n.surrogate.name, n.surrogate.width) == (0.9, 2.0, "arctan", 3.0)
    per = from_preset("smnist-ff-64", per_neuron=True)
    assert count_params(per) == TABLE6["smnist-ff-64"] - 6 + 2 * (64 + 256 + 256)


def test_pytorch_default_init():
    m = from_preset("shd-ff", seed=0)
    w = np.asarray(m.layers[0].dense.kernel[...])
    b = np.asarray(m.layers[0].dense.bias[...])
    bound = 1 / math.sqrt(700)
    assert w.shape == (700, 128) and np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.std(w) == pytest.approx(bound / math.sqrt(3), rel=0.02)  # uniform's std
    wr = np.asarray(from_preset("shd-rec").layers[1].recurrent.kernel[...])
    assert np.abs(wr).max() <= 1 / math.sqrt(128)


def _model(readout="sum", recurrent=(True, False), dropout=0.0):
    config = NetworkConfig(
        5, (16, 8), 4, TCLIF(v_th=0.5), recurrent=recurrent, dropout=dropout, readout=readout
    )
    return SpikingNetwork(config, rngs=nnx.Rngs(0))


def test_readouts_match_per_step_linear_pooled_over_time():
    x = jax.random.normal(jax.random.key(0), (2, 30, 5)) + 1.0
    for mode in ("sum", "mean", "last"):
        m = _model(readout=mode)
        logits, aux = m(x, record=True)
        s = np.asarray(aux["spikes"][-1])  # (B, T, n), batch-major
        w, b = np.asarray(m.readout.kernel[...]), np.asarray(m.readout.bias[...])
        per_step = s @ w + b
        expected = {"sum": per_step.sum(1), "mean": per_step.mean(1), "last": per_step[:, -1]}[mode]
        np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5, atol=1e-5)
    assert s.shape == (2, 30, 8) and 0 < s.mean() < 1


def test_dropout_only_with_key():
    x = jax.random.normal(jax.random.key(3), (4, 25, 5)) + 0.8
    m = _model(dropout=0.5)
    key = jax.random.key(7)
    np.testing.assert_array_equal(np.asarray(m(x)), np.asarray(m(x)))
    assert not np.allclose(np.asarray(m(x)), np.asarray(m(x, dropout_key=key)))


def test_grad_through_784_steps_is_finite_and_nonzero():
    model = from_preset("smnist-ff-64")
    params = parameters(model)
    x = jax.random.uniform(jax.random.key(0), (2, 784, 1))
    y = jnp.asarray([3, 7])

    def loss(p):
        logits, _ = apply(model.config, p, x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), y])

    grads = jax.grad(loss)(params)
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(g)))
    first = from_state(grads).layers[0]
    assert float(jnp.abs(first.dense.kernel).sum()) > 0  # reaches the first layer
    assert float(jnp.abs(first.neuron["c"]).sum()) > 0


def test_bad_input_shapes_name_the_expected_shape():
    m = from_preset("smnist-ff-64")
    for call in (m, lambda x: apply(m.config, m.params(), x), jax.jit(m)):
        with pytest.raises(ValueError, match=r"^The input has 0 time steps; a spiking network"):
            call(jnp.zeros((4, 0, 1)))
    with pytest.raises(ValueError, match=r"\(batch, time, 1\)"):
        m(jnp.zeros((4, 784)))
    with pytest.raises(ValueError, match=r"\(batch, time, 1\)"):
        m(jnp.zeros((4, 784, 3)))


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="smnist-ff-64.*ssc-rec"):
        from_preset("smnist-ff-128")
    with pytest.raises(ValueError, match="tclif.*lif"):
        from_preset("smnist-ff-64", neuron="hh")
    with pytest.raises(ValueError, match="Unknown network setting.*gama.*valid: fields"):
        from_preset("smnist-ff-64", gama=0.5)
    with pytest.raises(ValueError, match="do not apply"):
        from_preset("smnist-ff-64", neuron="lif", gamma=0.5)
    with pytest.raises(ValueError, match="strategy='magic' is not valid; choose one of: auto"):
        from_preset("smnist-ff-64", strategy="magic")
    with pytest.raises(ValueError, match=r"strategy describe how a network runs.*Execution"):
        PRESETS["smnist-ff-64"].replace(strategy="fused")


def _dot_precisions(text):
    """The precision of every dot_general in lowered StableHLO text."""
    return re.findall(r"stablehlo\.dot_general[^\n]*precision = \[(\w+), (\w+)\]", text)


@pytest.mark.parametrize(
    "strategy,backward",
    [("layerwise", "auto"), ("fused", "auto"), ("fused", "autodiff")],
)
@pytest.mark.parametrize("precision", ["highest", "high", "default"])
def test_every_dot_carries_the_requested_precision(precision, strategy, backward):
    # Forward and backward of a recurrent network (input, hidden, recurrent and readout
    # matmuls; the hand-written adjoints' own dots with fused/auto): lowered on CPU, every
    # dot_general must state the precision asked for (TF32 on GPU only with "default").
    model = from_preset("shd-rec", hidden=(8, 6))
    ex = Execution(strategy=strategy, backward=backward, matmul_precision=precision)

    def loss(p, x):
        return jnp.sum(apply(model.config, p, x, ex)[0])

    x = jnp.ones((2, 5, 700))
    text = jax.jit(jax.value_and_grad(loss)).lower(parameters(model), x).as_text()
    found = _dot_precisions(text)
    assert len(found) == text.count("stablehlo.dot_general") >= 8
    assert set(found) == {(precision.upper(),) * 2}
    # the layer module on its own (one step and a scan) uses the same policy
    layer = model.layers[0]
    text = jax.jit(lambda v: layer.scan(v, execution=ex)).lower(x).as_text()
    step = jax.jit(lambda v: layer(v, layer.initial_state(2), execution=ex)[0])
    text += step.lower(x[:, 0]).as_text()
    assert set(_dot_precisions(text)) == {(precision.upper(),) * 2}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="a property of XLA:CPU")
def test_on_cpu_every_precision_gives_the_same_numbers():
    # XLA:CPU computes f32 products in f32 whatever the precision: the losses and gradients
    # of every setting are identical, bit for bit (on a GPU "default" may use TF32).
    x = jax.random.uniform(jax.random.key(1), (2, 12, 700))
    results = []
    for precision in ("highest", "high", "default"):
        model = from_preset("shd-rec", hidden=(8, 6), matmul_precision=precision)

        def loss(p, model=model):
            return jnp.sum(jax.nn.log_softmax(apply(model.config, p, x, model.execution)[0])[:, 0])

        results.append(jax.jit(jax.value_and_grad(loss))(parameters(model)))
    for value, grads in results[1:]:
        assert float(value) == float(results[0][0])
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(results[0][1])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
