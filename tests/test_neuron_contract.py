"""The ``Neuron`` protocol, checked on every registered neuron type.

A new neuron type is one ``Neuron`` subclass in ``tclif_jax/neurons/``; registering it (a
``name``) puts it under every test here: shapes and types of its state, the probe's
meaning, the state vector round trip used by the Jacobian analyses, hashability (jit
static arguments), swapping into a preset, and both execution strategies agreeing on it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tclif_jax import NEURONS, apply, from_preset, make_neuron

NAMES = sorted(NEURONS)
B, N = 3, 5


def _state(neuron, seed=0):
    """A random state in the neuron's layout (spike field 0/1)."""
    keys = jax.random.split(jax.random.key(seed), len(neuron.State._fields))
    fields = {f: jax.random.normal(k, (B, N)) for f, k in zip(neuron.State._fields, keys)}
    fields["spike"] = (fields["spike"] > 0).astype(jnp.float32)
    return neuron.State(**fields)


def test_the_registry_holds_the_documented_neurons():
    assert {"tclif", "two_compartment", "lif", "plif", "alif", "alif_official", "glif"} <= set(
        NAMES
    )


@pytest.mark.parametrize("name", NAMES)
def test_state_layout_and_step_shapes(name):
    neuron = make_neuron(name)
    assert type(neuron).name == name and NEURONS[name] is type(neuron)
    fields = neuron.State._fields
    assert fields[-1] == "spike"
    assert neuron.threshold_compartment in neuron.compartments
    assert set(neuron.compartments) <= set(fields) and set(neuron.state_fields) <= set(fields)
    params = neuron.init_params(N)
    assert all(isinstance(v, jax.Array) for v in params.values())
    state0 = neuron.init_state((B,), N)
    assert type(state0) is neuron.State
    assert all(v.shape == (B, N) and float(jnp.abs(v).sum()) == 0.0 for v in state0)
    state, spike = jax.jit(neuron.step)(params, _state(neuron), jnp.full((B, N), 0.7))
    assert type(state) is neuron.State and spike.shape == (B, N)
    assert set(np.unique(np.asarray(spike))) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.asarray(state.spike), np.asarray(spike))
    assert neuron.potential(state) is getattr(state, neuron.threshold_compartment)


@pytest.mark.parametrize("name", NAMES)
def test_probe_adds_to_the_thresholded_potential(name):
    neuron = make_neuron(name)
    params, state = neuron.init_params(N), _state(neuron, 1)

    def potential(probe):
        new, _ = neuron.step(params, state, jnp.ones((B, N)), probe)
        return neuron.potential(new)

    base, shifted = potential(0.0), potential(jnp.full((B, N), 0.25))
    np.testing.assert_allclose(np.asarray(shifted - base), 0.25, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_state_vector_round_trip(name):
    neuron = make_neuron(name)
    state = _state(neuron, 2)
    vec = neuron.state_vector(state)
    assert vec.shape == (B, N, len(neuron.state_fields))
    back = neuron.state_from_vector(vec)
    for field in neuron.state_fields:
        np.testing.assert_array_equal(
            np.asarray(getattr(back, field)), np.asarray(getattr(state, field))
        )
    # the spike is recomputed from the thresholded potential, with the surrogate's H(0)
    params = neuron.init_params(N)
    back = neuron.state_from_vector(vec, params)
    thr = np.asarray(neuron.threshold(vec, params))
    pot = np.asarray(neuron.potential(back))
    fired = pot >= thr if neuron.surrogate.fires_at_zero else pot > thr
    np.testing.assert_array_equal(np.asarray(back.spike), fired.astype(np.float32))
    np.testing.assert_allclose(thr, np.asarray(neuron.threshold(vec)), rtol=1e-6)  # initial


@pytest.mark.parametrize("name", NAMES)
def test_specs_are_hashable_and_equal_by_value(name):
    a, b = make_neuron(name), make_neuron(name)
    assert a == b and hash(a) == hash(b)
    assert make_neuron(name, v_th=0.75) != a  # 0.75: valid for every neuron (GLIF: < 1)


@pytest.mark.parametrize("name", NAMES)
def test_swaps_into_a_preset_and_its_gradient_reaches_the_first_layer(name):
    # (Strategies agreeing is tests/test_strategies.py; every neuron's adjoint against
    # autodiff is tests/test_adjoint.py.)
    model = from_preset("shd-rec", neuron=name, hidden=(12, 8), v_th=0.5)
    assert all(layer.neuron.name == name for layer in model.layers)
    x = (jax.random.uniform(jax.random.key(0), (2, 10, 700)) < 0.2).astype(jnp.float32)
    y = jnp.asarray([1, 2])

    def loss(p):
        logits, _ = apply(model.config, p, x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), y])

    value, grads = jax.value_and_grad(loss)(model.params())
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads.layers[0].dense.kernel).sum()) > 0


@pytest.mark.parametrize("name", NAMES)
def test_unknown_setting_is_refused_with_the_valid_ones(name):
    with pytest.raises(ValueError, match="do not apply.*v_th"):
        make_neuron(name, no_such_setting=1.0)
