"""Spiking layers as composable NNX modules (the spyx-style stateful-layer contract).

* A preset's layers, stepped one time step at a time through ``layer(x_t, state)``, give
  the same spikes and logits as the model's own fused scan.
* ``SpikingDense.scan`` equals stepping by hand and records every compartment.

The documentation's examples (a conv front-end in a user's model, a neuron of one's own)
run in tests/test_docs.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tclif_jax import SpikingDense, from_preset
from tclif_jax.plotting import plot_raster, plot_traces


@pytest.mark.parametrize("preset", ["shd-rec", "smnist-ff-40"])
def test_preset_layers_stepped_by_hand_equal_the_model_scan(preset):
    model = from_preset(preset, seed=2, hidden=(24, 16) if preset == "shd-rec" else (8, 16, 12))
    B, T = 3, 20
    x = jax.random.uniform(jax.random.key(0), (B, T, model.in_features), maxval=2.0)
    if model.in_features > 1:
        x = (x < 0.4).astype(jnp.float32)
    logits, aux = model(x, record=True)
    states = [layer.initial_state(B) for layer in model.layers]
    total = 0.0
    for t in range(T):
        h = x[:, t]
        for i, layer in enumerate(model.layers):
            h, states[i] = layer(h, states[i])
            np.testing.assert_array_equal(np.asarray(h), np.asarray(aux["spikes"][i][:, t]))
        total = total + h
    assert 0 < float(jnp.mean(aux["spikes"][0])) < 1
    readout = model.readout
    by_hand = total @ readout.kernel[...] + T * readout.bias[...]
    np.testing.assert_allclose(np.asarray(by_hand), np.asarray(logits), rtol=1e-5, atol=1e-5)


def test_scan_equals_stepping_and_records_every_compartment():
    layer = SpikingDense(4, 6, "tclif", recurrent=True, v_th=0.5, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(1), (2, 15, 4)) + 0.5
    spikes, states = layer.scan(x, record=True)
    assert set(states) == {"dendrite", "soma", "spike"} and spikes.shape == (2, 15, 6)
    state = layer.initial_state(2)
    for t in range(15):
        s, state = layer(x[:, t], state)
        np.testing.assert_array_equal(np.asarray(s), np.asarray(spikes[:, t]))
        np.testing.assert_allclose(
            np.asarray(state.dendrite), np.asarray(states["dendrite"][:, t]), rtol=1e-6, atol=1e-6
        )
    np.testing.assert_array_equal(np.asarray(states["spike"]), np.asarray(spikes))
    assert 0 < float(jnp.mean(spikes)) < 1
    lif = SpikingDense(4, 6, "lif", rngs=nnx.Rngs(1))
    assert set(lif.scan(x, record=True)[1]) == {"potential", "spike"}


def test_plot_helpers_draw_rasters_and_traces():
    import matplotlib

    matplotlib.use("Agg")
    layer = SpikingDense(4, 6, "tclif", v_th=0.5, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(1), (2, 15, 4)) + 0.5
    spikes, states = layer.scan(x, record=True)
    ax = plot_raster(spikes, sample=1)
    assert len(ax.collections[0].get_offsets()) == int(np.asarray(spikes[1]).sum())
    fig = plot_traces(states, neurons=[0, 2], threshold=0.5)
    assert [a.get_ylabel() for a in fig.axes] == ["dendrite", "soma"]
