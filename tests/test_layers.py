"""Spiking layers as composable NNX modules (the spyx-style stateful-layer contract).

* A preset's layers, stepped one time step at a time through ``layer(x_t, state)``, give
  the same spikes and logits as the model's own fused scan.
* ``SpikingDense.scan`` equals stepping by hand and records every compartment.
* The README's example (a 1-D conv front-end and two TC-LIF layers in a user's NNX model)
  runs as written and its loss falls.
* The README's neuron of your own registers, runs in a preset, and its default (``jax.vjp``)
  adjoint gives autodiff's gradients.
"""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tclif_jax import SpikingDense, from_preset
from tclif_jax.plotting import plot_raster, plot_traces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def _readme_example(name: str = "conv-tclif") -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README.md lost its {name} example block"
    return match.group(1)


def test_readme_conv_example_runs_and_its_loss_falls():
    scope: dict = {}
    exec(compile(_readme_example(), "README.md:conv-tclif", "exec"), scope)  # noqa: S102
    losses = scope["losses"]
    assert len(losses) >= 10 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def test_readme_own_neuron_registers_runs_and_matches_autodiff():
    from tclif_jax import Execution, apply, parameters
    from tclif_jax.neurons import NEURONS

    scope: dict = {}
    try:
        exec(compile(_readme_example("own-neuron"), "README.md:own-neuron", "exec"), scope)  # noqa: S102
        assert NEURONS["hard_lif"] is scope["HardResetLIF"]
        model, x = scope["model"], scope["x"]
        assert model(x).shape == (4, 20)
        params = parameters(model)

        def loss(p, execution):
            return jnp.sum(apply(model.config, p, x, execution)[0] ** 2)

        hand = jax.grad(loss)(params, Execution())
        auto = jax.grad(loss)(params, Execution(backward="autodiff"))
        for a, b in zip(jax.tree.leaves(hand), jax.tree.leaves(auto)):
            np.testing.assert_allclose(
                np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b)))
            )
        assert float(jnp.max(jnp.abs(jax.tree.leaves(auto)[0]))) > 0  # a gradient to compare
    finally:
        NEURONS.pop("hard_lif", None)  # keep the registry as the other tests expect it
